"""The TRL adapter's pieces without a trainer: reward function, dataset rows, tool environment."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import resd_envs
from resd_envs.errors import ConfigError
from resd_envs.integrations.trl import (
    AsyncResdRewardFunction,
    ResdRewardFunction,
    ResdToolEnvironment,
    completion_text,
    dataset_rows,
    environment_factory,
    task_dataset,
)

ENV = "resd/Manufactoria-Has-v0"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return dataset_rows(ENV, "train", limit=3)


@pytest.fixture(scope="module")
def reference(rows: list[dict]) -> str:
    fam = resd_envs.family(ENV)
    return fam.reference_response(fam.task_by_id(rows[0]["task_id"]))


def test_completion_text_reads_plain_and_conversational_completions() -> None:
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "final"}]) == "final"
    tool_turns = [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "submit"}}]},
        {"role": "tool", "content": "Passed."},
        {"role": "assistant",
         "content": [{"type": "text", "text": "done "}, {"type": "text", "text": "now"}]},
    ]
    assert completion_text(tool_turns) == "done now"
    assert completion_text([{"role": "tool", "content": "x"}]) == ""
    with pytest.raises(ConfigError):
        completion_text(42)


def test_dataset_rows_are_conversational_with_task_and_env_ids(rows: list[dict]) -> None:
    tasks = resd_envs.load_tasks(ENV, "train")[:3]
    assert [r["task_id"] for r in rows] == [t["task_id"] for t in tasks]
    assert rows[0]["prompt"] == tasks[0]["messages"] and rows[0]["env_id"] == ENV
    assert set(rows[0]) == {"prompt", "task_id", "env_id"}
    with_system = dataset_rows(ENV, "test", limit=1, system_prompt="S")
    assert with_system[0]["prompt"][0] == {"role": "system", "content": "S"}
    with pytest.raises(ConfigError, match="not a field"):
        dataset_rows(ENV, limit=1, keep_fields=("nope",))


def test_task_dataset_loads_every_row_into_datasets() -> None:
    pytest.importorskip("datasets")
    train = task_dataset(ENV, "train", keep_fields=("params",))
    assert train.num_rows == len(resd_envs.load_tasks(ENV, "train"))
    assert train.features["params"].dtype == "string"  # dicts/lists/strings alike become one string column
    assert train[0]["prompt"][-1]["role"] == "user"


def test_reward_function_scores_and_logs(rows: list[dict], reference: str) -> None:
    logged: dict = {}
    seen: list = []
    reward = ResdRewardFunction(ENV, on_results=seen.append)
    completions = [[{"role": "assistant", "content": reference}], "no program here"]
    out = reward(
        prompts=[r["prompt"] for r in rows[:2]], completions=completions,
        task_id=[rows[0]["task_id"], rows[0]["task_id"]], env_id=[ENV, ENV],
        log_extra=lambda column, values: logged.__setitem__(column, values),
        log_metric=lambda name, value: logged.__setitem__(name, value),
        trainer_state=None, completion_ids=[[1], [2]],
    )
    assert out == [1.0, 0.0]
    assert reward.__name__ == "Manufactoria-Has-v0"
    assert logged["Manufactoria-Has-v0/passed"] == [True, False]
    assert logged["Manufactoria-Has-v0/error_type"] == ["", "no_code"]
    assert logged["Manufactoria-Has-v0/pass_rate"] == 0.5
    assert "manufactoria" in logged["Manufactoria-Has-v0/feedback"][1]
    assert seen == [reward.last_results]


def test_reward_function_leaves_other_envs_rows_alone(rows: list[dict], reference: str) -> None:
    reward = ResdRewardFunction(ENV)
    out = reward(prompts=["p", "p"], completions=[reference, reference], task_id=[rows[0]["task_id"], "x"],
                 env_id=[ENV, "rg/leg_counting-v0"])
    assert out == [1.0, None] and reward.last_results[1] is None


def test_async_reward_matches_sync(rows: list[dict], reference: str) -> None:
    kwargs = {"prompts": ["p"] * 3, "completions": [reference, "", "```manufactoria\nSTART s:\n```"],
              "task_id": [r["task_id"] for r in rows]}
    sync = ResdRewardFunction(reward_mode="pass_rate")
    sync_out = sync(env_id=[ENV] * 3, **kwargs)
    async_reward = AsyncResdRewardFunction(ENV, reward_mode="pass_rate")
    assert inspect.iscoroutinefunction(async_reward.__call__)
    assert asyncio.run(async_reward(**kwargs)) == sync_out
    assert sync_out[0] == 1.0


def test_reward_function_errors_say_what_to_fix() -> None:
    with pytest.raises(ConfigError, match="no 'task_id' column"):
        ResdRewardFunction(ENV)(prompts=["p"], completions=["c"])
    with pytest.raises(ConfigError, match="no env id"):
        ResdRewardFunction()(prompts=["p"], completions=["c"], task_id=["t"])
    with pytest.raises(ConfigError, match="2 prompts but 1 completions"):
        ResdRewardFunction(ENV)(prompts=["p", "q"], completions=["c"], task_id=["t"])
    with pytest.raises(ConfigError, match="feedback="):
        ResdRewardFunction(ENV, feedback="everything")


def test_tool_environment_scores_submissions(rows: list[dict], reference: str) -> None:
    env = environment_factory(ENV, max_attempts=2)()
    assert env.reset(**rows[0]).startswith("\n\nWhen your answer is complete")
    assert env.get_reward() == 0.0
    first = env.submit("not a program")
    assert "Attempts left: 1" in first and env.get_reward() == 0.0
    assert env.submit(reference).endswith("Passed.") and env.get_reward() == 1.0
    assert "already solved" in env.submit("anything") and env.get_reward() == 1.0
    env.reset(**rows[1])  # a fresh episode forgets the last one
    assert env.get_reward() == 0.0 and env.attempts == 0
    env.submit("x")
    env.submit("y")
    assert "No attempts left" in env.submit("z") and env.attempts == 2


def test_tool_environment_exposes_only_submit_as_a_tool() -> None:
    public = [name for name, _ in inspect.getmembers(ResdToolEnvironment, predicate=inspect.isfunction)
              if not name.startswith("_")]
    assert sorted(public) == ["get_reward", "reset", "submit"]
    transformers = pytest.importorskip("transformers")
    schema = transformers.utils.get_json_schema(ResdToolEnvironment(ENV).submit)
    assert schema["function"]["name"] == "submit"
    assert list(schema["function"]["parameters"]["properties"]) == ["answer"]


def test_tool_environment_rejects_bad_setup(rows: list[dict]) -> None:
    with pytest.raises(ConfigError, match="teacher only"):
        environment_factory(ENV, feedback="privileged")
    with pytest.raises(ConfigError, match="max_attempts"):
        environment_factory(ENV, max_attempts=0)
    with pytest.raises(ConfigError, match="task_id"):
        ResdToolEnvironment(ENV).reset(prompt="p")
    with pytest.raises(ConfigError, match="serves"):
        ResdToolEnvironment(ENV).reset(task_id="t", env_id="rg/leg_counting-v0")
    assert ResdToolEnvironment(ENV).submit("x") == "No task is active, so nothing was scored."


def test_tool_environment_on_a_reasoning_gym_task() -> None:
    pytest.importorskip("reasoning_gym")
    row = dataset_rows("rg/leg_counting-v0", "train", limit=1)[0]
    env = ResdToolEnvironment(instruction=None)
    assert env.reset(**row) is None
    assert env.submit("<answer>-5</answer>").startswith("Incorrect")
    assert env.get_reward() == 0.0
