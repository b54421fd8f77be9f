"""Pure statistics over per-token losses: loss mass per token, concentration, paired comparisons.

A "signal" here is one response scored under one teacher context: its token ids and a per-token
loss for each (same length). The loss mass of a token id is the sum of the losses at every
position where it occurs; its share is that mass over the total mass of all positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _check(token_ids: Sequence[Sequence[int]], losses: Sequence[Sequence[float]]) -> None:
    if len(token_ids) != len(losses):
        raise ValueError(f"got {len(token_ids)} token-id lists but {len(losses)} loss lists; pass one of each per sample")
    for i, (ids, loss) in enumerate(zip(token_ids, losses)):
        if len(ids) != len(loss):
            raise ValueError(f"sample {i}: {len(ids)} token ids but {len(loss)} losses; they must align position by position")


def token_mass(token_ids: Sequence[Sequence[int]], losses: Sequence[Sequence[float]]) -> dict[int, tuple[float, int]]:
    """``{token_id: (loss mass, occurrences)}`` over all samples."""
    _check(token_ids, losses)
    out: dict[int, list[float]] = {}
    for ids, loss in zip(token_ids, losses):
        for tok, value in zip(ids, loss):
            entry = out.setdefault(int(tok), [0.0, 0])
            entry[0] += float(value)
            entry[1] += 1
    return {tok: (mass, int(count)) for tok, (mass, count) in out.items()}


def top_tokens(
    token_ids: Sequence[Sequence[int]],
    losses: Sequence[Sequence[float]],
    *,
    k: int = 20,
    decode: Callable[[int], str] = str,
) -> list[dict[str, Any]]:
    """The ``k`` token ids with the most loss mass: token text, id, mass, share of the total, count, mean loss.

    Ties on mass are broken by the smaller token id (deterministic).
    """
    masses = token_mass(token_ids, losses)
    total = sum(m for m, _ in masses.values())
    ranked = sorted(masses.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
    return [
        {
            "token": decode(tok),
            "id": tok,
            "mass": mass,
            "share": mass / total if total > 0 else 0.0,
            "count": count,
            "mean_loss": mass / count,
        }
        for tok, (mass, count) in ranked
    ]


def top_mass_shift(
    token_ids: Sequence[Sequence[int]],
    losses_a: Sequence[Sequence[float]],
    losses_b: Sequence[Sequence[float]],
    *,
    k: int = 15,
    decode: Callable[[int], str] = str,
) -> list[dict[str, Any]]:
    """Token ids whose loss mass grows most from context A to context B (same responses)."""
    mass_a = token_mass(token_ids, losses_a)
    mass_b = token_mass(token_ids, losses_b)
    shift = {tok: mass_b[tok][0] - mass_a[tok][0] for tok in mass_b}
    ranked = sorted(shift.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [
        {"token": decode(tok), "id": tok, "mass_a": mass_a[tok][0], "mass_b": mass_b[tok][0], "gain": gain,
         "count": mass_b[tok][1]}
        for tok, gain in ranked
    ]


def top_fraction_share(losses: Sequence[Sequence[float]], fraction: float = 0.1) -> float:
    """Share of the total loss mass carried by the top ``fraction`` of positions (pooled over samples)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} must be in (0, 1]")
    flat = np.sort(np.concatenate([np.asarray(x, dtype=np.float64) for x in losses] or [np.zeros(0)]))[::-1]
    total = flat.sum()
    if flat.size == 0 or total <= 0:
        return 0.0
    keep = max(1, math.ceil(fraction * flat.size))
    return float(flat[:keep].sum() / total)


def context_summary(losses: Sequence[Sequence[float]]) -> dict[str, float]:
    """Aggregates of one context over samples.

    ``sample_mean``: mean over samples of each sample's token-mean loss (the training aggregation,
    sequence-mean of token-mean); ``token_mean``: total mass / total tokens; ``total_mass``;
    ``top10pct_share``: concentration (see :func:`top_fraction_share`); ``tokens``.
    """
    if not losses or any(len(x) == 0 for x in losses):
        raise ValueError("context_summary needs at least one sample and at least one token per sample")
    per_sample = [float(np.mean(x)) for x in losses]
    total = float(sum(float(np.sum(x)) for x in losses))
    tokens = sum(len(x) for x in losses)
    return {
        "sample_mean": float(np.mean(per_sample)),
        "token_mean": total / tokens,
        "total_mass": total,
        "top10pct_share": top_fraction_share(losses, 0.1),
        "tokens": float(tokens),
    }


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign-test p-value for ``wins`` vs ``losses`` (ties excluded)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def paired_comparison(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Compare per-sample values of context B against context A (paired, same samples).

    Returns the mean difference B − A, a percentile bootstrap 95% interval of it (``resamples``
    resamples of the samples with replacement), the ratio mean(B)/mean(A), how many samples have
    B > A / B < A, and the two-sided sign-test p-value.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"paired_comparison needs two equally long, non-empty lists (got {x.size} and {y.size})")
    diff = y - x
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, diff.size, diff.size)].mean() for _ in range(resamples)])
    higher = int((diff > 0).sum())
    lower = int((diff < 0).sum())
    return {
        "mean_a": float(x.mean()),
        "mean_b": float(y.mean()),
        "mean_diff": float(diff.mean()),
        "ci95_low": float(np.percentile(means, 2.5)),
        "ci95_high": float(np.percentile(means, 97.5)),
        "ratio": float(y.mean() / x.mean()) if x.mean() != 0 else math.inf,
        "b_higher": float(higher),
        "b_lower": float(lower),
        "n": float(diff.size),
        "sign_test_p": sign_test_p(higher, lower),
    }
