"""The learner's environment side (resd_learner.task_sources): resd ids through verify, any gymnasium id via reset/step."""

from __future__ import annotations

import string

import gymnasium
import pytest
from gymnasium import spaces

import resd_envs
from resd_learner.config import EnvConfig
from resd_learner.task_sources import GymTaskSource, ResdTaskSource, is_resd_id, make_task_source

MANUFACTORIA = "resd/Manufactoria-Has-v0"


class LetterEnv(gymnasium.Env):
    """Single-step toy env: the prompt names a letter; the reward is 1 if the response contains it."""

    def __init__(self, letters: str = "abcdefgh") -> None:
        self.letters = letters
        self.observation_space = spaces.Text(max_length=100, min_length=0, charset=string.printable)
        self.action_space = spaces.Text(max_length=100, min_length=0, charset=string.printable)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.target = self.letters[int(self.np_random.integers(len(self.letters)))]
        return f"Write the letter {self.target}.", {}

    def step(self, action):
        ok = self.target in action
        return ("" if ok else f"missing {self.target}"), float(ok), True, False, {}


gymnasium.register("learnertest/Letter-v0", entry_point=LetterEnv)


def test_resd_ids_are_detected():
    assert is_resd_id(MANUFACTORIA) and is_resd_id("resd_envs:" + MANUFACTORIA)
    assert not is_resd_id("learnertest/Letter-v0")
    assert isinstance(make_task_source(EnvConfig(id=MANUFACTORIA)), ResdTaskSource)
    assert isinstance(make_task_source(EnvConfig(id="learnertest/Letter-v0")), GymTaskSource)


def test_resd_stream_is_in_file_order_and_scores_in_batch():
    source = ResdTaskSource(MANUFACTORIA, max_feedback_chars=2000, max_workers=1)
    tasks = source.tasks("train", limit=3)
    rows = resd_envs.load_tasks(MANUFACTORIA, "train")[:3]
    assert [t.example_id for t in tasks] == [r["task_id"] for r in rows]
    assert [t.index for t in tasks] == [0, 1, 2]
    assert tasks[0].prompt == rows[0]["prompt"] and tasks[0].messages[-1]["role"] == "user"
    family = resd_envs.family(MANUFACTORIA)
    reference = family.reference_response(family.task_by_id(tasks[0].example_id))
    scores = source.score([tasks[0], tasks[1]], [reference, "no program here"])
    assert scores[0].reward == 1.0 and scores[0].passed and scores[0].score == 1.0 and scores[0].num_tests > 0
    assert scores[1].reward == 0.0 and not scores[1].passed and scores[1].error_type is not None
    assert scores[1].feedback and len(scores[1].feedback) <= 2000
    with pytest.raises(ValueError, match="one of each"):
        source.score(tasks, ["x"])


def test_gym_source_prompts_from_seeded_resets():
    source = GymTaskSource("learnertest/Letter-v0", seeds={"train": 10, "test": 500})
    tasks = source.tasks("train", limit=4)
    again = source.tasks("train", limit=4)
    assert [t.prompt for t in tasks] == [t.prompt for t in again]
    assert [t.env_state["seed"] for t in tasks] == [10, 11, 12, 13]
    letters = [t.prompt[-2] for t in tasks]
    scores = source.score(tasks, [f"the answer is {c}" for c in letters])
    assert all(s.reward == 1.0 and s.passed and s.score == 1.0 for s in scores)
    wrong = source.score(tasks[:1], ["zzz"])[0]
    assert wrong.reward == 0.0 and wrong.feedback.startswith("missing")
    with pytest.raises(ValueError, match="env.num_train"):
        source.tasks("train")


def test_gym_source_accepts_module_prefixed_ids():
    source = GymTaskSource("resd_envs:" + MANUFACTORIA, seeds={"train": 0})
    task = source.tasks("train", limit=1)[0]
    assert "manufactoria" in task.prompt.lower()
    score = source.score([task], ["nothing"])[0]
    assert score.reward == 0.0 and score.feedback


def test_unknown_gym_id_is_a_clear_error():
    with pytest.raises(ValueError, match="not a registered gymnasium id"):
        GymTaskSource("learnertest/Nope-v0")
