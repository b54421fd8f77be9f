"""TRL adapter: resd (and ``rg/...``) tasks for ``trl.GRPOTrainer``.

Three pieces, none of which imports TRL or torch (``datasets`` only for :func:`task_dataset`)::

    from trl import GRPOConfig, GRPOTrainer
    from resd_envs.integrations.trl import ResdRewardFunction, task_dataset

    train = task_dataset("resd/Manufactoria-Has-v0", "train")     # columns: prompt, task_id, env_id
    reward = ResdRewardFunction("resd/Manufactoria-Has-v0")          # scores through resd_envs.verify
    trainer = GRPOTrainer(model=..., reward_funcs=reward, train_dataset=train, args=GRPOConfig(...))

- :class:`ResdRewardFunction` / :class:`AsyncResdRewardFunction`: TRL's custom reward contract
  ``(prompts, completions, **columns) -> list[float | None]``. The dataset's ``task_id`` (and
  ``env_id``) columns say which task each completion answers; completions may be plain text or
  conversational (the last assistant message is scored). Each call is one batched
  :func:`resd_envs.verify` per env. Feedback, pass flags and error types go to TRL's completions
  table through the ``log_extra`` hook, pass rate and score through ``log_metric``.
- :func:`task_dataset` / :func:`dataset_rows`: rows with a conversational ``prompt``; task fields
  that vary in type between rows are JSON-encoded so Arrow can load them.
- :class:`ResdToolEnvironment` / :func:`environment_factory`: TRL's tool-calling environments
  (``environment_factory=``): the model calls a ``submit(answer)`` tool, sees the feedback, may
  retry up to ``max_attempts``, and ``get_reward()`` returns the last submission's reward.

Feedback levels: whatever the policy reads (the ``submit`` tool's return value) must be
non-revealing, so :class:`ResdToolEnvironment` refuses ``feedback="privileged"``; the reward
function's feedback only goes to logs, so any level is allowed there.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resd_envs.core.results import VerifyResult, check_scoring_options
from resd_envs.errors import ConfigError, MissingDependencyError
from resd_envs.integrations.common import ascore_batch, json_field, score_batch, task_rows

#: Appended (by TRL) to the last user message of each tool-environment episode.
SUBMIT_INSTRUCTION = (
    "\n\nWhen your answer is complete, call the `submit` tool with the whole answer, formatted as asked "
    "above. It returns feedback; you may revise and submit again while attempts remain."
)

ResultsHook = Callable[[list[VerifyResult | None]], None]


def completion_text(completion: Any) -> str:
    """The text to score from one TRL completion.

    A string is returned as is. A conversational completion (a list of messages) gives the content of
    its last assistant message; content given as blocks (``[{"type": "text", "text": ...}]``) is
    joined. A completion with no assistant message gives ``""`` (scored as a missing answer).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content_text(completion.get("content"))
    if isinstance(completion, Sequence):
        for message in reversed(list(completion)):
            if isinstance(message, Mapping) and message.get("role", "assistant") == "assistant":
                return _content_text(message.get("content"))
        return ""
    raise ConfigError(
        f"cannot read a completion of type {type(completion).__name__}; expected str or a list of messages"
    )


