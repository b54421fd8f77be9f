"""Learner console scripts: an install hint instead of a traceback when the learner extra is absent."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

from resd_learner import entrypoints

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_every_learner_script_goes_through_the_dependency_check() -> None:
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    for name in ("resd-learn", "resd-eval", "resd-report"):
        module, function = scripts[name].split(":")
        assert module == "resd_learner.entrypoints", name
        assert callable(getattr(entrypoints, function)), name
    assert scripts["resd-envs"] == "resd_envs.cli:main"


@pytest.mark.parametrize("command", ["learn", "evaluate", "report"])
def test_missing_extra_prints_the_install_line(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec

    def without_yaml(name: str, *args: object, **kwargs: object):
        return None if name == "yaml" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(entrypoints.importlib.util, "find_spec", without_yaml)
    assert getattr(entrypoints, command)() == 2
    err = capsys.readouterr().err
    assert "missing: pyyaml" in err
    assert "resd[learner]" in err
    assert "Traceback" not in err


def test_installed_extra_runs_the_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert entrypoints.missing_learner_packages() == []
    monkeypatch.setattr("sys.argv", ["resd-report", "--help"])
    with pytest.raises(SystemExit) as stop:
        entrypoints.report()
    assert stop.value.code == 0
    assert "usage: resd-report" in capsys.readouterr().out
