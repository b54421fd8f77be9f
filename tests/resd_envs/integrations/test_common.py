"""Task listing and scoring shared by the adapters: resd ids through verify, rg ids through the env."""

from __future__ import annotations

import pytest

import resd_envs
from resd_envs.errors import ConfigError, UnknownTaskError
from resd_envs.integrations.common import is_resd_id, json_field, score_batch, task_rows

ENV = "resd/Manufactoria-Has-v0"


def test_is_resd_id() -> None:
    assert is_resd_id(ENV) and is_resd_id("resd_envs:" + ENV)
    assert not is_resd_id("rg/leg_counting-v0") and not is_resd_id("CartPole-v1")


def test_resd_rows_and_scores_match_verify() -> None:
    rows = task_rows(ENV, "train", limit=3)
    assert [r["task_id"] for r in rows] == [r["task_id"] for r in resd_envs.load_tasks(ENV, "train")[:3]]
    fam = resd_envs.family(ENV)
    responses = [fam.reference_response(fam.task_by_id(rows[0]["task_id"])), "no program", ""]
    ids = [r["task_id"] for r in rows]
    assert score_batch(ENV, ids, responses) == resd_envs.verify(ENV, ids, responses)
    assert [r.passed for r in score_batch(ENV, ids, responses)] == [True, False, False]


def test_bad_calls_raise_clear_errors() -> None:
    with pytest.raises(ConfigError, match="2 task ids but 1 responses"):
        score_batch(ENV, ["a", "b"], ["x"])
    with pytest.raises(ConfigError, match="reward_mode="):
        score_batch(ENV, [], [], reward_mode="best")
    with pytest.raises(UnknownTaskError):
        score_batch(ENV, ["no-such-task"], ["x"])
    with pytest.raises(ConfigError, match="limit="):
        task_rows(ENV, limit=-1)
    with pytest.raises(ConfigError, match="cannot make"):
        score_batch("nope/Missing-v0", ["t"], ["x"])


def test_json_field_keeps_scalars_and_encodes_containers() -> None:
    assert json_field("RYRY") == "RYRY" and json_field(3) == 3 and json_field(None) is None
    assert json_field({"b": [1, 2], "a": "x"}) == '{"a": "x", "b": [1, 2]}'
    assert json_field([["B", 1]]) == '[["B", 1]]'


def test_generated_env_rows_need_a_limit_and_score_through_the_env() -> None:
    pytest.importorskip("reasoning_gym")
    with pytest.raises(ConfigError, match="pass limit=N"):
        task_rows("rg/leg_counting-v0", "train")
    rows = task_rows("rg/leg_counting-v0", "test", limit=2)
    assert [r["task_id"] for r in rows] == ["leg_counting/test/0", "leg_counting/test/1"]
    assert rows[0]["messages"][-1]["content"] == rows[0]["prompt"]
    import reasoning_gym

    from resd_envs.integrations.reasoning_gym import SPLIT_SEED_OFFSETS

    test_split = reasoning_gym.create_dataset("leg_counting", seed=SPLIT_SEED_OFFSETS["test"], size=1000)
    answer = test_split[1]["answer"]
    results = score_batch("rg/leg_counting-v0", [r["task_id"] for r in rows],
                          ["<answer>-1</answer>", f"<answer>{answer}</answer>"])
    assert [r.passed for r in results] == [False, True]
    assert results[0].error_type == "wrong_answer" and results[1].error_type is None
    assert results[1].reward == 1.0 and results[1].num_tests == 1
