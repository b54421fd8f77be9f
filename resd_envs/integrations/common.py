"""One way to list and score tasks for every adapter, for resd ids and other text envs alike.

- ``resd/...`` ids (with or without the ``resd_envs:`` prefix): rows from :func:`resd_envs.load_tasks`,
  scoring through :func:`resd_envs.verify` (batched, parallel, order kept).
- ``rg/<task>-v0`` ids (the reasoning-gym bridge, registered on first use) and any other gymnasium id
  that follows the resd env contract: ``gymnasium.make(id, split=, reward_mode=, feedback=,
  max_feedback_chars=, **env_kwargs)``; ``reset(options={"task_index": i})`` and
  ``reset(options={"task_id": id})`` pick a task; ``info["task_id"]`` names it; ``step(response)``
  returns the info keys of :data:`resd_envs.core.env.STEP_INFO_KEYS`.

Results are :class:`~resd_envs.core.results.VerifyResult` in both cases. Non-resd ids are scored by
one env per (id, options), made on first use and kept for the life of the process (the counterpart
of :func:`resd_envs.family`'s cache); calls on the same env take turns. This module imports neither
torch nor any trainer library.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium

from resd_envs.api import load_tasks, verify
from resd_envs.core.results import VerifyResult, check_scoring_options
from resd_envs.errors import ConfigError
from resd_envs.registration import ENVS

#: Prefix of the ids served by the reasoning-gym bridge.
RG_PREFIX = "rg/"
_RESD_MODULE_PREFIX = "resd_envs:"
_RESD_IDS = frozenset(entry.env_id for entry in ENVS)
#: Scoring envs of non-resd ids, made once per (id, kwargs) and reused; each has its own lock.
_SCORING_ENVS: dict[tuple[str, str], tuple[threading.Lock, gymnasium.Env]] = {}
_SCORING_ENVS_LOCK = threading.Lock()


def is_resd_id(env_id: str) -> bool:
    """True for ids served by resd_envs' own families (``resd_envs:`` prefix allowed)."""
    bare = env_id[len(_RESD_MODULE_PREFIX):] if env_id.startswith(_RESD_MODULE_PREFIX) else env_id
    return bare in _RESD_IDS


