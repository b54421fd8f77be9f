"""Public functions: make environments, list them, load task rows, and score batches of responses."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium

from resd_envs.core.family import TaskFamily, check_keywords
from resd_envs.core.results import VerifyResult, check_scoring_options
from resd_envs.errors import ConfigError
from resd_envs.pool import VerifyPoolError, discard_pool, shared_pool
from resd_envs.registration import ENVS, env_entry, load_object, normalize_env_id, register_envs

#: Below this many submissions ``verify`` scores in the calling process (a pool costs more).
INLINE_BATCH = 16

_FAMILIES: dict[tuple[str, str], TaskFamily] = {}


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` for a resd id, with or without the ``resd_envs:`` prefix."""
    register_envs()
    return gymnasium.make(normalize_env_id(env_id), **kwargs)


def make_vec(env_id: str, num_envs: int = 1, *, vectorization_mode: str = "sync", **kwargs: Any) -> Any:
    """``gymnasium.make_vec`` that works with Text spaces.

    Async vector envs get ``shared_memory=False``: gymnasium's shared-memory path returns stale
    observations for Text spaces.
    """
    register_envs()
    vector_kwargs = {"shared_memory": False} if vectorization_mode == "async" else None
    return gymnasium.make_vec(
        normalize_env_id(env_id),
        num_envs=num_envs,
        vectorization_mode=vectorization_mode,
        vector_kwargs=vector_kwargs,
        **kwargs,
    )


def list_envs() -> list[str]:
    """Every registered resd env id."""
    return [entry.env_id for entry in ENVS]


#: Keyword arguments of :func:`verify` itself (the rest go to the family).
VERIFY_KEYWORDS: tuple[str, ...] = ("reward_mode", "feedback", "max_feedback_chars", "max_workers")


def family(env_id: str, *, _where: str = "family()", _also: tuple[str, ...] = (), **family_kwargs: Any) -> TaskFamily:
    """The (cached) task family behind ``env_id``, built with the registry's defaults + ``family_kwargs``.

    Raises:
        ConfigError: a keyword argument the family does not take (the message lists the valid ones).
    """
    entry = env_entry(env_id)
    family_class = load_object(entry.family_entry_point)
    check_keywords(family_kwargs, family_class, where=_where, also=_also)
    kwargs = {**entry.kwargs, **family_kwargs}
    key = (entry.env_id, repr(sorted(kwargs.items())))
    cached = _FAMILIES.get(key)
    if cached is None:
        cached = family_class(**kwargs)
        _FAMILIES[key] = cached
    return cached


def load_tasks(env_id: str, split: str = "train", **family_kwargs: Any) -> list[dict[str, Any]]:
    """Task rows of ``split``: ``task_id``, ``prompt``, ``messages``, ``env_id``, ``split`` + family fields.

    The rows are copies: changing them does not change the environment. Every column has one type
    across rows (see :meth:`TaskFamily.export_row`), so they load into ``datasets.Dataset.from_list``.
    """
    fam = family(env_id, _where="load_tasks()", **family_kwargs)
    rows = []
    for row in fam.tasks(split):
        out = fam.export_row(row)
        out.setdefault("messages", [{"role": "user", "content": row["prompt"]}])
        out.setdefault("env_id", fam.env_id)
        out.setdefault("split", split)
        rows.append(out)
    return rows


def verify(
    env_id: str,
    task_ids: Sequence[str],
    responses: Sequence[str],
    *,
    reward_mode: str = "binary",
    feedback: str = "full",
    max_feedback_chars: int = 4000,
    max_workers: int | None = None,
    **family_kwargs: Any,
) -> list[VerifyResult]:
    """Score ``responses[i]`` on task ``task_ids[i]`` for every i, in parallel; order is kept.

    Workers are bounded by the core count (and ``max_workers``). Families that run untrusted code
    already isolate each submission in its own sandboxed process, so they are driven from threads;
    the others are scored in persistent worker processes (:mod:`resd_envs.pool`: fresh
    interpreters, safe to use from scripts without a main guard and from threaded trainers), which
    load the task set once and are reused by later calls. Small batches are scored inline.

    ``feedback`` is the detail of ``VerifyResult.feedback`` (``full``/``summary``/``minimal`` are
    policy-safe; ``privileged`` reveals hidden expected outputs); ``VerifyResult.privileged_feedback``
    always carries the revealing text for a teacher context.

    Raises:
        ConfigError: mismatched lengths, invalid options or an unknown keyword argument.
        UnknownTaskError: a task id that is in no split of the env.
    """
    if len(task_ids) != len(responses):
        raise ConfigError(f"verify got {len(task_ids)} task ids but {len(responses)} responses; pass one of each")
    check_scoring_options(reward_mode, feedback, max_feedback_chars)
    fam = family(env_id, _where="verify()", _also=VERIFY_KEYWORDS, **family_kwargs)
    for task_id in task_ids:  # fail fast, in the caller, on unknown ids
        fam.task_by_id(str(task_id))
    jobs = [(str(t), r if isinstance(r, str) else str(r)) for t, r in zip(task_ids, responses)]
    options = (reward_mode, feedback, max_feedback_chars)
    workers = _worker_count(max_workers, len(jobs))
    if workers <= 1 or len(jobs) < INLINE_BATCH:
        return [_score_one(fam, job, options) for job in jobs]
    if fam.runs_code:  # each submission already runs in its own sandboxed process
        with ThreadPoolExecutor(max_workers=workers) as threads:
            return list(threads.map(functools.partial(_score_one, fam, options=options), jobs))
    pool = shared_pool(fam.env_id, family_kwargs, workers)
    try:
        return pool.map(jobs, options)
    except VerifyPoolError:
        discard_pool(pool)
        raise


async def averify(env_id: str, task_ids: Sequence[str], responses: Sequence[str], **kwargs: Any) -> list[VerifyResult]:
    """Async twin of :func:`verify`: runs it off the event loop so the loop never blocks."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(verify, env_id, task_ids, responses, **kwargs))


# -- internals --------------------------------------------------------------------------------
def _worker_count(max_workers: int | None, jobs: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cores if max_workers is None else max(1, min(max_workers, cores))
    return max(1, min(limit, jobs))


def _score_one(fam: TaskFamily, job: tuple[str, str], options: tuple[str, str, int]) -> VerifyResult:
    task_id, response = job
    reward_mode, detail, max_chars = options
    evaluation = fam.evaluate(fam.task_by_id(task_id), response, detail=detail, max_chars=max_chars)
    return VerifyResult.from_evaluation(task_id, evaluation, reward_mode)
