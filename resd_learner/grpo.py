"""GRPO maths for the baseline: group-normalised advantages and the clipped policy-gradient loss.

This module owns two pure tensor functions (plus a diagnostics helper). It does not own the
rollouts, the grouping of samples (the caller lays groups out contiguously) or the aggregation
(use ``resd_learner.loss.aggregate_loss``; the official GRPO runs use "seq-mean-token-mean").

Official settings (docs/official-defaults.md §8): group size 8, advantage = (r - group mean) / group std,
clip_low 0.2, clip_high 0.28, dual clip 3, no KL and no entropy term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

LOG_RATIO_LIMIT = 20.0
"""``log pi - log pi_old`` is clamped to +-this before ``exp`` so the ratio cannot overflow."""


def group_advantages(
    rewards: Sequence[float] | torch.Tensor,
    group_size: int,
    *,
    normalize_std: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Outcome advantages normalised within each group of rollouts of the same prompt.

    Rollouts ``[g * group_size, (g + 1) * group_size)`` form group g. For each sample,
    ``A = r - mean(group)``, divided by ``std(group) + eps`` when ``normalize_std``; std is the
    unbiased (Bessel-corrected) standard deviation. A group of identical rewards gets all-zero
    advantages. With ``group_size == 1`` there is no group statistic: like verl, the mean is taken
    as 0 and the std as 1, so the advantage is the raw reward.

    Args:
        rewards: [N] rewards, N a multiple of ``group_size``.
        group_size: rollouts per prompt (>= 1).
        normalize_std: divide by the group's standard deviation (official GRPO: True).
        eps: added to the std to avoid division by zero (> 0).

    Returns:
        [N] float32 advantages on the rewards' device.
    """
    values = torch.as_tensor(rewards).detach().float()
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"rewards must be a non-empty 1-D sequence, got shape {tuple(values.shape)}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size={group_size!r} must be a positive integer")
    if values.numel() % group_size:
        raise ValueError(
            f"{values.numel()} rewards cannot be split into groups of {group_size}; pass all rollouts of "
            "each prompt, contiguously"
        )
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps={eps!r} must be a positive number")
    if not torch.isfinite(values).all():
        raise ValueError(f"rewards must be finite, got {values.tolist()}")
    if group_size == 1:
        return values.clone()
    groups = values.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if normalize_std:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = 3.0,
) -> torch.Tensor:
    """Per-token PPO/GRPO clipped surrogate loss with asymmetric clip and dual clip.

    With ``ratio = exp(logprobs - old_logprobs)`` (log-ratio clamped to +-20) and advantage A:

    * ``clipped = max(-A * ratio, -A * clamp(ratio, 1 - clip_low, 1 + clip_high))``;
    * for A < 0 and a dual clip c (> 1): ``loss = min(clipped, -A * c)``, which caps how much a
      very large ratio can push a negative-advantage token down; for A >= 0, ``loss = clipped``.

    Args:
        logprobs: [B, T] log-probs of the sampled tokens under the current policy (with grad).
        old_logprobs: [B, T] log-probs under the behaviour policy (treated as constants).
        advantages: [B] per-sample or [B, T] per-token advantages (treated as constants).
        mask: [B, T]; the loss is 0 where it is 0.
        clip_low, clip_high: ratio bounds ``1 - clip_low`` and ``1 + clip_high`` (official 0.2, 0.28).
        dual_clip: the constant c, > 1; None turns the dual clip off (official 3).

    Returns:
        [B, T] float32 per-token losses (aggregate with ``resd_learner.loss.aggregate_loss``).
    """
    advantages = _check_policy_inputs(logprobs, old_logprobs, advantages, mask, clip_low, clip_high,
                                      dual_clip)
    log_ratio = (logprobs.float() - old_logprobs.detach().float()).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        loss = torch.where(advantages < 0, torch.minimum(loss, -advantages * dual_clip), loss)
    return torch.where(mask != 0, loss, torch.zeros_like(loss))


def clip_fractions(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = 3.0,
) -> dict[str, float]:
    """Diagnostics for logging: the fraction of masked tokens where each clip is active.

    Returns ``{"clip_frac": ..., "dual_clip_frac": ...}``; "clip_frac" counts tokens whose gradient
    is zeroed by the ratio clip, "dual_clip_frac" tokens capped by the dual clip.
    """
    advantages = _check_policy_inputs(logprobs, old_logprobs, advantages, mask, clip_low, clip_high,
                                      dual_clip)
    with torch.no_grad():
        ratio = (logprobs.float() - old_logprobs.float()).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT).exp()
        unclipped = -advantages * ratio
        clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
        ratio_clipped = clipped > unclipped
        dual = torch.zeros_like(ratio_clipped)
        if dual_clip is not None:
            dual = (advantages < 0) & (torch.maximum(unclipped, clipped) > -advantages * dual_clip)
        selected = mask != 0
        count = max(int(selected.sum().item()), 1)
        return {
            "clip_frac": float((ratio_clipped & ~dual & selected).sum().item()) / count,
            "dual_clip_frac": float((dual & selected).sum().item()) / count,
        }


def _check_policy_inputs(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
    clip_low: float, clip_high: float, dual_clip: float | None,
) -> torch.Tensor:
    """Validate shapes and clip settings; return float32 advantages broadcastable to [B, T]."""
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs must be [B, T], got shape {tuple(logprobs.shape)}")
    for name, tensor in (("old_logprobs", old_logprobs), ("mask", mask)):
        if tensor.shape != logprobs.shape:
            raise ValueError(
                f"{name} shape {tuple(tensor.shape)} differs from logprobs shape {tuple(logprobs.shape)}"
            )
    advantages = torch.as_tensor(advantages, device=logprobs.device).detach().float()
    if advantages.shape == logprobs.shape[:1]:
        advantages = advantages[:, None]
    elif advantages.shape != logprobs.shape:
        raise ValueError(
            f"advantages must be [B] = [{logprobs.shape[0]}] or [B, T] = {list(logprobs.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    for name, value in (("clip_low", clip_low), ("clip_high", clip_high)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    if clip_low >= 1:
        raise ValueError(f"clip_low={clip_low} must be below 1 (the lower ratio bound is 1 - clip_low)")
    if dual_clip is not None and not (isinstance(dual_clip, (int, float)) and dual_clip > 1):
        raise ValueError(f"dual_clip={dual_clip!r} must be a number > 1, or None to disable it")
    return advantages