def make_text_env(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` for a non-resd id; ``rg/<task>-v0`` ids are registered on first use."""
    if env_id.startswith(RG_PREFIX) and env_id not in gymnasium.registry:
        from resd_envs.integrations.reasoning_gym import register_reasoning_gym, task_name_of

        register_reasoning_gym(task_name_of(env_id))
    try:
        return gymnasium.make(env_id, **kwargs)
    except gymnasium.error.Error as exc:
        raise ConfigError(
            f"cannot make {env_id!r}: {exc}. Use a resd id (see `resd-envs list`), an 'rg/<task>-v0' id, "
            "or 'module:ns/Name-vN' naming the module that registers the env"
        ) from exc


def task_rows(
    env_id: str,
    split: str = "train",
    *,
    limit: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Task rows of ``split`` with at least ``task_id``, ``prompt``, ``messages`` and ``env_id``.

    For resd ids these are :func:`resd_envs.load_tasks` rows (the first ``limit`` when given). Other
    ids generate tasks procedurally, so ``limit`` is required: row i comes from
    ``reset(options={"task_index": i})``.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit={limit!r}: use an integer >= 0 or None")
    kwargs = dict(env_kwargs or {})
    if is_resd_id(env_id):
        rows = load_tasks(env_id, split, **kwargs)
        return rows if limit is None else rows[:limit]
    if limit is None:
        raise ConfigError(
            f"{env_id} generates its tasks, so it has no fixed list: "
            f"pass limit=N for the first N tasks of {split!r}"
        )
    env = make_text_env(env_id, split=split, **kwargs)
    rows = []
    try:
        for index in range(limit):
            prompt, info = env.reset(options={"task_index": index})
            if "task_id" not in info:
                raise ConfigError(
                    f"{env_id}: reset() returned no info['task_id']; the adapters need it to score"
                )
            messages = info.get("messages") or [{"role": "user", "content": prompt}]
            rows.append({
                "task_id": str(info["task_id"]),
                "prompt": str(prompt),
                "messages": [{"role": str(m["role"]), "content": str(m["content"])} for m in messages],
                "env_id": env_id,
                "split": split,
            })
    finally:
        env.close()
    return rows


def score_batch(
    env_id: str,
    task_ids: Sequence[str],
    responses: Sequence[str],
    *,
    reward_mode: str = "binary",
    feedback: str = "full",
    max_feedback_chars: int = 4000,
    max_workers: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[VerifyResult]:
    """Score ``responses[i]`` on ``task_ids[i]``; order kept. Bad model output never raises.

    Raises:
        ConfigError: mismatched lengths, invalid options or an id that cannot be made.
        UnknownTaskError: a task id the env does not have.
    """
    if len(task_ids) != len(responses):
        raise ConfigError(f"got {len(task_ids)} task ids but {len(responses)} responses; pass one of each")
    check_scoring_options(reward_mode, feedback, max_feedback_chars)
    kwargs = dict(env_kwargs or {})
    if is_resd_id(env_id):
        return verify(env_id, list(task_ids), list(responses), reward_mode=reward_mode, feedback=feedback,
                      max_feedback_chars=max_feedback_chars, max_workers=max_workers, **kwargs)
    if not task_ids:
        return []
    lock, env = _scoring_env(env_id, {"reward_mode": reward_mode, "feedback": feedback,
                                      "max_feedback_chars": max_feedback_chars, **kwargs})
    with lock:
        return [_step_once(env, str(task_id), response) for task_id, response in zip(task_ids, responses)]


async def ascore_batch(env_id: str, task_ids: Sequence[str], responses: Sequence[str],
                       **kwargs: Any) -> list[VerifyResult]:
    """Async twin of :func:`score_batch`: scores in the default executor, never blocking the loop."""
    loop = asyncio.get_running_loop()
    job = functools.partial(score_batch, env_id, task_ids, responses, **kwargs)
    return await loop.run_in_executor(None, job)


def json_field(value: Any) -> Any:
    """``value`` when it is a scalar (str, int, float, bool, None), else its canonical JSON text.

    Row fields go through this before they reach Arrow, so a field that holds a string in one row
    and a list in another still loads as one string column.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# -- internals --------------------------------------------------------------------------------
def _scoring_env(env_id: str, kwargs: dict[str, Any]) -> tuple[threading.Lock, gymnasium.Env]:
    """The cached env that scores ``env_id`` with ``kwargs`` (made on first use, kept for the process)."""
    key = (env_id, repr(sorted(kwargs.items())))
    with _SCORING_ENVS_LOCK:
        entry = _SCORING_ENVS.get(key)
        if entry is None:
            entry = _SCORING_ENVS[key] = (threading.Lock(), make_text_env(env_id, **kwargs))
    return entry


def _step_once(env: gymnasium.Env, task_id: str, response: str) -> VerifyResult:
    env.reset(options={"task_id": task_id})
    _, reward, _, _, info = env.step(response if isinstance(response, str) else str(response))
    passed = bool(info.get("passed", float(reward) >= 1.0))
    num_tests = int(info.get("num_tests", 1))
    return VerifyResult(
        task_id=str(info.get("task_id", task_id)),
        reward=float(reward),
        score=float(info.get("score", reward)),
        passed=passed,
        num_tests=num_tests,
        num_passed=int(info.get("num_passed", num_tests if passed else 0)),
        error_type=info.get("error_type"),
        feedback=str(info.get("feedback", "")),
        test_results=tuple(dict(t) for t in info.get("test_results", ())),
        extra=dict(info.get("extra", {})),
    )
