"""Helpers for the BouncingSim tests: the fidelity sample and an in-process stand-in for the sandbox.

``inprocess`` replaces :meth:`BouncingSimFamily.run_program` for one test with a runner that
executes the (trusted, test-written) program in this process and returns objects shaped like the
sandbox's ``SandboxRun``; the scorer, feedback and env code paths are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bsim_fakes import run_in_process

from resd_envs.bouncingsim.family import BouncingSimFamily


@pytest.fixture
def inprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        BouncingSimFamily, "run_program", lambda self, code, times: run_in_process(code, list(times))
    )


@pytest.fixture(scope="session")
def sample_rows(data_dir: Path) -> list[dict[str, Any]]:
    sample = data_dir / "fidelity" / "bouncingsim_sample.jsonl"
    if not sample.is_file():
        pytest.fail(f"the fidelity sample {sample} is missing")
    return [json.loads(line) for line in sample.read_text(encoding="utf-8").splitlines() if line.strip()]
