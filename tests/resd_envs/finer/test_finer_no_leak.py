"""Finer feedback the policy sees never carries gold tags: copying it into a second attempt does not score."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import resd_envs
from resd_envs.finer.family import FinerFamily
from resd_envs.finer.labels import LABELS

FIRST = "<answer>Revenues,Revenues,Revenues,Revenues</answer>"
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]+")
_VALID = {label.lower(): label for label in LABELS}


def copy_attack(feedback: str, n: int = 4) -> str:
    """A lookup attacker: the sample-level gold string if shown, else the last valid tag named per question."""
    for marker in ("Ground truth: ", "The correct tags are: "):
        if marker in feedback:
            return "<answer>" + feedback.split(marker, 1)[1].splitlines()[0] + "</answer>"
    answers = ["Revenues"] * n
    blocks = re.split(r"(?m)^Q(\d+) ", feedback)
    for number, block in zip(blocks[1::2], blocks[2::2]):
        named = [_VALID[t.lower()] for t in _TOKEN.findall(block) if t.lower() in _VALID]
        if named and 1 <= int(number) <= n:
            answers[int(number) - 1] = named[-1]
    return "<answer>" + ",".join(answers) + "</answer>"


@pytest.mark.parametrize("style", ["detailed", "ace", "resd"])
def test_copying_policy_feedback_does_not_score(data_dir: Path, style: str) -> None:
    fam = FinerFamily(data_dir=data_dir / "finer", feedback_style=style)
    tasks = fam.tasks("test")[:100]
    policy_wins = {level: 0 for level in ("full", "summary", "minimal")}
    privileged_wins = 0
    for task in tasks:
        n = int(task["num_questions"])
        first = fam.evaluate(task, FIRST, max_chars=0)
        if first.passed:
            continue
        for level in policy_wins:
            text = fam.evaluate(task, FIRST, detail=level, max_chars=0).feedback
            policy_wins[level] += fam.evaluate(task, copy_attack(text, n)).passed
        privileged_wins += fam.evaluate(task, copy_attack(first.privileged_feedback, n)).passed
    assert policy_wins == {"full": 0, "summary": 0, "minimal": 0}
    assert privileged_wins >= 95  # the attack is real: the privileged text does carry the gold tags


def test_env_second_attempt_from_observation_does_not_score(data_dir: Path) -> None:
    env = resd_envs.make("resd/Finer-v0", data_dir=str(data_dir / "finer"), max_attempts=2)
    wins = 0
    for index in range(30):
        env.reset(options={"task_index": index})
        obs, reward, done, _, info = env.step(FIRST)
        if done:
            continue
        assert "privileged_feedback" in info and info["privileged_feedback"] != obs
        wins += env.step(copy_attack(obs))[1] == 1.0
    assert wins == 0
