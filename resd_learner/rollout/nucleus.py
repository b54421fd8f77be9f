"""Top-p (nucleus) filtering without sorting the vocabulary, for vLLM's CPU sampler.

vLLM's CPU sampler filters top-p by sorting every row of logits over the whole vocabulary
(``apply_top_k_top_p_pytorch``: sort, softmax, cumulative sum, mask, scatter back). On a 2-core CPU
that sort costs about 3 ms a row for SmolLM2's 49,152 tokens, 18 % of a float32 validation
(``benchmarks/generation_profile.py``). The nucleus at top-p 0.95 usually holds a few dozen tokens,
so :func:`nucleus_filter` finds it among the ``candidates`` largest logits (``torch.topk``, a
partial selection) and sorts only those; a row whose nucleus is larger falls back to vLLM's own
function.

Contract (the same as vLLM's for ``k=None``): on return, ``logits[b, v]`` is unchanged for every token
``v`` that vLLM keeps and ``-inf`` for every other one, where vLLM keeps a token when the probability
mass of the tokens ranked at or below it (its ascending cumulative sum) exceeds ``1 - p[b]``, and
always keeps the most likely token. The kept set is computed from the same float32 softmax
probabilities; the sums are accumulated in float64 (as torch's CPU cumsum does for float32), but in
another order, so a token whose cumulative mass lies within a few float32 ulps of ``1 - p`` could be
decided differently. ``benchmarks/top_p_sampler.py`` compares the two token for token.

:func:`use_partial_top_p` swaps the function vLLM's sampler calls (process-wide: the engine runs in
the trainer's process); the vLLM backend does so on CPU (``rollout.top_p_impl``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from resd_learner.config import TOP_P_IMPLS

DEFAULT_CANDIDATES = 256
"""Largest logits examined per row before falling back to the full sort."""

_ORIGINAL: dict[str, Callable[..., torch.Tensor]] = {}
"""vLLM's own ``apply_top_k_top_p``, saved the first time :func:`use_partial_top_p` runs (and restored by it)."""


def nucleus_filter(
    logits: torch.Tensor,
    p: torch.Tensor,
    *,
    candidates: int = DEFAULT_CANDIDATES,
    fallback: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Mask ``logits`` in place to the top-p nucleus of each row; returns ``logits``.

    Args:
        logits: [B, V] floating logits (after temperature, penalties and any grammar mask).
        p: [B] top-p values in (0, 1].
        candidates: how many of the largest logits of a row to examine (clamped to V).
        fallback: ``fallback(rows_logits [R, V], rows_p [R]) -> masked [R, V]`` for the rows whose
            nucleus holds more than ``candidates`` tokens (or whose p is 1); None uses
            :func:`full_sort_filter` (vLLM's algorithm, written out here).

    Returns:
        the same tensor, masked with ``-inf`` outside each row's nucleus.
    """
    if logits.dim() != 2 or p.dim() != 1 or p.shape[0] != logits.shape[0]:
        raise ValueError(f"expected logits [B, V] and p [B]; got {tuple(logits.shape)} and {tuple(p.shape)}")
    rows, vocab = logits.shape
    if rows == 0:
        return logits
    k = max(1, min(int(candidates), vocab))
    top_logits, top_ids = logits.topk(k, dim=-1)  # [B, k], descending
    probs = logits.softmax(dim=-1, dtype=torch.float32)  # [B, V]
    top_probs = probs.gather(1, top_ids).double()  # [B, k]
    tail = probs.scatter_(1, top_ids, 0.0).sum(dim=-1, dtype=torch.float64)  # [B] mass outside the candidates
    # mass at or below each candidate, accumulated from the least likely candidate upwards
    at_or_below = tail.unsqueeze(1) + top_probs.flip(1).cumsum(dim=1).flip(1)  # [B, k]
    threshold = (1 - p.to(torch.float32)).unsqueeze(1)  # [B, 1], float32 as in vLLM
    drop = at_or_below.float() <= threshold
    drop[:, 0] = False  # the most likely token always stays
    complete = tail.float() <= threshold.squeeze(1)  # every token outside the candidates is dropped
    kept_values = top_logits.masked_fill(drop, float("-inf"))
    rest = (~complete).nonzero().squeeze(1)  # rows whose nucleus reaches beyond the candidates
    pending = logits[rest]  # a copy of those rows, taken before the in-place mask
    logits.fill_(float("-inf")).scatter_(1, top_ids, kept_values)
    if rest.numel():
        logits[rest] = (fallback or full_sort_filter)(pending, p[rest])
    return logits


def full_sort_filter(logits: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """vLLM's top-p algorithm for ``k=None`` (sort the whole row ascending, softmax, cumulative sum,
    drop what sums to at most ``1 - p``, keep the largest), in place; the reference for tests."""
    sorted_logits, order = logits.sort(dim=-1, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= 1 - p.unsqueeze(1)
    drop[:, -1] = False
    sorted_logits.masked_fill_(drop, float("-inf"))
    return logits.scatter_(dim=-1, index=order, src=sorted_logits)


def partial_top_k_top_p(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
    """Drop-in for vLLM's ``apply_top_k_top_p``: top-p alone goes through :func:`nucleus_filter` (rows
    it cannot settle through vLLM's function); anything with a top-k goes to vLLM's function."""
    original = _ORIGINAL["apply_top_k_top_p"]
    if p is None or k is not None:
        return original(logits, k, p)
    return nucleus_filter(logits, p, fallback=lambda rows, rows_p: original(rows, None, rows_p))


def resolve_top_p_impl(requested: str, *, on_gpu: bool) -> tuple[str, str]:
    """``(impl, why)``: "partial" or "vllm" for ``rollout.top_p_impl`` (``auto``: partial on CPU, where
    vLLM's sampler sorts every row; vllm on GPU, where it does not). Raises ValueError for other values."""
    if requested not in TOP_P_IMPLS:
        raise ValueError(f"rollout.top_p_impl={requested!r}: use {', '.join(TOP_P_IMPLS)}")
    if requested != "auto":
        return requested, "set in the config"
    if on_gpu:
        return "vllm", "on GPU vLLM's sampler finds the nucleus without sorting the vocabulary"
    return "partial", "on CPU vLLM's sampler would sort every row of logits over the whole vocabulary"


def use_partial_top_p(enabled: bool) -> bool:
    """Make vLLM's sampler filter top-p with :func:`partial_top_k_top_p` (True) or with its own full
    sort (False); process-wide. Returns whether the partial filter is now in use.

    Raises:
        ImportError: vLLM is not installed.
    """
    from vllm.v1.sample.ops import topk_topp_sampler as sampler_ops

    _ORIGINAL.setdefault("apply_top_k_top_p", sampler_ops.apply_top_k_top_p)
    sampler_ops.apply_top_k_top_p = partial_top_k_top_p if enabled else _ORIGINAL["apply_top_k_top_p"]
    return enabled
