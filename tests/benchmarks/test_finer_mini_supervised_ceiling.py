"""benchmarks/finer_mini_supervised_ceiling.py: it fine-tunes on the run's own training prompts and their gold."""

from __future__ import annotations

from pathlib import Path

import pytest

import resd_envs
from resd_learner.config import load_config
from resd_learner.warm_start import warm_start_examples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ceiling(load_benchmark):
    return load_benchmark("finer_mini_supervised_ceiling")


def test_pairs_are_the_training_prompts_with_their_gold_reply(ceiling):
    config = load_config(ROOT / "configs" / "quickstart.yaml")
    pairs = ceiling.gold_pairs(config)
    rows = list(resd_envs.load_tasks(config.env.id, config.env.train_split))
    assert len(pairs) == config.env.num_train == 128
    assert [p for p, _ in pairs] == [str(r["prompt"]) for r in rows[:128]]
    assert [t for _, t in pairs] == [f"<answer>{r['gold']}</answer>" for r in rows[:128]]
    assert all(t.removeprefix("<answer>").removesuffix("</answer>") in r["candidates"] for (_, t), r in zip(pairs, rows))


def test_pairs_share_no_prompt_with_the_warm_start_or_validation(ceiling):
    config = load_config(ROOT / "configs" / "quickstart.yaml")
    prompts = {p for p, _ in ceiling.gold_pairs(config)}
    rows = [dict(r) for r in resd_envs.load_tasks(config.env.id, config.env.train_split)]
    warm = {p for p, _ in warm_start_examples(rows, config.warm_start, reserved=config.env.num_train)}
    val = {str(r["prompt"]) for r in list(resd_envs.load_tasks(config.env.id, config.env.val_split))[:config.env.num_val]}
    assert prompts and not prompts & warm and not prompts & val


def test_overrides_reach_the_pairs(ceiling):
    config = load_config(ROOT / "configs" / "quickstart.yaml", ["env.num_train=32"])
    assert len(ceiling.gold_pairs(config)) == 32


@pytest.mark.parametrize(("argv", "message"), [
    (["--lr", "-1"], "--lr=-1.0: use a positive learning rate"),
    (["env.num_train=8", "--lr", "1e-4"], "fewer than train.batch_size=16"),
    (["env.id=resd/Nope-v0", "--lr", "1e-4"], "is not a resd environment"),
    (["--config", "missing.yaml"], "does not exist"),
])
def test_bad_input_is_one_error_line_before_any_training(ceiling, tmp_path, capsys, argv, message):
    assert ceiling.main(["--out", str(tmp_path / "out"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
