"""Success-rate rebalancing of per-sample distillation weights (paper Appendix B, official formula).

This module owns one pure function: turning a batch's rewards into per-sample weights with mean 1.
It does not decide whether rebalancing is enabled (the trainer's config does) nor apply the weights
(``resd_learner.loss.aggregate_loss`` takes them as ``sample_weights``).

With B samples and S = the samples whose reward is at least ``threshold``:

* ``sr = |S| / B`` clamped to ``[1/B, 1 - 1/B]`` (computed over the whole batch, not per prompt);
* raw weight ``w_i = (1 - sr) ** alpha`` for i in S and ``sr ** beta`` otherwise;
* ``w_i <- w_i / mean_j(w_j)`` so the batch mean is 1; if that mean is below 1e-8 every weight is 1.

With alpha = beta = 1 (official) and 1 <= |S| <= B-1, successes get ``1 / (2 sr)`` and failures
``1 / (2 (1 - sr))``: each class carries half of the total weight. When all samples succeed or all
fail, every weight is 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

_MIN_MEAN = 1e-8


def success_rate_weights(
    rewards: Sequence[float] | torch.Tensor,
    *,
    threshold: float,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> torch.Tensor:
    """Per-sample weights that balance successes against failures in the batch.

    Args:
        rewards: [B] rewards of the batch's samples (B >= 1, all finite).
        threshold: a sample succeeds when ``reward >= threshold`` (official: 0.5 for binary rewards,
            1.0 for Finer's dense tag fraction).
        alpha: exponent of the successes' weight ``(1 - sr) ** alpha`` (>= 0).
        beta: exponent of the failures' weight ``sr ** beta`` (>= 0).

    Returns:
        [B] float32 weights on the rewards' device (CPU for a sequence), with mean exactly 1 up to rounding.
    """
    values = torch.as_tensor(rewards).detach().to(device="cpu", dtype=torch.float64)
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"rewards must be a non-empty 1-D sequence, got shape {tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise ValueError(f"rewards must be finite numbers, got {values.tolist()}")
    for name, value in (("threshold", threshold), ("alpha", alpha), ("beta", beta)):
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ValueError(f"{name}={value!r} must be a finite number")
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha={alpha} and beta={beta} must be >= 0 (0 turns rebalancing off)")
    size = values.numel()
    device = rewards.device if isinstance(rewards, torch.Tensor) else torch.device("cpu")
    if size == 1:
        return torch.ones(1, dtype=torch.float32, device=device)
    success = values >= threshold
    rate = min(max(success.sum().item() / size, 1.0 / size), 1.0 - 1.0 / size)
    raw = torch.where(
        success,
        torch.tensor((1.0 - rate) ** alpha, dtype=torch.float64),
        torch.tensor(rate ** beta, dtype=torch.float64),
    )
    mean = raw.mean()
    weights = torch.ones_like(raw) if mean < _MIN_MEAN else raw / mean
    return weights.to(dtype=torch.float32, device=device)
