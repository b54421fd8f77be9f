"""resd-learn's guards that run before any model loads: existing run directories and finished runs."""

from __future__ import annotations

import json

import pytest

import resd_learner.trainer as trainer_module
from resd_learner.checkpoint import RunDirExistsError, finished_run, prepare_new_run_dir
from resd_learner.cli import main
from resd_learner.config import dump_yaml, load_config


class NoModels:
    def __init__(self, *args, **kwargs):
        raise AssertionError("a model was about to be loaded")


@pytest.fixture
def no_models(monkeypatch):
    monkeypatch.setattr(trainer_module, "Trainer", NoModels)


def _fake_run(run_dir, smoke_config_path, *, next_batch, num_batches=1):
    config = load_config(smoke_config_path, [f"train.run_dir={run_dir}"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_yaml(config))
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "kind": "train"}\n')
    step = run_dir / "checkpoints" / "step_2"
    step.mkdir(parents=True)
    (step / "state.json").write_text(json.dumps({"global_step": 2, "next_batch": next_batch,
                                                 "num_batches": num_batches}))


def test_new_run_into_an_existing_run_is_refused_and_deletes_nothing(tmp_path, smoke_config_path, no_models,
                                                                    capsys):
    run_dir = tmp_path / "run"
    _fake_run(run_dir, smoke_config_path, next_batch=1)
    code = main(["--config", str(smoke_config_path), f"train.run_dir={run_dir}"])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and f"--resume {run_dir}" in err and "\n" not in err.strip()
    assert (run_dir / "metrics.jsonl").read_text().startswith('{"step": 1')


def test_non_run_directory_is_never_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirExistsError, match="holds no resd-learn run"):
        prepare_new_run_dir(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_overwrite_deletes_the_old_run(tmp_path, smoke_config_path):
    run_dir = tmp_path / "run"
    _fake_run(run_dir, smoke_config_path, next_batch=1)
    with pytest.raises(RunDirExistsError):
        prepare_new_run_dir(run_dir)
    prepare_new_run_dir(run_dir, overwrite=True)
    assert run_dir.is_dir() and not any(run_dir.iterdir())
    prepare_new_run_dir(tmp_path / "fresh")  # a new directory is simply created
    assert (tmp_path / "fresh").is_dir()


def test_resume_of_a_finished_run_says_so_without_loading_models(tmp_path, smoke_config_path, no_models, capsys):
    run_dir = tmp_path / "run"
    _fake_run(run_dir, smoke_config_path, next_batch=1, num_batches=1)
    assert finished_run(run_dir)[0] == 2
    assert main(["--resume", str(run_dir)]) == 0
    assert "is finished (2 steps" in capsys.readouterr().err


def test_unfinished_run_is_not_reported_finished(tmp_path, smoke_config_path):
    run_dir = tmp_path / "run"
    _fake_run(run_dir, smoke_config_path, next_batch=1, num_batches=3)
    assert finished_run(run_dir) is None
