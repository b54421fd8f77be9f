"""Generation backends behind one interface: vLLM (the real path) and transformers (the fallback).

``make_backend(config, model_dir, tokenizer)`` builds the backend named by ``config.backend``
(a :class:`~resd_learner.config.RolloutConfig`). Every backend has
``generate(messages_batch, *, n, temperature, top_p, max_tokens, seed) -> list[list[Generation]]``
and ``push_weights(named_tensors)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resd_learner.rollout.base import Generation, GenerationBackend, render_prompt_ids, request_seed

BACKENDS: tuple[str, ...] = ("vllm", "hf")


def make_backend(
    config: Any,
    model_dir: str | Path,
    tokenizer: Any,
    *,
    dtype: str = "float32",
    enable_thinking: bool | None = None,
    seed: int = 0,
    llm: Any = None,
) -> GenerationBackend:
    """The generation backend named by ``config.backend`` ("vllm" or "hf") for ``model_dir``.

    Args:
        config: a RolloutConfig (``backend``, ``max_model_len`` and the vLLM engine options are read).
        llm: an existing ``vllm.LLM`` for the vLLM backend (reused instead of building one).
    """
    backend = getattr(config, "backend", None)
    if backend == "vllm":
        from resd_learner.rollout.vllm_backend import VllmBackend

        return VllmBackend(
            model_dir, tokenizer, dtype=dtype, max_model_len=config.max_model_len, enable_thinking=enable_thinking,
            seed=seed, kv_cache_gb=config.kv_cache_gb, gpu_memory_utilization=config.gpu_memory_utilization,
            tensor_parallel_size=config.tensor_parallel_size, enforce_eager=config.enforce_eager,
            chunked_prefill=getattr(config, "chunked_prefill", None),
            max_num_batched_tokens=getattr(config, "max_num_batched_tokens", None),
            block_size=getattr(config, "block_size", None), top_p_impl=getattr(config, "top_p_impl", "auto"),
            llm=llm,
        )
    if backend == "hf":
        from resd_learner.rollout.hf_backend import HfBackend

        return HfBackend(model_dir, tokenizer, dtype=dtype, max_model_len=config.max_model_len,
                         enable_thinking=enable_thinking)
    raise ValueError(f"rollout.backend={backend!r} is unknown; use one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Generation", "GenerationBackend", "make_backend", "render_prompt_ids", "request_seed"]

from resd_learner.rollout.collect import collect_samples  # noqa: E402

__all__.append("collect_samples")
