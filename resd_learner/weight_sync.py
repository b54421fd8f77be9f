"""Streaming the student's weights into the generation engine, bucket by bucket.

After every optimizer step the new student weights go into the rollout engine of each rank that
has one (every rank in the colocated topology, see :mod:`resd_learner.colocate`). Nothing is
copied up front:

- ZeRO 0-2: every rank holds the full parameters; they are handed to the engine as they are (the
  engine copies each into its own storage), so the extra memory of a push is zero.
- ZeRO-3: the parameters are partitioned. They are gathered ``bucket_numel`` elements at a time
  (``deepspeed.zero.GatheredParameters`` over a bucket, at least one tensor), handed to the engine
  and released before the next bucket is gathered, so the extra memory of a push is one bucket
  (plus what the engine itself buffers; vLLM keeps the tensors of one layer until that layer is
  complete, and parameters are yielded in module order so layers complete one after another).

The iteration is collective under ZeRO-3: every rank must run it to the end, in the same order,
even a rank that keeps nothing (``keep=False``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_BUCKET_NUMEL = 50_000_000
"""Elements gathered at once under ZeRO-3 (100 MB in bf16); ``distributed.push_bucket_numel``."""


def is_partitioned(param: torch.Tensor) -> bool:
    """Whether ``param`` is a ZeRO-3 partitioned parameter (its full value lives on several ranks)."""
    return hasattr(param, "ds_id")


def _numel(param: torch.Tensor) -> int:
    return int(param.ds_numel) if is_partitioned(param) else param.numel()


def parameter_buckets(named: list[tuple[str, torch.Tensor]], bucket_numel: int) -> Iterator[list[tuple[str, Any]]]:
    """``named`` in order, cut into runs of at most ``bucket_numel`` elements (a larger tensor alone)."""
    if bucket_numel < 1:
        raise ValueError(f"bucket_numel={bucket_numel!r} must be a positive number of elements")
    bucket: list[tuple[str, Any]] = []
    size = 0
    for name, param in named:
        numel = _numel(param)
        if bucket and size + numel > bucket_numel:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, param))
        size += numel
    if bucket:
        yield bucket


@contextlib.contextmanager
def gathered(params: list[torch.Tensor]) -> Iterator[None]:
    """Full values of ZeRO-3 partitioned parameters inside the block (read only); no-op otherwise."""
    if not any(is_partitioned(p) for p in params):
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        yield


def iter_full_parameters(module: nn.Module, bucket_numel: int = DEFAULT_BUCKET_NUMEL, *,
                         keep: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, full value)`` of every parameter of ``module``, in module order, under every name it has.

    A tied parameter (an output head that shares the input embedding) is gathered once and yielded
    once per name, e.g. ``model.embed_tokens.weight`` then ``lm_head.weight``. The engine needs both:
    vLLM's in-place reload restores a layer that received no weights to its old values, so a tied
    head left out of the stream kept the initial weights while the embedding moved on (measured on
    SmolLM2-135M and tiny Llama / Qwen3 models, ``tests/resd_learner/test_weight_sync.py``).

    A yielded tensor is the parameter itself (detached, no copy) and must be consumed, i.e. copied,
    before the iteration moves on: under ZeRO-3 its bucket is released when the next one is gathered.
    With ``keep=False`` the buckets are still gathered (a collective) but nothing is yielded.
    """
    aliases: dict[int, list[str]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(param), []).append(name)
    named = [(name, param) for name, param in module.named_parameters()]
    for bucket in parameter_buckets(named, bucket_numel):
        with gathered([param for _, param in bucket]):
            if keep:
                for name, param in bucket:
                    value = param.detach()
                    for alias in aliases.get(id(param), [name]):
                        yield alias, value


RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"
"""The vLLM logger that reports a layer the in-place reload received no weights for."""

_FAILED_TO_LOAD = ": Failed to load weights"


class _KeptOldWeights(logging.Filter):
    """Collects the layers vLLM's reload kept old weights for and drops vLLM's line about them; passes
    any other record only at or above ``pass_level`` (the logger's own threshold before the push)."""

    def __init__(self, pass_level: int) -> None:
        super().__init__()
        self.layers: list[str] = []
        self.pass_level = pass_level

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.endswith(_FAILED_TO_LOAD):
            return record.levelno >= self.pass_level
        layer = message[: -len(_FAILED_TO_LOAD)]
        if not layer.endswith("RotaryEmbedding"):
            self.layers.append(layer)
        return False


def reload_engine_weights(llm: Any, weights: Iterable[tuple[str, Any]]) -> list[str]:
    """Load ``weights`` (name, tensor) pairs into a running in-process vLLM engine, in place.

    Then drops the prefix cache (its keys/values came from the old weights). Returns the classes of
    the layers that received nothing and so kept their old weights (rotary embeddings excluded: their
    cos/sin table is computed from the config, never pushed), and warns about them: an engine that
    samples from a mix of old and new weights is how the tied output head went stale once. vLLM's
    reload logger is enabled at WARNING for the push whatever its configured level (what it would not
    have shown stays hidden); only ``logging.disable`` or another process's engine escapes the watch.
    """
    vllm_logger = logging.getLogger(RELOAD_LOGGER)
    saved_disabled, saved_level = vllm_logger.disabled, vllm_logger.level
    pass_level = logging.CRITICAL + 1 if saved_disabled else vllm_logger.getEffectiveLevel()
    watch = _KeptOldWeights(pass_level)
    vllm_logger.addFilter(watch)
    vllm_logger.disabled = False
    if vllm_logger.getEffectiveLevel() > logging.WARNING:
        vllm_logger.setLevel(logging.WARNING)
    try:
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
    finally:
        vllm_logger.removeFilter(watch)
        vllm_logger.disabled = saved_disabled
        vllm_logger.setLevel(saved_level)
    reset = getattr(llm, "reset_prefix_cache", None)
    if callable(reset):
        reset()
    if watch.layers:
        logger.warning("weight push: vLLM received no weights for %d layer(s) (%s) and kept their old "
                       "values, so the engine samples from a mix of old and new weights; check that every "
                       "trained parameter, tied ones included, is in the push", len(watch.layers),
                       ", ".join(sorted(set(watch.layers))))
    return watch.layers


def push_weights(backend: Any, module: nn.Module, bucket_numel: int = DEFAULT_BUCKET_NUMEL) -> None:
    """Stream ``module``'s parameters into ``backend`` (collective under ZeRO-3: call on every rank).

    ``backend`` None (a rank without an engine) still takes part in the gathers. An in-process vLLM
    engine (a backend with an ``llm``) reads the stream lazily through ``reload_weights``, so only
    one bucket is gathered at a time; any other backend gets the list of all pairs (the transformers
    fallback copies them into its own model).
    """
    stream = iter_full_parameters(module, bucket_numel, keep=backend is not None)
    if backend is None:
        for _ in stream:
            pass
        return
    llm = getattr(backend, "llm", None)
    if llm is not None and hasattr(llm, "collective_rpc"):
        reload_engine_weights(llm, stream)
        return
    backend.push_weights(list(stream))
