"""Every case of the reference's golden file: same verdict, error category, message, output tape and steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resd_envs import manufactoria as mf

# Same location as tests/conftest.py's FIDELITY (needed at collection time for parametrisation).
FIDELITY = Path(__file__).resolve().parents[2] / "data" / "fidelity"
SAMPLE = FIDELITY / "manufactoria_sample.jsonl"


def _cases() -> list[dict]:
    if not SAMPLE.is_file():
        pytest.fail(f"golden file {SAMPLE} is missing; it ships with the repository under tests/data")
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


CASES = _cases()


def _outcome(program: str, tape: str) -> dict:
    try:
        factory = mf.parse(program)
    except mf.ManufactoriaSyntaxError as error:
        return {"result": "error", "output_tape": None, "error": error.category, "error_message": str(error),
                "rejection": None, "steps": None}
    out = mf.run(factory, tape)
    assert mf.trace(factory, tape).result == out, "fast run and step-by-step trace disagree"
    assert mf.run(program, tape) == out, "run() on text and on a parsed factory disagree"
    return {"result": out.result, "output_tape": out.output_tape, "error": None, "error_message": None,
            "rejection": out.rejection, "steps": out.steps}


def test_golden_file_covers_every_kind() -> None:
    assert len(CASES) == 300
    assert {c["category"] for c in CASES} >= {"has_solution", "malformed", "edge", "random_valid"}


@pytest.mark.parametrize("case", CASES, ids=[f"{i:03d}-{c['category']}" for i, c in enumerate(CASES)])
def test_agrees_with_reference(case: dict) -> None:
    got = _outcome(case["program"], case["tape"])
    want = {k: case[k] for k in got}
    assert got == want


def test_error_attributes_match_message() -> None:
    for case in CASES:
        if case["error"] is None:
            continue
        with pytest.raises(mf.ManufactoriaSyntaxError) as info:
            mf.parse(case["program"])
        error = info.value
        assert error.category in mf.ERROR_CATEGORIES
        prefix = f"Line {error.line}: " if error.line else ""
        assert str(error) == prefix + error.message == case["error_message"]