class ResdRewardFunction:
    """A TRL reward function that scores completions on resd tasks.

    Args:
        env_id: the env every row is scored on. None: read each row's ``env_id`` column (mixed
            datasets). With an id, rows whose ``env_id`` column names another env get ``None`` (TRL
            then leaves them to the other reward functions).
        reward_mode, feedback, max_feedback_chars: as for :func:`resd_envs.verify`.
        max_workers: cap on scoring workers (default: every core).
        env_kwargs: family kwargs (resd ids) or ``gymnasium.make`` kwargs (other ids).
        name: the name TRL logs the reward under (``rewards/<name>/mean``); default from the env id.
        on_results: called after every batch with the :class:`VerifyResult` of each completion
            (``None`` where not scored), e.g. to write feedback to your own log.

    Calling it: ``reward(prompts=..., completions=..., task_id=[...], env_id=[...], log_extra=...,
    log_metric=..., **other_columns) -> list[float | None]``. ``task_id`` is required. The results of
    the last call stay in :attr:`last_results`.
    """

    def __init__(
        self,
        env_id: str | None = None,
        *,
        reward_mode: str = "binary",
        feedback: str = "full",
        max_feedback_chars: int = 4000,
        max_workers: int | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        on_results: ResultsHook | None = None,
    ) -> None:
        check_scoring_options(reward_mode, feedback, max_feedback_chars)
        self.env_id = env_id
        self.options: dict[str, Any] = {
            "reward_mode": reward_mode,
            "feedback": feedback,
            "max_feedback_chars": max_feedback_chars,
            "max_workers": max_workers,
            "env_kwargs": dict(env_kwargs or {}),
        }
        self.__name__ = name or (_short_name(env_id) if env_id else "resd_reward")
        self.on_results = on_results
        self.last_results: list[VerifyResult | None] = []

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        groups, texts, task_ids = self._plan(prompts, completions, columns)
        results: list[VerifyResult | None] = [None] * len(texts)
        for env_id, rows in groups.items():
            ids, responses = [task_ids[i] for i in rows], [texts[i] for i in rows]
            scored = score_batch(env_id, ids, responses, **self.options)
            for i, result in zip(rows, scored):
                results[i] = result
        return self._finish(results, columns)

    # -- shared by the async variant -----------------------------------------------------------
    def _plan(
        self, prompts: Sequence[Any], completions: Sequence[Any], columns: Mapping[str, Any]
    ) -> tuple[dict[str, list[int]], list[str], list[str]]:
        """Group completion indices by env id; also return the texts and task ids."""
        n = len(completions)
        if len(prompts) != n:
            raise ConfigError(f"{self.__name__}: got {len(prompts)} prompts but {n} completions")
        task_ids = columns.get("task_id")
        if task_ids is None:
            raise ConfigError(
                f"{self.__name__}: the dataset has no 'task_id' column, so completions cannot be matched "
                "to tasks; build it with resd_envs.integrations.trl.task_dataset()"
            )
        row_envs = columns.get("env_id")
        if len(task_ids) != n or (row_envs is not None and len(row_envs) != n):
            raise ConfigError(
                f"{self.__name__}: the task_id/env_id columns do not have one value per completion ({n})"
            )
        if self.env_id is None and row_envs is None:
            raise ConfigError(
                f"{self.__name__}: no env id: pass ResdRewardFunction(env_id=...) or add an 'env_id' column"
            )
        groups: dict[str, list[int]] = {}
        for i in range(n):
            row_env = row_envs[i] if row_envs is not None else None
            if self.env_id is None and not row_env:
                raise ConfigError(f"{self.__name__}: row {i} (task {task_ids[i]!r}) has an empty env_id")
            if self.env_id is not None and row_env and _bare(str(row_env)) != _bare(self.env_id):
                continue  # another env's row: not ours to score
            groups.setdefault(self.env_id or str(row_env), []).append(i)
        texts = [completion_text(c) for c in completions]
        return groups, texts, [str(t) for t in task_ids]

    def _finish(self, results: list[VerifyResult | None], columns: Mapping[str, Any]) -> list[float | None]:
        """Record, log and turn results into rewards."""
        self.last_results = results
        scored = [r for r in results if r is not None]
        log_extra, log_metric = columns.get("log_extra"), columns.get("log_metric")
        if callable(log_extra):
            log_extra(f"{self.__name__}/feedback", [r.feedback if r else None for r in results])
            log_extra(f"{self.__name__}/passed", [r.passed if r else None for r in results])
            log_extra(f"{self.__name__}/error_type", [(r.error_type or "") if r else None for r in results])
        if callable(log_metric) and scored:
            log_metric(f"{self.__name__}/pass_rate", sum(r.passed for r in scored) / len(scored))
            log_metric(f"{self.__name__}/score", sum(r.score for r in scored) / len(scored))
        if self.on_results is not None:
            self.on_results(results)
        return [r.reward if r is not None else None for r in results]


