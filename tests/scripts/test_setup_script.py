"""scripts/setup.sh: its arguments are checked before anything is installed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SETUP), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argument", ["--bogus", "--test", "tests"])
def test_an_unknown_argument_is_refused_with_the_usage_before_any_install(argument):
    result = _run(argument)
    assert result.returncode == 2
    assert f"unknown argument '{argument}'" in result.stderr and "--no-tests" in result.stderr
    assert "pip" not in result.stdout + result.stderr


def test_help_prints_the_usage_and_exits_zero():
    result = _run("--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: bash scripts/setup.sh [--no-tests]")
