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


# -- the gymnasium contract: splits, reward mode, feedback cap, privileged feedback ----------------
class SplitEnv(gymnasium.Env):
    """A toy env with its own train/test data, chosen by a make kwarg or a reset option."""

    DATA = {"train": ["alpha", "beta"], "test": ["gamma", "delta"]}

    def __init__(self, data: str = "train") -> None:
        self.data = data
        self.observation_space = spaces.Text(max_length=200, min_length=0, charset=string.printable)
        self.action_space = spaces.Text(max_length=200, charset=string.printable)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        split = (options or {}).get("split", self.data)
        self.word = self.DATA[split][seed % 2]
        return f"Spell {self.word} twice.", {"task_id": f"{split}-{self.word}"}

    def step(self, action):
        count = min(action.split().count(self.word), 2)
        info = {"passed": count == 2, "score": count / 2, "num_tests": 2, "error_type": None if count == 2 else "wrong",
                "feedback": "x" * 500, "privileged_feedback": f"the answer is '{self.word} {self.word}'"}
        return "", count / 2, True, False, info


class PixelEnv(gymnasium.Env):
    observation_space = spaces.Box(0, 1, (2,))
    action_space = spaces.Text(max_length=10)


gymnasium.register("learnertest/Split-v0", entry_point=SplitEnv)
gymnasium.register("learnertest/Pixel-v0", entry_point=PixelEnv)


def test_env_train_and_test_selection_by_make_kwargs():
    config = EnvConfig(id="learnertest/Split-v0", num_train=2, num_val=2, train_kwargs={"data": "train"},
                       val_kwargs={"data": "test"})
    source = make_task_source(config)
    assert [t.example_id for t in source.tasks("train", 2)] == ["train-alpha", "train-beta"]
    val = source.tasks("test", 2)
    assert [t.example_id for t in val] == ["test-gamma", "test-delta"]  # val_seed 1_000_000 is even
    assert source.score(val[:1], ["gamma gamma"])[0].passed  # scored on the same split's env


def test_env_train_and_test_selection_by_reset_option():
    source = make_task_source(EnvConfig(id="learnertest/Split-v0", split_option="split", train_seed=0, val_seed=0))
    assert [t.example_id for t in source.tasks("test", 2)] == ["test-gamma", "test-delta"]
    assert [t.example_id for t in source.tasks("train", 1)] == ["train-alpha"]


def test_reward_mode_and_feedback_cap_apply_to_any_gym_id():
    task = make_task_source(EnvConfig(id="learnertest/Split-v0", train_seed=0)).tasks("train", 1)[0]
    binary = make_task_source(EnvConfig(id="learnertest/Split-v0", train_seed=0, max_feedback_chars=100))
    dense = make_task_source(EnvConfig(id="learnertest/Split-v0", train_seed=0, reward_mode="pass_rate"))
    half = binary.score([task], ["alpha"])[0]
    assert half.reward == 0.0 and half.score == 0.5 and half.num_tests == 2 and half.error_type == "wrong"
    assert len(half.feedback) <= 100 and "truncated" in half.feedback
    assert dense.score([task], ["alpha"])[0].reward == 0.5


def test_privileged_feedback_reaches_the_context_view():
    from resd_learner.batch import sample_views
    from resd_learner.types import Sample

    source = make_task_source(EnvConfig(id="learnertest/Split-v0", train_seed=0))
    task = source.tasks("train", 1)[0]
    score = source.score([task], ["nope"])[0]
    assert score.privileged_feedback == "the answer is 'alpha alpha'" and score.context_feedback.startswith("the")
    sample = Sample(task=task, group_index=0, prompt_ids=[1], response_ids=[2], response_text="nope",
                    finish_reason="stop", score=score)
    view = sample_views([sample], 0.5)[0]
    assert view.feedback == "the answer is 'alpha alpha'"
    assert view.policy_feedback == score.feedback == view.lesson_source  # what a playbook lesson may quote
    plain = make_task_source(EnvConfig(id="learnertest/Letter-v0", train_seed=0))
    letter = plain.tasks("train", 1)[0]
    assert plain.score([letter], ["?"])[0].context_feedback.startswith("missing")  # falls back to feedback


def test_env_checker_problems_are_one_line_each():
    from resd_learner.task_sources import env_problems

    assert env_problems(EnvConfig(id=MANUFACTORIA)) == []
    assert env_problems(EnvConfig(id="learnertest/Split-v0", num_train=2, num_val=2)) == []
    [typo] = env_problems(EnvConfig(id="learnertest/Splt-v0"))
    assert "did you mean 'learnertest/Split-v0'" in typo
    [resd_typo] = env_problems(EnvConfig(id="resd/Manufactoria-Hass-v0"))
    assert MANUFACTORIA in resd_typo
    missing = env_problems(EnvConfig(id="learnertest/Split-v0"))
    assert len(missing) == 2 and "env.num_train is required" in missing[0]
    [pixels] = env_problems(EnvConfig(id="learnertest/Pixel-v0", num_train=1, num_val=1))
    assert "Box observation space" in pixels
    assert all("\n" not in p for p in missing + [typo, pixels])


def test_resd_env_kwargs_are_checked_against_the_family_before_any_model_loads():
    from resd_learner.task_sources import env_problems

    assert env_problems(EnvConfig(id="resd/FinerMini-v0", kwargs={"gold_feedback": "reply"})) == []
    [bad_value] = env_problems(EnvConfig(id="resd/FinerMini-v0", kwargs={"gold_feedback": "bogus"}))
    assert "gold_feedback='bogus' is not one of 'tag', 'reply'" in bad_value and "resd/FinerMini-v0" in bad_value
    assert env_problems(EnvConfig(id="resd_envs:resd/FinerMini-v0", kwargs={"gold_feedback": "bogus"})) == [
        bad_value.replace("env.id='resd/FinerMini-v0'", "env.id='resd_envs:resd/FinerMini-v0'")]
    [unknown] = env_problems(EnvConfig(id=MANUFACTORIA, kwargs={"reward_test": "reference"}))
    assert "'reward_test'" in unknown and "reward_tests" in unknown
    [several] = env_problems(EnvConfig(id="resd/BouncingSim-Easy-v0", kwargs={"sandbox": "none", "num_test": 0}))
    assert "sandbox='none'" in several and "num_test=0" in several and "\n" not in several


def test_cli_checks_env_and_model_before_loading(tmp_path, smoke_config_path, capsys):
    from resd_learner.cli import main

    code = main(["--config", str(smoke_config_path), "--print-config", "env.id=learnertest/Splt-v0",
                 f"model.path={tmp_path / 'nowhere'}"])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'learnertest/Split-v0'" in err and "does not exist" in err
    assert "Traceback" not in err
