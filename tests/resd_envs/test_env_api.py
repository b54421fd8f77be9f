"""Every registered resd id follows the gymnasium contract and the resd info/verify contract."""

from __future__ import annotations

import pickle
import subprocess
import sys

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import resd_envs
from resd_envs.core.env import STEP_INFO_KEYS

ENV_IDS = resd_envs.list_envs()


@pytest.fixture(params=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    return request.param


def test_list_envs_has_the_benchmarks_and_the_small_model_variant() -> None:
    assert set(ENV_IDS) == {
        "resd/Manufactoria-Has-v0", "resd/BouncingSim-Easy-v0", "resd/BouncingSim-Medium-v0", "resd/Finer-v0",
        "resd/FinerMini-v0",
    }


def test_check_env(env_id: str) -> None:
    env = gymnasium.make(env_id)
    check_env(env.unwrapped)
    env.close()


def test_import_free_make(env_id: str) -> None:
    env = gymnasium.make(f"resd_envs:{env_id}")
    obs, info = env.reset(seed=1)
    assert isinstance(obs, str) and obs
    assert info["env_id"] == env_id
    env.close()


def test_reregistration_is_idempotent() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resd_envs.register_envs()
        resd_envs.register_envs()


def test_step_info_keys_and_reward_modes(env_id: str) -> None:
    for mode in ("binary", "pass_rate"):
        env = resd_envs.make(env_id, reward_mode=mode)
        env.reset(seed=3)
        _, reward, terminated, truncated, info = env.step("no program here at all")
        assert tuple(info) == STEP_INFO_KEYS
        assert terminated and not truncated
        assert reward == 0.0 and info["passed"] is False
        assert info["error_type"] is not None and info["feedback"]
        env.close()


def test_reference_response_passes_and_garbage_fails(env_id: str) -> None:
    fam = resd_envs.family(env_id)
    task = fam.tasks("test")[0]
    gold = fam.reference_response(task)
    assert gold is not None
    env = resd_envs.make(env_id, split="test")
    env.reset(options={"task_id": task["task_id"]})
    _, reward, terminated, _, info = env.step(gold)
    assert reward == 1.0 and info["passed"] and terminated and info["score"] == 1.0
    env.reset(options={"task_id": task["task_id"]})
    _, reward, _, _, info = env.step("")
    assert reward == 0.0 and info["score"] == 0.0


def test_seeded_reset_is_deterministic(env_id: str) -> None:
    a, b = resd_envs.make(env_id), resd_envs.make(env_id)
    assert [a.reset(seed=s)[1]["task_id"] for s in range(5)] == [b.reset(seed=s)[1]["task_id"] for s in range(5)]


def test_multi_attempt_keeps_task_and_ends(env_id: str) -> None:
    env = resd_envs.make(env_id, max_attempts=2)
    _, info0 = env.reset(seed=0)
    feedback, _, terminated, _, info = env.step("nothing useful")
    assert not terminated and info["attempt"] == 1 and info["task_id"] == info0["task_id"]
    assert feedback == info["feedback"]
    _, _, terminated, _, info = env.step("still nothing")
    assert terminated and info["attempt"] == 2
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step("one too many")


def test_pickles_and_sync_vector_env(env_id: str) -> None:
    env = resd_envs.make(env_id)
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.reset(seed=0)[1]["task_id"] == env.reset(seed=0)[1]["task_id"]
    vec = resd_envs.make_vec(env_id, num_envs=2)
    obs, infos = vec.reset(seed=[0, 1])
    assert len(obs) == 2 and all(isinstance(o, str) for o in obs)
    obs, rewards, terminated, truncated, infos = vec.step(("x", "y"))
    assert list(rewards) == [0.0, 0.0] and all(terminated)
    vec.close()


def test_load_tasks_rows_and_verify(env_id: str) -> None:
    rows = resd_envs.load_tasks(env_id, "test")
    assert rows and {"task_id", "prompt", "messages", "env_id", "split"} <= set(rows[0])
    assert len({r["task_id"] for r in rows}) == len(rows)
    fam = resd_envs.family(env_id)
    ids = [r["task_id"] for r in rows[:3]]
    results = resd_envs.verify(env_id, ids, [fam.reference_response(r) for r in rows[:3]])
    assert [r.task_id for r in results] == ids and all(r.passed and r.reward == 1.0 for r in results)


def test_unknown_inputs_give_clear_errors() -> None:
    with pytest.raises(resd_envs.ResdEnvError, match="Did you mean"):
        resd_envs.make("resd/Manufactoria-Hass-v0")
    env = resd_envs.make("resd/Manufactoria-Has-v0")
    with pytest.raises(resd_envs.ResdEnvError, match="not in"):
        env.reset(options={"task_id": "no-such-task"})
    with pytest.raises(resd_envs.ResdEnvError, match="reward_mode"):
        resd_envs.make("resd/Manufactoria-Has-v0", reward_mode="full_pass")
    with pytest.raises(resd_envs.ResdEnvError, match="responses"):
        resd_envs.verify("resd/Manufactoria-Has-v0", ["a", "b"], ["x"])


def test_import_does_not_pull_torch_or_learner() -> None:
    code = (
        "import sys, resd_envs, gymnasium\n"
        "[resd_envs.make(i) for i in resd_envs.list_envs()]\n"
        "bad = [m for m in ('torch', 'resd_learner', 'vllm', 'transformers', 'deepspeed') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
