"""The shared core: results arithmetic, feedback capping, the generic env on a toy family, assets."""

from __future__ import annotations

import pickle

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

from resd_envs.assets import asset_dir
from resd_envs.core import Evaluation, TaskEnv, TaskFamily, TestResult, VerifyResult
from resd_envs.core.results import cap_text, check_scoring_options, scoring_option_problems
from resd_envs.core.spaces import AnyText
from resd_envs.errors import AssetNotFoundError, ConfigError, UnknownTaskError


class EchoFamily(TaskFamily):
    """Toy family: task k passes when the response is the word in the task, one test per letter."""

    env_id = "resd/Echo-v0"
    version = "echo-v0"

    def load_split(self, split: str):
        words = {"train": ["alpha", "beta", "gamma"], "test": ["delta"]}[split]
        return [{"task_id": f"{split}-{w}", "prompt": f"Say {w} ✓", "word": w} for w in words]

    def evaluate(self, task, response, *, detail="full", max_chars=4000):
        word = task["word"]
        if not response.strip():
            return Evaluation((), "no_code", "empty response", num_tests=len(word))
        results = tuple(
            TestResult(f"c{i}", i < len(response) and response[i] == ch, f"letter {i}")
            for i, ch in enumerate(word)
        )
        return Evaluation(results, None if all(r.passed for r in results) else "wrong_answer",
                          cap_text("x" * 50 + " feedback", max_chars))

    def reference_response(self, task):
        return task["word"]


class EchoEnv(TaskEnv):
    family_class = EchoFamily


def test_evaluation_scores_and_rewards() -> None:
    ev = Evaluation((TestResult("a", True), TestResult("b", False)), "wrong_answer", "fb")
    assert ev.num_tests == 2 and ev.num_passed == 1 and ev.score == 0.5 and not ev.passed
    assert ev.reward("binary") == 0.0 and ev.reward("pass_rate") == 0.5
    with pytest.raises(ValueError, match="reward_mode"):
        ev.reward("full_pass")
    with pytest.raises(ValueError, match="error_type"):
        Evaluation((), "exploded", "")
    empty = Evaluation((), "no_code", "none", num_tests=15)
    assert empty.score == 0.0 and empty.num_tests == 15 and not empty.passed
    vr = VerifyResult.from_evaluation("t", ev, "pass_rate")
    assert vr.reward == 0.5 and vr.as_dict()["test_results"][1] == {"id": "b", "passed": False, "message": "", "score": 0.0}


def test_graded_test_results_give_a_graded_score() -> None:
    ev = Evaluation((TestResult("a", False, score=0.25), TestResult("b", True)), "wrong_answer", "fb")
    assert ev.score == pytest.approx(0.625) and ev.reward("pass_rate") == pytest.approx(0.625)
    assert ev.num_passed == 1 and ev.reward("binary") == 0.0
    unrun = Evaluation((TestResult("a", True, score=1.0),), None, "fb", num_tests=4)
    assert unrun.score == 0.25


def test_scoring_option_problems_name_every_bad_option() -> None:
    assert scoring_option_problems("binary", "full", 4000) == []
    assert scoring_option_problems("pass_rate", "privileged", 0, max_attempts=1) == []
    problems = scoring_option_problems("best", "loud", -1, max_attempts=0)
    assert [p.split("=")[0] for p in problems] == ["reward_mode", "feedback", "max_attempts", "max_feedback_chars"]
    assert scoring_option_problems("binary", "full", 10, max_attempts=True) == [
        "max_attempts=True: use an integer >= 1"
    ]
    (leak,) = scoring_option_problems("binary", "privileged", 10, max_attempts=2)
    assert leak.startswith("feedback='privileged' with max_attempts=2")
    with pytest.raises(ConfigError, match="invalid scoring options:\n  - max_feedback_chars='10'"):
        check_scoring_options("binary", "full", "10")  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, 5, 30, 31, 100])
def test_cap_text_never_exceeds_cap(n: int) -> None:
    text = "abcdefghij" * 10
    capped = cap_text(text, n)
    if n == 0 or n >= len(text):
        assert capped == text
    else:
        assert len(capped) <= n
    long = cap_text("y" * 1000, 60)
    assert len(long) <= 60 and "truncated" in long


def test_cap_text_holds_when_the_count_gains_a_digit() -> None:
    for size in (95, 99, 100, 101, 995, 1000, 1001, 10_050):
        text = "z" * size
        for cap in range(1, 120):
            assert len(cap_text(text, cap)) <= cap


def test_any_text_space_admits_unicode_and_bounds() -> None:
    space = AnyText(max_length=10)
    assert "héllo ✓" in space and "" in space
    assert "x" * 11 not in space and 5 not in space
    assert isinstance(space, gymnasium.spaces.Text)
    assert space.sample() in space


def test_toy_env_contract() -> None:
    env = EchoEnv()
    check_env(env)
    obs, info = env.reset(options={"task_id": "train-beta"})
    assert obs == "Say beta ✓" and info["messages"][0]["content"] == obs
    _, reward, terminated, _, info = env.step("beta")
    assert reward == 1.0 and terminated and info["passed"]
    env = EchoEnv(reward_mode="pass_rate", max_feedback_chars=20)
    env.reset(options={"task_index": -1})
    feedback, reward, _, _, info = env.step("gaxxx")
    assert reward == pytest.approx(2 / 5) and len(feedback) <= 20
    clone = pickle.loads(pickle.dumps(env))
    assert clone.family._rows == {}


def test_env_argument_errors_are_collected() -> None:
    with pytest.raises(ConfigError) as err:
        EchoEnv(reward_mode="full", feedback="loud", max_attempts=0)
    message = str(err.value)
    assert "reward_mode" in message and "feedback" in message and "max_attempts" in message
    with pytest.raises(ConfigError, match="feedback='privileged' with max_attempts=3"):
        EchoEnv(feedback="privileged", max_attempts=3)
    with pytest.raises(ConfigError, match="render_mode='human': use one of 'ansi' or None"):
        EchoEnv(render_mode="human")
    with pytest.raises(ConfigError, match="split"):
        EchoEnv(split="validation")
    env = EchoEnv()
    with pytest.raises(UnknownTaskError, match="out of range"):
        env.reset(options={"task_index": 7})
    with pytest.raises(ConfigError, match="unknown reset option"):
        env.reset(options={"task": 1})
    with pytest.raises(gymnasium.error.ResetNeeded):
        EchoEnv().step("x")


def test_task_set_checksum_is_stable_and_order_sensitive() -> None:
    fam = EchoFamily()
    first = fam.task_set_sha256("train")
    assert first == EchoFamily().task_set_sha256("train") and len(first) == 64
    assert first != fam.task_set_sha256("test")


def test_asset_dirs_are_found() -> None:
    assert asset_dir("grammars").is_dir() and asset_dir("physics").is_dir()
    with pytest.raises(AssetNotFoundError):
        asset_dir("models")