class AsyncResdRewardFunction(ResdRewardFunction):
    """:class:`ResdRewardFunction` with an ``async`` ``__call__``: TRL runs it on its event loop,
    concurrently with its other async reward functions; scoring runs in the default executor."""

    async def __call__(  # type: ignore[override]
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        groups, texts, task_ids = self._plan(prompts, completions, columns)
        envs = list(groups)
        batches = await asyncio.gather(*(
            ascore_batch(env_id, [task_ids[i] for i in groups[env_id]], [texts[i] for i in groups[env_id]],
                         **self.options)
            for env_id in envs
        ))
        results: list[VerifyResult | None] = [None] * len(texts)
        for env_id, scored in zip(envs, batches):
            for i, result in zip(groups[env_id], scored):
                results[i] = result
        return self._finish(results, columns)


def dataset_rows(
    env_id: str,
    split: str = "train",
    *,
    limit: int | None = None,
    system_prompt: str | None = None,
    keep_fields: Sequence[str] = (),
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """GRPO rows of ``split``: ``prompt`` (chat messages), ``task_id``, ``env_id`` (+ ``keep_fields``).

    ``system_prompt`` is put first in every prompt. ``keep_fields`` copies task fields into the row
    (lists and dicts as JSON text, so every row has the same column type). ``limit`` keeps the first
    N tasks (required for procedurally generated envs such as ``rg/...``).
    """
    rows = []
    for row in task_rows(env_id, split, limit=limit, env_kwargs=env_kwargs):
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]]
        if system_prompt is not None:
            messages = [{"role": "system", "content": system_prompt}, *messages]
        out: dict[str, Any] = {
            "prompt": messages, "task_id": str(row["task_id"]), "env_id": str(row["env_id"]),
        }
        for name in keep_fields:
            if name not in row:
                raise ConfigError(
                    f"keep_fields: {name!r} is not a field of {env_id} rows; fields: {sorted(row)}"
                )
            out[name] = json_field(row[name])
        rows.append(out)
    return rows


def task_dataset(env_id: str, split: str = "train", **kwargs: Any) -> Any:
    """:func:`dataset_rows` as a ``datasets.Dataset`` (needs ``pip install "resd[trl]"``)."""
    try:
        from datasets import Dataset
    except ImportError as exc:
        raise MissingDependencyError(
            'task_dataset needs the datasets package: pip install "resd[trl]"'
        ) from exc
    return Dataset.from_list(dataset_rows(env_id, split, **kwargs))


