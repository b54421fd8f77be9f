"""The reasoning-gym bridge: rg/<task>-v0 text envs with the resd env contract."""

from __future__ import annotations

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("reasoning_gym")

from resd_envs.core.env import STEP_INFO_KEYS  # noqa: E402
from resd_envs.errors import ConfigError, UnknownEnvError, UnknownTaskError  # noqa: E402
from resd_envs.integrations import reasoning_gym as bridge  # noqa: E402

ENV = "rg/leg_counting-v0"


def _answer(env: gymnasium.Env) -> str:
    inner = env.unwrapped
    return inner._item(inner._current)["answer"]


def test_every_task_is_registered_and_ids_round_trip() -> None:
    tasks = bridge.available_tasks()
    assert "leg_counting" in tasks and len(tasks) > 50
    assert all(bridge.env_id_for(t) in gymnasium.registry for t in tasks)
    assert bridge.task_name_of("resd_envs.integrations.reasoning_gym:rg/leg_counting-v0") == "leg_counting"
    with pytest.raises(UnknownEnvError, match="Did you mean 'leg_counting'"):
        bridge.task_name_of("rg/leg_countin-v0")
    with pytest.raises(UnknownEnvError, match="not a reasoning-gym id"):
        bridge.task_name_of("resd/Manufactoria-Has-v0")


@pytest.mark.parametrize("task", ["leg_counting", "basic_arithmetic", "word_sorting"])
def test_passes_gymnasium_check_env(task: str) -> None:
    env = bridge.make(bridge.env_id_for(task))
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_reset_is_deterministic_under_a_seed_and_info_matches_resd_envs() -> None:
    a, b = bridge.make(ENV), bridge.make(ENV)
    obs_a, info_a = a.reset(seed=7)
    obs_b, info_b = b.reset(seed=7)
    assert obs_a == obs_b and info_a == info_b
    assert info_a["messages"] == [{"role": "user", "content": obs_a}]
    assert set(info_a) >= {"task_id", "env_id", "split", "messages"}
    assert "<answer>" in obs_a
    _, reward, terminated, truncated, info = a.step(f"Counting...\n<answer>{_answer(a)}</answer>")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert tuple(info) == STEP_INFO_KEYS
    assert info["passed"] and info["error_type"] is None and info["num_passed"] == info["num_tests"] == 1


def test_module_prefixed_id_needs_no_import() -> None:
    env = gymnasium.make("resd_envs.integrations.reasoning_gym:rg/leg_counting-v0", split="test", size=10)
    _, info = env.reset(seed=0)
    assert info["task_id"].startswith("leg_counting/test/") and info["split"] == "test"


def test_options_pick_tasks_and_ids_work_across_splits() -> None:
    env = bridge.make(ENV, size=50)
    _, info = env.reset(options={"task_index": 3})
    assert info["task_id"] == "leg_counting/train/3"
    first = env.unwrapped._item(("train", 3))["question"]
    obs, info = env.reset(options={"task_id": "leg_counting/test/3"})
    assert info["split"] == "test" and first not in obs  # another seed, another question
    for bad in ({"task_id": "leg_counting/train/50"}, {"task_id": "other/train/1"}, {"task_index": -1}):
        with pytest.raises(UnknownTaskError):
            env.reset(options=bad)
    with pytest.raises(ConfigError, match="unknown reset option"):
        env.reset(options={"index": 1})


def test_missing_and_wrong_answers_never_reveal_the_answer() -> None:
    env = bridge.make(ENV)
    env.reset(seed=1)
    expected = _answer(env)
    feedback, reward, _, _, info = env.step("I think it is many legs.")
    assert reward == 0.0 and info["error_type"] == "format_error" and "<answer>" in feedback
    env.reset(seed=1)
    wrong = str(int(expected) + 1)
    feedback, reward, _, _, info = env.step(f"<answer>{wrong}</answer>")
    assert reward == 0.0 and info["error_type"] == "wrong_answer"
    assert expected not in feedback and wrong in feedback


def test_feedback_levels_and_cap() -> None:
    minimal = bridge.make(ENV, feedback="minimal")
    minimal.reset(seed=2)
    assert minimal.step("<answer>-1</answer>")[0] == "Incorrect."
    capped = bridge.make(ENV, max_feedback_chars=20)
    capped.reset(seed=2)
    assert len(capped.step("<answer>" + "9" * 500 + "</answer>")[0]) <= 20


def test_privileged_feedback_names_the_answer_only_for_the_teacher() -> None:
    env = bridge.make(ENV, feedback="summary")
    env.reset(seed=3)
    expected = _answer(env)
    feedback, _, _, _, info = env.step("<answer>-1</answer>")
    assert expected not in feedback and info["feedback"] == feedback
    assert info["privileged_feedback"].endswith(f"Expected answer: {expected}")
    with pytest.raises(ConfigError, match="feedback='privileged' with max_attempts=2"):
        bridge.ReasoningGymEnv("leg_counting", feedback="privileged", max_attempts=2)


def test_pass_rate_reward_is_reasoning_gyms_credit() -> None:
    env = bridge.make(ENV, reward_mode="pass_rate", size=20)
    env.reset(options={"task_index": 0})
    entry = env.unwrapped._item(("train", 0))
    partial = entry["answer"] + " legs"  # the oracle inside a longer answer earns partial credit
    expected = env.unwrapped._dataset("train").score_answer(partial, entry)
    _, reward, _, _, info = env.step(f"<answer>{partial}</answer>")
    assert reward == pytest.approx(expected) == pytest.approx(info["score"])
    assert 0.0 < reward < 1.0 and not info["passed"] and info["error_type"] == "wrong_answer"


def test_retries_within_max_attempts() -> None:
    env = bridge.make(ENV, max_attempts=2)
    env.reset(seed=4)
    _, _, terminated, _, info = env.step("<answer>-1</answer>")
    assert not terminated and info["attempt"] == 1
    _, reward, terminated, _, info = env.step(f"<answer>{_answer(env)}</answer>")
    assert terminated and reward == 1.0 and info["attempt"] == 2


def test_bad_arguments_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        bridge.ReasoningGymEnv("leg_counting", split="dev", reward_mode="best", size=0)
    assert all(word in str(err.value) for word in ("split=", "reward_mode=", "size="))
    with pytest.raises(ConfigError, match="reasoning-gym rejected"):
        bridge.ReasoningGymEnv("leg_counting", config={"no_such_field": 1})
    with pytest.raises(ConfigError, match="pass seed="):
        bridge.ReasoningGymEnv("leg_counting", config={"seed": 3})


def test_register_with_defaults() -> None:
    env_id = bridge.register_reasoning_gym("leg_counting", size=5, config={"max_animals": 3})
    try:
        env = gymnasium.make(env_id)
        assert env.unwrapped.size == 5
        with pytest.raises(UnknownTaskError):
            env.reset(options={"task_index": 5})
    finally:
        bridge.register_reasoning_gym("leg_counting")
    assert gymnasium.make(env_id).unwrapped.size == bridge.DEFAULT_SIZE
