"""The golden samples shipped in the package: reproducible from tests/data, and this installation agrees."""

from __future__ import annotations

import json

import pytest
from sample_builder import OUT, build

from resd_envs.fidelity import run_fidelity, sample_path
from resd_envs.fidelity.finer import ace_extract, ace_is_correct


def test_shipped_samples_are_what_the_builder_makes() -> None:
    for name, text in build().items():
        assert (OUT / name).read_text(encoding="utf-8") == text, f"{name} is stale: run sample_builder.py --write"


def test_samples_live_inside_the_package() -> None:
    for env in ("resd/Manufactoria-Has-v0", "resd/BouncingSim-Easy-v0", "resd/Finer-v0"):
        path = sample_path(env)
        assert path.is_file() and path.parent.name == "samples" and path.parent.parent.name == "fidelity"
    assert (OUT / "README.md").is_file()


def test_manufactoria_sample_agrees_fully() -> None:
    report = run_fidelity("resd/Manufactoria-Has-v0")
    assert report.ok
    assert (report.total, report.agreed, report.known) == (332, 332, 0)
    assert report.groups["program/tape"]["checks"] == 300
    assert report.groups["response reward"]["checks"] == 32
    # reproduced quirks are pointed out on agreeing checks
    assert any(c.note and "uppercase END" in c.note for c in report.checks)


@pytest.mark.parametrize(("env", "level", "agree", "known"), [
    ("resd/BouncingSim-Easy-v0", "easy", 165, 0),
    ("resd/BouncingSim-Medium-v0", "medium", 164, 1),
])
def test_bouncingsim_sample_agrees_except_labelled(env: str, level: str, agree: int, known: int) -> None:
    report = run_fidelity(env)
    assert report.ok and report.unexplained == 0
    assert (report.total, report.agreed, report.known) == (165, agree, known)
    assert set(report.groups) == {f"{f}/{level}" for f in "ABCDFG"}
    assert report.groups[f"G/{level}"]["checks"] == 90  # 5 golden G scenes + 1 in DELTA layout, 15 times each
    assert report.groups[f"G/{level}"]["within_tolerance"] == 1.0
    for check in report.disagreements():  # the only miss: spinning-ball family A at medium
        assert check.group == "A/medium" and "family A" in (check.reason or "")


def test_finer_sample_differs_only_by_labelled_extraction() -> None:
    report = run_fidelity("resd/Finer-v0")
    assert report.ok
    assert (report.total, report.agreed, report.known) == (15, 12, 3)
    assert all("answer extraction" in (c.reason or "") for c in report.disagreements())


def test_ace_extraction_reproduces_the_hand_derived_answers() -> None:
    # The sample's final_answer fields were written by hand from ACE's documented rules.
    for line in (OUT / "finer.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert ace_extract(row["response"]) == row["final_answer"], row["index"]
        assert ace_is_correct(row["final_answer"], row["target"]) == row["is_correct"]
