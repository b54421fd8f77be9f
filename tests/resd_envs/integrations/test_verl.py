"""verl's compute_score contract, tested without verl.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` per response.
"""

from __future__ import annotations

import json

import pytest

import resd_envs
from resd_envs.errors import ConfigError
from resd_envs.integrations.verl import compute_score, compute_score_batch, resolve_task, verl_rows

ENV = "resd/Manufactoria-Has-v0"


@pytest.fixture(scope="module")
def solved() -> tuple[str, str]:
    fam = resd_envs.family(ENV)
    task = fam.tasks("train")[0]
    return str(task["task_id"]), fam.reference_response(task)


def test_rows_carry_env_and_task_ids() -> None:
    rows = verl_rows(ENV, "test", limit=2, system_prompt="Be brief.")
    first = rows[0]
    assert first["data_source"] == ENV and first["ability"] == "resd"
    assert first["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert first["reward_model"] == {"style": "rule", "ground_truth": first["extra_info"]["task_id"]}
    assert first["extra_info"] == {"env_id": ENV, "task_id": resd_envs.load_tasks(ENV, "test")[0]["task_id"],
                                   "split": "test", "index": 0}
    assert rows[1]["extra_info"]["index"] == 1


def test_compute_score_returns_verls_dict_form(solved: tuple[str, str]) -> None:
    task_id, reference = solved
    good = compute_score(ENV, reference, task_id, {"env_id": ENV, "task_id": task_id})
    assert good["score"] == 1.0 and good["acc"] == 1.0 and good["num_passed"] == good["num_tests"] > 0
    bad = compute_score(ENV, "I do not know.", task_id, include_feedback=True)
    assert bad["score"] == 0.0 and bad["error_type"] == "no_code" and "manufactoria" in bad["feedback"]
    assert set(good) == {"score", "acc", "pass_rate", "num_tests", "num_passed"}  # numeric only by default


def test_pass_rate_reward_is_the_fraction_of_tests(solved: tuple[str, str]) -> None:
    task_id, reference = solved
    # a program that rejects everything passes exactly the tests whose expected verdict is "reject"
    reject_all = "```manufactoria\nSTART start:\n    NEXT end\nEND end\n```"
    binary = compute_score(ENV, reject_all, task_id)
    graded = compute_score(ENV, reject_all, task_id, reward_mode="pass_rate")
    expected = resd_envs.verify(ENV, [task_id], [reject_all], reward_mode="pass_rate")[0]
    assert graded["score"] == pytest.approx(expected.score) == pytest.approx(binary["pass_rate"])
    assert binary["score"] == (1.0 if expected.passed else 0.0)


def test_task_lookup_order() -> None:
    assert resolve_task("ignored", "gt", {"env_id": ENV, "task_id": "t1"}) == (ENV, "t1")
    assert resolve_task("ignored", json.dumps({"env_id": ENV, "task_id": "t2"}), None) == (ENV, "t2")
    assert resolve_task("ignored", {"env_id": ENV, "task_id": "t3"}, {}) == (ENV, "t3")
    assert resolve_task(ENV, "t4", None) == (ENV, "t4")
    with pytest.raises(ConfigError, match="verl_rows"):
        resolve_task(ENV, None, {})


def test_batch_form_keeps_order_across_envs(solved: tuple[str, str]) -> None:
    task_id, reference = solved
    scores = compute_score_batch([ENV, ENV], [reference, "nothing"], [task_id, task_id], None)
    assert [s["score"] for s in scores] == [1.0, 0.0]
    with pytest.raises(ConfigError, match="one of each"):
        compute_score_batch([ENV], ["a", "b"], [task_id, task_id], None)


def test_reasoning_gym_rows_score_through_the_bridge() -> None:
    pytest.importorskip("reasoning_gym")
    row = verl_rows("rg/leg_counting-v0", "train", limit=1)[0]
    result = compute_score(row["data_source"], "<answer>-3</answer>", row["reward_model"]["ground_truth"],
                           row["extra_info"], include_feedback=True)
    assert result["score"] == 0.0 and result["error_type"] == "wrong_answer"


def test_rows_load_into_arrow(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_list(verl_rows(ENV, "train"))
    table.to_parquet(str(tmp_path / "train.parquet"))
    loaded = datasets.Dataset.from_parquet(str(tmp_path / "train.parquet"))
    assert loaded.num_rows == len(resd_envs.load_tasks(ENV, "train"))
    assert loaded[5]["extra_info"]["index"] == 5