class ResdToolEnvironment:
    """One episode of a resd task for TRL's ``environment_factory`` (tool-calling GRPO).

    TRL makes instances with no arguments, so pass :func:`environment_factory` (a preset
    constructor) as ``environment_factory=``. Per rollout TRL calls ``reset(**row)`` with the
    dataset row (``task_id`` and ``env_id`` columns from :func:`task_dataset`), lets the model call
    the public methods as tools (here only :meth:`submit`), then reads :meth:`get_reward` as a
    reward column named after this class.

    Chat templates: TRL only trains with tools when the tokenizer's chat template renders a full
    tool-calling exchange and TRL can parse the model's tool calls; in TRL 1.16 that is the Qwen2.5,
    Qwen3 (incl. 2507, VL, 3.5-3.8), Llama 3.1/3.2, GPT-OSS, GLM-4-MoE, Nemotron 3, LFM2/2.5 and Gemma 4
    templates. SmolLM2's and the plain Llama 3 template do not support tools (use
    :class:`ResdRewardFunction` with them).

    Args:
        env_id: the env of every row (None: each row's ``env_id`` column).
        reward_mode, max_feedback_chars, env_kwargs: as for :class:`ResdRewardFunction`.
        feedback: detail of the feedback the model reads: ``"full"``, ``"summary"`` or ``"minimal"``
            (never ``"privileged"``: the policy must not see privileged feedback).
        max_attempts: submissions scored per episode (>= 1); the episode stops at the first pass.
        instruction: text TRL appends to the last user message (None: nothing).
    """

    def __init__(
        self,
        env_id: str | None = None,
        *,
        reward_mode: str = "binary",
        feedback: str = "full",
        max_feedback_chars: int = 4000,
        max_attempts: int = 1,
        env_kwargs: Mapping[str, Any] | None = None,
        instruction: str | None = SUBMIT_INSTRUCTION,
    ) -> None:
        _check_tool_options(reward_mode, feedback, max_feedback_chars, max_attempts)
        self.env_id = env_id
        self.max_attempts = max_attempts
        self.instruction = instruction
        self._options: dict[str, Any] = {
            "reward_mode": reward_mode,
            "feedback": feedback,
            "max_feedback_chars": max_feedback_chars,
            "env_kwargs": dict(env_kwargs or {}),
        }
        self._episode_env: str | None = None
        self._task_id: str | None = None
        self.attempts = 0
        self.last_result: VerifyResult | None = None

    def reset(self, **row: Any) -> str | None:
        """Start an episode on ``row["task_id"]`` (TRL passes the dataset row as keyword arguments)."""
        if "task_id" not in row:
            raise ConfigError(
                "ResdToolEnvironment.reset needs a 'task_id' column in the dataset; "
                "build it with task_dataset()"
            )
        env_id = self.env_id or row.get("env_id")
        if env_id is None:
            raise ConfigError("ResdToolEnvironment has no env id: pass env_id= or add an 'env_id' column")
        row_env = row.get("env_id")
        if self.env_id is not None and row_env is not None and _bare(str(row_env)) != _bare(self.env_id):
            raise ConfigError(
                f"row {row['task_id']!r} is for {row_env}, but this environment serves {self.env_id}"
            )
        self._episode_env = str(env_id)
        self._task_id = str(row["task_id"])
        self.attempts = 0
        self.last_result = None
        return self.instruction

    def submit(self, answer: str) -> str:
        """Submit your final answer to the task for scoring.

        Args:
            answer: The complete answer, formatted exactly as the task asks (a program in its code block).

        Returns:
            Feedback on the submission: whether it passed, what went wrong, and how many attempts remain.
        """
        if self._task_id is None or self._episode_env is None:
            return "No task is active, so nothing was scored."
        if self.last_result is not None and self.last_result.passed:
            return "This task is already solved; no further submissions are scored."
        if self.attempts >= self.max_attempts:
            return f"No attempts left ({self.max_attempts} used); this submission was not scored."
        text = answer if isinstance(answer, str) else str(answer)
        result = score_batch(self._episode_env, [self._task_id], [text], **self._options)[0]
        self.attempts += 1
        self.last_result = result
        left = self.max_attempts - self.attempts
        status = "Passed." if result.passed else f"Not passed. Attempts left: {left}."
        return f"{result.feedback}\n\n{status}" if result.feedback else status

    def get_reward(self) -> float:
        """The reward of the last scored submission (0.0 when nothing was submitted)."""
        return float(self.last_result.reward) if self.last_result is not None else 0.0


def environment_factory(env_id: str | None = None, **options: Any) -> Callable[[], ResdToolEnvironment]:
    """A no-argument constructor of :class:`ResdToolEnvironment` for ``GRPOTrainer(environment_factory=...)``.

    ``options`` are :class:`ResdToolEnvironment`'s keyword arguments; they are checked here, once.
    """
    ResdToolEnvironment(env_id, **options)  # fail now, not inside the trainer
    return functools.partial(ResdToolEnvironment, env_id, **options)


# -- internals --------------------------------------------------------------------------------
def _check_tool_options(reward_mode: str, feedback: str, max_feedback_chars: int, max_attempts: int) -> None:
    if feedback == "privileged":
        raise ConfigError(
            "feedback='privileged' is for the teacher only: the submit tool's feedback is read by the "
            "policy, use 'full', 'summary' or 'minimal'"
        )
    check_scoring_options(reward_mode, feedback, max_feedback_chars, max_attempts)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, Mapping) and block.get("type") == "text"
        )
    return str(content)


def _bare(env_id: str) -> str:
    return env_id.split(":", 1)[1] if ":" in env_id else env_id


def _short_name(env_id: str) -> str:
    return _bare(env_id).rsplit("/", 1)[-1]
