"""The quickstart's promises that can be checked without training: variant env, disjoint data, summary inputs."""

from __future__ import annotations

from pathlib import Path

import resd_envs
from resd_learner.config import load_config
from resd_learner.warm_start import warm_start_examples

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


def test_quickstart_trains_on_finer_mini_with_a_format_only_warm_start() -> None:
    config = load_config(CONFIG)
    assert config.env.id == "resd/FinerMini-v0" and config.method.name == "resd"
    assert config.warm_start.enabled and config.warm_start.targets == "random_candidate"
    assert config.train.val_before_train and config.train.val_after_train


def test_warm_start_training_and_validation_prompts_are_disjoint() -> None:
    config = load_config(CONFIG)
    train = [dict(r) for r in resd_envs.load_tasks(config.env.id, config.env.train_split)]
    val = resd_envs.load_tasks(config.env.id, config.env.val_split)[: config.env.num_val]
    warm = {prompt for prompt, _ in warm_start_examples(train, config.warm_start, reserved=config.env.num_train)}
    trained = {r["prompt"] for r in train[: config.env.num_train]}
    validated = {r["prompt"] for r in val}
    assert len(warm) == config.warm_start.num_examples and len(trained) == config.env.num_train
    assert not warm & trained and not warm & validated and not trained & validated
    assert not {r["sentence"] for r in train} & {r["sentence"] for r in val}


def test_quickstart_teacher_reads_the_gold_written_as_the_reply() -> None:
    config = load_config(CONFIG)
    env = resd_envs.make(config.env.id, **config.env.kwargs)
    env.reset(seed=0)
    gold = env.unwrapped.task["gold"]
    wrong = next(c for c in env.unwrapped.task["candidates"] if c != gold)
    _, reward, _, _, info = env.step(f"<answer>{wrong}</answer>")
    assert reward == 0.0 and gold not in info["feedback"]
    assert info["privileged_feedback"].endswith(f"The correct reply is <answer>{gold}</answer>.")
