"""The RESD → GRPO schedule: the windowed trigger (resd_learner.schedule) and the switch inside the trainer."""

from __future__ import annotations

import json

import pytest

from resd_learner.checkpoint import latest_checkpoint
from resd_learner.config import RunConfigError, load_config
from resd_learner.metrics import read_jsonl
from resd_learner.schedule import GRPO, SELF_DISTILLATION, GrpoSwitch
from resd_learner.trainer import Trainer
from resd_learner.types import Score

# scripted training rewards per outer batch (B = 1 prompt; 2 rollouts once in GRPO)
SCRIPT = {0: [1.0], 1: [0.0], 2: [1.0], 3: [1.0], 4: [1.0, 0.0]}


def test_switch_needs_a_full_window_at_or_above_the_threshold():
    switch = GrpoSwitch(0.6, 2)
    decisions = [switch.observe(rate, step=b + 1, batch=b) for b, rate in enumerate([1.0, 0.0, 1.0, 0.6, 0.0])]
    assert decisions == [False, False, False, True, False]  # 1.0 alone is not a full window; (1.0+0.6)/2 = 0.8
    assert switch.phase == GRPO and switch.phase_index == 1
    assert switch.switched_at["after_batch"] == 3 and switch.switched_at["windowed_success_rate"] == pytest.approx(0.8)
    restored = GrpoSwitch(0.6, 2)
    restored.load_state_dict(json.loads(json.dumps(switch.state_dict())))
    assert restored.is_grpo and restored.state_dict() == switch.state_dict()
    assert not restored.observe(0.0, step=9, batch=8)  # one-way


def test_schedule_errors():
    with pytest.raises(ValueError, match="success_rate"):
        GrpoSwitch(1.5, 1)
    with pytest.raises(ValueError, match="window"):
        GrpoSwitch(0.5, 0)
    with pytest.raises(ValueError, match="finite"):
        GrpoSwitch(0.5, 1).observe(float("nan"), step=1, batch=0)
    with pytest.raises(ValueError, match="phase"):
        GrpoSwitch(0.5, 1).load_state_dict({"phase": "ppo", "recent": []})
    fresh = GrpoSwitch(0.5, 1)
    assert fresh.phase == SELF_DISTILLATION and fresh.windowed_rate() is None


def test_schedule_config_problems(smoke_config_path):
    with pytest.raises(RunConfigError) as info:
        load_config(smoke_config_path, ["method.switch_to_grpo.success_rate=2", "method.switch_to_grpo.n=1",
                                        "method.switch_to_grpo.window=0"])
    assert len(info.value.problems) == 3
    with pytest.raises(RunConfigError, match="GRPO from the start"):
        load_config(smoke_config_path, ["method.name=grpo", "rollout.n=2", "context.enabled=false",
                                        "method.switch_to_grpo.success_rate=0.5"])
    with pytest.raises(RunConfigError, match="context.solution_buffer=true was set"):
        load_config(smoke_config_path, ["method.name=sdpo", "context.solution_buffer=true"])


class ScriptedTrainer(Trainer):
    """Real rollouts of the tiny model, with rewards replaced by :data:`SCRIPT` and canned context calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updater.generate = lambda chats, schema=None: ['{"reasoning": "r", "bullet_tags": []}' for _ in chats]
        self.rollout_sizes = []

    def _rollout(self, tasks):
        samples = super()._rollout(tasks)
        rewards = SCRIPT[self.next_batch]
        assert len(samples) == len(rewards)
        for sample, reward in zip(samples, rewards):
            sample.score = Score(reward=reward, score=reward, passed=reward == 1.0,
                                 feedback="" if reward == 1.0 else "Test Case 1: Wrong Answer")
        self.rollout_sizes.append(len(samples))
        return samples


def _config(smoke_config_path, run_dir):
    return load_config(smoke_config_path, [
        f"train.run_dir={run_dir}", "rollout.backend=hf", "rollout.max_tokens=6", "context.max_reflection_tokens=6",
        "context.max_slot_chars=1500", "env.num_train=5", "train.batch_size=1", "train.updates_per_batch=1",
        "train.max_batches=null", "train.save_every=1", "train.val_every=0", "train.val_before_train=false",
        "train.val_after_train=false", "method.switch_to_grpo.success_rate=0.6", "method.switch_to_grpo.window=2",
        "method.switch_to_grpo.n=2"])


def _comparable(records):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


@pytest.fixture(scope="module")
def switched_run(tmp_path_factory, tiny_model_dir, smoke_config_path):
    run_dir = tmp_path_factory.mktemp("switch")
    trainer = ScriptedTrainer(_config(smoke_config_path, run_dir))
    trainer.fit()
    return trainer


def test_switch_happens_after_the_right_batch(switched_run):
    trainer = switched_run
    train = [r for r in read_jsonl(trainer.run_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["method/phase"] for r in train] == [0, 0, 0, 0, 1]  # window means: -, 0.5, 0.5, 1.0 -> switch
    assert [r["method/name"] for r in train] == ["resd"] * 4 + ["grpo"]
    assert "loss/distill" in train[3] and "loss/policy" in train[4] and train[4]["rollout/success_rate"] == 0.5
    assert trainer.rollout_sizes == [1, 1, 1, 1, 2]
    assert trainer.teacher is None and trainer.engine.gradient_accumulation_steps() == 2
    phase = json.loads((trainer.run_dir / "phase.json").read_text())
    assert phase["phase"] == "grpo" and phase["rollout_n"] == 2
    assert (phase["switched_at"]["step"], phase["switched_at"]["after_batch"]) == (4, 3)
    state = json.loads((latest_checkpoint(trainer.run_dir / "checkpoints") / "state.json").read_text())
    assert state["global_step"] == 5 and state["schedule"]["phase"] == "grpo"


def test_resume_after_the_switch_stays_grpo(tmp_path, switched_run, smoke_config_path):
    config = _config(smoke_config_path, tmp_path)
    with pytest.raises(RuntimeError, match="injected failure after step 5"):
        ScriptedTrainer(config, fail_after_step=5).fit()
    checkpoint = latest_checkpoint(tmp_path / "checkpoints")
    assert checkpoint.name == "step_4"  # saved right after the switch, before any GRPO step
    resumed = ScriptedTrainer(config)
    assert resumed.method_name == "resd" and resumed.teacher is not None
    resumed.fit(resume_from=checkpoint)
    assert resumed.method_name == "grpo" and resumed.rollout_sizes == [2] and resumed.teacher is None
    got = read_jsonl(tmp_path / "metrics.jsonl")
    want = read_jsonl(switched_run.run_dir / "metrics.jsonl")
    assert [r["step"] for r in got] == [1, 2, 3, 4, 5]
    assert _comparable(got) == _comparable(want)
    assert json.loads((tmp_path / "phase.json").read_text()) == \
        json.loads((switched_run.run_dir / "phase.json").read_text())
