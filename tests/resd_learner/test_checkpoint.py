"""Checkpoint and resume (resd_learner.checkpoint + Trainer): a killed run continues exactly."""

from __future__ import annotations

import pytest
import torch

from resd_learner.checkpoint import checkpoint_dirs, latest_checkpoint
from resd_learner.config import load_config
from resd_learner.metrics import read_jsonl
from resd_learner.trainer import Trainer


def _config(smoke_config_path, run_dir):
    return load_config(smoke_config_path, [
        f"train.run_dir={run_dir}", "rollout.backend=hf", "rollout.max_tokens=8", "context.max_reflection_tokens=8", "context.max_slot_chars=1500",
        "train.max_batches=2", "train.updates_per_batch=2", "train.save_every=1", "train.keep_checkpoints=2",
        "train.val_before_train=false", "train.val_every=0", "train.val_after_train=false", "teacher.rate=0.3",
    ])


def _comparable(records):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


def _state(trainer):
    return {
        "step": trainer.global_step, "next_batch": trainer.next_batch,
        "context": trainer.updater.state_dict(),
        "student": {k: v.clone() for k, v in trainer.engine.module.state_dict().items()},
        "teacher": {k: v.clone() for k, v in trainer.teacher.module.state_dict().items()},
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir, smoke_config_path):
    run_dir = tmp_path_factory.mktemp("whole")
    trainer = Trainer(_config(smoke_config_path, run_dir))
    trainer.fit()
    return run_dir, _state(trainer)


def test_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path, uninterrupted, smoke_config_path):
    whole_dir, whole = uninterrupted
    config = _config(smoke_config_path, tmp_path)
    with pytest.raises(RuntimeError, match="injected failure after step 3"):
        Trainer(config, fail_after_step=3).fit()
    assert [step for step, _ in checkpoint_dirs(tmp_path / "checkpoints")] == [2]
    assert max(r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")) == 3  # step 3 ran but was not saved

    resumed = Trainer(config)
    resumed.fit(resume_from=latest_checkpoint(tmp_path / "checkpoints"))
    state = _state(resumed)
    assert (state["step"], state["next_batch"]) == (whole["step"], whole["next_batch"]) == (4, 2)
    assert state["context"] == whole["context"]  # playbook, solution buffer, counters, updater RNG
    assert all(torch.equal(state["student"][k], whole["student"][k]) for k in whole["student"])
    assert all(torch.equal(state["teacher"][k], whole["teacher"][k]) for k in whole["teacher"])
    got, want = read_jsonl(tmp_path / "metrics.jsonl"), read_jsonl(whole_dir / "metrics.jsonl")
    assert [r["step"] for r in got] == [1, 2, 3, 4]
    assert _comparable(got) == _comparable(want)  # next-step metrics equal, no duplicated step-3 record
    assert (tmp_path / "playbook.md").read_text() == (whole_dir / "playbook.md").read_text()
    assert (tmp_path / "playbook_history.jsonl").read_text() == (whole_dir / "playbook_history.jsonl").read_text()
    assert [step for step, _ in checkpoint_dirs(tmp_path / "checkpoints")] == [2, 4]  # keep_checkpoints=2


def test_checkpoint_layout_and_incomplete_directories(uninterrupted):
    run_dir, _ = uninterrupted
    root = run_dir / "checkpoints"
    latest = latest_checkpoint(root)
    assert latest.name == "step_4"
    assert {p.name for p in latest.iterdir()} >= {"model", "deepspeed", "state.pt", "state.json"}
    assert (latest / "model" / "config.json").is_file() and (latest / "model" / "tokenizer.json").is_file()
    (root / ".tmp-step_6").mkdir()  # a save interrupted before its rename
    (root / "step_8").mkdir()  # no state.json: never completed
    try:
        assert latest_checkpoint(root).name == "step_4"
    finally:
        (root / ".tmp-step_6").rmdir()
        (root / "step_8").rmdir()


def test_resume_cli_errors(tmp_path):
    from resd_learner.cli import main

    assert main(["--resume", str(tmp_path)]) == 2
    (tmp_path / "config.yaml").write_text("train: {run_dir: x}\n")
    assert main(["--resume", str(tmp_path)]) == 2
