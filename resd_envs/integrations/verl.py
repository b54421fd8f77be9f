"""verl adapter: ``compute_score`` for verl's custom reward function, and rows in verl's data layout.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` once per response
(its batch reward manager calls ``compute_score(data_sources=, solution_strs=, ground_truths=,
extra_infos=)`` once per batch: point it at :func:`compute_score_batch`). verl itself is not needed
to use or test this module::

    # data: rows written by verl_rows(), e.g.
    #   datasets.Dataset.from_list(verl_rows("resd/Manufactoria-Has-v0", "train")).to_parquet("train.parquet")
    # config:
    #   custom_reward_function.path=<site-packages>/resd_envs/integrations/verl.py
    #   custom_reward_function.name=compute_score
    #   +custom_reward_function.reward_kwargs.reward_mode=pass_rate     (optional)

Which task a response answers is read, in order, from ``extra_info["env_id"]`` /
``extra_info["task_id"]``; from ``ground_truth`` when it is a dict or JSON object with those keys;
else ``data_source`` is the env id and ``ground_truth`` the task id. Both resd ids and ``rg/...`` ids
(the reasoning-gym bridge) work.

The result is verl's dict form: ``"score"`` (the reward) plus numeric extras verl logs per data
source (``acc``, ``pass_rate``, ``num_tests``, ``num_passed``); ``include_feedback=True`` adds the
``feedback`` and ``error_type`` strings (verl dumps them with the generations).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from resd_envs.core.results import VerifyResult
from resd_envs.errors import ConfigError
from resd_envs.integrations.common import score_batch, task_rows

#: verl's ``ability`` column for resd rows.
ABILITY = "resd"


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Score one response; verl's custom reward function contract.

    ``options`` (verl's ``custom_reward_function.reward_kwargs``): ``reward_mode`` ("binary" or
    "pass_rate"), ``feedback`` and ``max_feedback_chars`` (feedback detail; it only reaches logs),
    ``include_feedback`` (bool), ``env_kwargs`` (family / env kwargs), ``max_workers``.
    """
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], **options)[0]


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    reward_mode: str = "binary",
    feedback: str = "full",
    max_feedback_chars: int = 4000,
    include_feedback: bool = False,
    env_kwargs: Mapping[str, Any] | None = None,
    max_workers: int | None = None,
) -> list[dict[str, Any]]:
    """Score a batch (verl's batch reward manager contract); one batched scoring call per env id."""
    n = len(solution_strs)
    infos = list(extra_infos) if extra_infos is not None else [None] * n
    if not len(data_sources) == len(ground_truths) == len(infos) == n:
        raise ConfigError(
            f"compute_score_batch got {len(data_sources)} data sources, {n} solutions, {len(ground_truths)} "
            f"ground truths and {len(infos)} extra infos; pass one of each per response"
        )
    groups: dict[str, list[tuple[int, str]]] = {}
    for i in range(n):
        env_id, task_id = resolve_task(data_sources[i], ground_truths[i], infos[i])
        groups.setdefault(env_id, []).append((i, task_id))
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for env_id, items in groups.items():
        results = score_batch(
            env_id,
            [task_id for _, task_id in items],
            [str(solution_strs[i]) for i, _ in items],
            reward_mode=reward_mode,
            feedback=feedback,
            max_feedback_chars=max_feedback_chars,
            max_workers=max_workers,
            env_kwargs=env_kwargs,
        )
        for (i, _), result in zip(items, results):
            out[i] = _score_dict(result, include_feedback)
    return out


def resolve_task(
    data_source: str, ground_truth: Any, extra_info: Mapping[str, Any] | None
) -> tuple[str, str]:
    """``(env_id, task_id)`` of one verl row (see the module docstring for the lookup order)."""
    info = dict(extra_info or {})
    truth = ground_truth
    if isinstance(truth, str) and truth.lstrip().startswith("{"):
        try:
            truth = json.loads(truth)
        except json.JSONDecodeError:
            pass  # a task id that happens to start with '{'
    truth_map = truth if isinstance(truth, Mapping) else {}
    env_id = info.get("env_id") or truth_map.get("env_id") or data_source
    task_id = info.get("task_id") or truth_map.get("task_id")
    if task_id is None and not isinstance(truth, Mapping) and truth is not None:
        task_id = truth
    if not env_id or task_id is None or str(task_id) == "":
        raise ConfigError(
            f"cannot tell which task this row is (data_source={data_source!r}, "
            f"ground_truth={ground_truth!r}, extra_info keys={sorted(info)}): "
            "write rows with resd_envs.integrations.verl.verl_rows()"
        )
    return str(env_id), str(task_id)


def verl_rows(
    env_id: str,
    split: str = "train",
    *,
    limit: int | None = None,
    system_prompt: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows in verl's RL data layout: ``data_source``, ``prompt`` (chat messages), ``ability``,
    ``reward_model`` (``{"style": "rule", "ground_truth": task_id}``) and ``extra_info`` (``env_id``,
    ``task_id``, ``split``, ``index``). Every value has one type across rows, so they load into
    Arrow / parquet as they are."""
    rows = []
    for index, row in enumerate(task_rows(env_id, split, limit=limit, env_kwargs=env_kwargs)):
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]]
        if system_prompt is not None:
            messages = [{"role": "system", "content": system_prompt}, *messages]
        task_id = str(row["task_id"])
        rows.append({
            "data_source": str(row["env_id"]),
            "prompt": messages,
            "ability": ABILITY,
            "reward_model": {"style": "rule", "ground_truth": task_id},
            "extra_info": {"env_id": str(row["env_id"]), "task_id": task_id, "split": split, "index": index},
        })
    return rows


def _score_dict(result: VerifyResult, include_feedback: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "score": float(result.reward),
        "acc": 1.0 if result.passed else 0.0,
        "pass_rate": float(result.score),
        "num_tests": int(result.num_tests),
        "num_passed": int(result.num_passed),
    }
    if include_feedback:
        out["feedback"] = result.feedback
        out["error_type"] = result.error_type or ""
    return out
