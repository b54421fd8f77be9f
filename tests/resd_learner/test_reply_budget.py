"""The reply-budget check: reference replies measured against rollout.max_tokens / eval.max_tokens."""

from __future__ import annotations

import logging

import pytest

from resd_learner.config import load_config
from resd_learner.reply_budget import budget_warnings, check_reply_budget
from resd_learner.task_sources import GymTaskSource, ResdTaskSource
from resd_learner.types import Task


class WordTokenizer:
    """One token per whitespace-separated word (enough to count)."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        assert add_special_tokens is False  # generated tokens carry no BOS
        return {"input_ids": list(range(len(text.split())))}


def _tasks(n: int) -> list[Task]:
    return [Task(example_id=f"t{i}", messages=({"role": "user", "content": "q"},), prompt="q", index=i) for i in range(n)]


def test_counts_the_replies_over_the_budget_longest_first():
    references = ["a b", "a b c d e", None, "a b c", "a b c d e f"]
    check = check_reply_budget(_tasks(5), references, WordTokenizer(), max_tokens=3, split="validation")
    assert (check.checked, check.over, check.longest, check.example_ids) == (4, 2, 6, ("t4", "t1"))
    assert not check.fits
    line = check.message("rollout.max_tokens")
    assert line.startswith("rollout.max_tokens=3: the reference reply of 2 of 4 validation tasks is longer")
    assert "longest 6 tokens" in line and "t4, t1" in line and "at least 6" in line
    assert check_reply_budget(_tasks(5), references, WordTokenizer(), max_tokens=6, split="x").fits
    with pytest.raises(ValueError, match="2 tasks but 1 references"):
        check_reply_budget(_tasks(2), ["a"], WordTokenizer(), 3, "x")


def test_finer_mini_reference_replies_are_the_gold_answer(tiny_tokenizer):
    source = ResdTaskSource("resd/FinerMini-v0")
    tasks = source.tasks("test", 5)
    replies = source.reference_replies(tasks)
    golds = [source._api.family("resd/FinerMini-v0").task_by_id(t.example_id, "test")["gold"] for t in tasks]
    assert replies == [f"<answer>{gold}</answer>" for gold in golds]
    longest = max(len(tiny_tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)
    split = [("validation", tasks, longest - 1, "eval.max_tokens")]
    [line] = budget_warnings(source, tiny_tokenizer, split)
    assert line.startswith(f"eval.max_tokens={longest - 1}: the reference reply of ") and f"at least {longest}" in line
    assert budget_warnings(source, tiny_tokenizer, [("validation", tasks, longest, "eval.max_tokens")]) == []


def test_envs_without_reference_replies_are_not_checked():
    source = GymTaskSource("CartPole-v1")
    assert not hasattr(source, "reference_replies")
    assert budget_warnings(source, WordTokenizer(), [("training", _tasks(2), 1, "rollout.max_tokens")]) == []


def test_the_trainer_warns_before_training_when_answers_cannot_fit(tmp_path, tiny_model_dir, smoke_config_path, caplog):
    from resd_learner.trainer import Trainer

    config = load_config(smoke_config_path, [f"train.run_dir={tmp_path}", "rollout.max_tokens=8", "eval.max_tokens=12"])
    with caplog.at_level(logging.WARNING, logger="resd_learner"):
        trainer = Trainer(config)
    try:
        lines = [r.getMessage() for r in caplog.records if r.name == "resd_learner"]
        # Manufactoria's reference programs are far longer than 8 or 12 tokens
        assert any(m.startswith("resd-learn: rollout.max_tokens=8: the reference reply of 4 of 4 training tasks")
                   for m in lines), lines
        assert any(m.startswith("resd-learn: eval.max_tokens=12: the reference reply of 2 of 2 validation tasks")
                   for m in lines), lines
    finally:
        trainer.close()
