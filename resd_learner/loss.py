"""The RESD self-distillation loss: a clipped f-divergence between student and teacher, per token.

This module owns the maths of the distillation objective (the paper's Eq. 1 as the official code
implements it) and its aggregation into a scalar. It does not own the models, the teacher prompt or
the success-rate weights (see ``resd_learner.rebalance``).

Notation, per response position t (B = batch, T = tokens, V = vocabulary, H = hidden size):

* ``p = softmax(student_logits / temperature)``: the student distribution over the V tokens.
* ``q = softmax(teacher_logits / temperature)``: the teacher distribution (the same model, or its
  EMA, conditioned on the enriched context) at the position that predicts the same response token.
* Support ``K``: the ``top_k`` vocabulary ids with the largest **student** logits (``topk_source=
  "student"``, the official choice) or teacher logits (``"teacher"``). Both ``p`` and ``q`` keep their
  full-vocabulary normalisation; nothing is renormalised over ``K``.
* Tail bucket (``add_tail=True``): one more entry holding the remaining mass,
  ``p_tail = 1 - sum_{v in K} p(v)`` (likewise ``q_tail``, the teacher's mass outside the *same* K).
  As in the official code, ``log sum_{v in K} p(v)`` is clamped to at most ``-1e-7`` first, so the tail
  mass is never exactly zero. When ``top_k`` is None or ``>= V`` the support is the whole vocabulary
  and there is no tail (it would be empty), so the loss is the exact full-vocabulary divergence.
* Likelihood-ratio clip, per support entry ``v`` (tail included), on the ratio ``r(v) = q(v) / p(v)``:
  ``log q~(v) = clamp(log q(v), min=sg(log p(v)) + log(low), max=sg(log p(v)) + log(high))`` where sg is
  stop-gradient and either bound may be None (off). The official setting is low = 0.2, high = None.
  ``q~`` is **not** renormalised.

Divergences (the per-token loss is the sum over the support entries):

* ``"forward_kl"``: ``KL(q~ || p) = sum_v q~(v) (log q~(v) - log p(v))``; mean-seeking. This is the
  official code's alpha = 0 (which it calls "forward KL").
* ``"reverse_kl"``: ``KL(p || q~) = sum_v p(v) (log p(v) - log q~(v))``; mode-seeking; official alpha = 1
  (Manufactoria-Has, BouncingSim-Medium).
* ``"jsd"``: generalised Jensen-Shannon with ``beta = jsd_beta`` in (0, 1) and mixture
  ``m = (1 - beta) p + beta q~`` (formed in log space): ``(1 - beta) KL(p || m) + beta KL(q~ || m)``;
  official 0 < alpha < 1 with beta = alpha (alpha = 0.5 for BouncingSim-Easy and Finer). See
  :func:`divergence_from_alpha` to translate an official alpha.

Gradients: the teacher is a stop-gradient target. The support choice (top-k), the clip bounds and
the teacher side ``q`` are constants; the student gets gradients through ``p`` only, even when the
caller's teacher logits (or hidden states / head) require grad, e.g. a non-EMA teacher that is the
student itself under another context. ``teacher_grad=True`` opts out (gradients then also flow into
the teacher's inputs); it exists for analyses that differentiate the loss with
respect to the teacher, not for training.

All divergence arithmetic runs in float32 for float32/bfloat16/float16 inputs (float64 inputs stay
float64, which ``torch.autograd.gradcheck`` needs), and only at positions where the mask is non-zero
(other positions are never read, so padding may hold anything). Logits must be finite at scored
positions: a -inf logit inside the support yields NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")
AGGREGATIONS = ("seq-mean-token-mean", "token-mean")
TOPK_SOURCES = ("student", "teacher")
ROLLOUT_IS_CAP = 2.0
"""Truncation of the rollout-correction weight (official ``rollout_is_threshold``)."""
TAIL_LOG_MASS_MAX = -1e-7
"""Upper clamp on ``log sum_{v in K} p(v)`` before the tail ``log(1 - sum)`` is taken (official value)."""


@dataclass
class LossConfig:
    """Settings of the self-distillation loss; the defaults are the official RESD values except divergence."""

    divergence: str = "forward_kl"
    """"forward_kl" = KL(teacher||student), "reverse_kl" = KL(student||teacher), or "jsd"."""
    jsd_beta: float = 0.5
    """JSD mixing weight of the teacher, in (0, 1); used only when divergence is "jsd"."""
    top_k: int | None = 100
    """Support size per position; None (or >= vocabulary size) means the full vocabulary."""
    add_tail: bool = True
    """Append the bucket holding the mass outside the top-k support."""
    ratio_clip_low: float | None = 0.2
    """Lower bound on teacher/student probability ratio per support entry; None turns it off."""
    ratio_clip_high: float | None = None
    """Upper bound on the same ratio; None (official) turns it off."""
    aggregation: str = "seq-mean-token-mean"
    """"seq-mean-token-mean" (official: each sample's token mean, averaged over samples) or "token-mean"."""
    chunk_size: int = 1024
    """Response positions per chunk in the chunked loss (bounds the [chunk, V] logits in memory)."""
    temperature: float = 1.0
    """Logits are divided by this before the softmax (the rollout temperature; official 1.0)."""
    topk_source: str = "student"
    """Whose logits choose the top-k support: "student" (official) or "teacher"."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid loss config:\n  - " + "\n  - ".join(problems))

    def problems(self) -> list[str]:
        """Every problem with these settings, each naming the field and the fix (empty if valid)."""
        found = _option_problems(
            self.divergence, self.jsd_beta, self.top_k, self.ratio_clip_low, self.ratio_clip_high,
            self.temperature, self.topk_source,
        )
        if not isinstance(self.add_tail, bool):
            found.append(f"loss.add_tail={self.add_tail!r} must be true or false")
        if self.aggregation not in AGGREGATIONS:
            found.append(f"loss.aggregation={self.aggregation!r} is unknown; use one of {AGGREGATIONS}")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            found.append(f"loss.chunk_size={self.chunk_size!r} must be a positive integer (e.g. 1024)")
        return found

    def loss_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`f_divergence_loss` that this config sets."""
        kwargs = asdict(self)
        del kwargs["aggregation"], kwargs["chunk_size"]
        return kwargs


def divergence_from_alpha(alpha: float) -> tuple[str, float]:
    """Translate the official code's ``alpha`` into ``(divergence, jsd_beta)`` for this module.

    alpha = 0 gives ``("forward_kl", 0.5)``, alpha = 1 gives ``("reverse_kl", 0.5)`` and 0 < alpha < 1
    gives ``("jsd", alpha)`` (jsd_beta is irrelevant for the two KLs and returned as the default).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"alpha={alpha!r} is outside [0, 1]; the official code accepts 0, 1 or values between"
        )
    if alpha == 0.0:
        return "forward_kl", 0.5
    if alpha == 1.0:
        return "reverse_kl", 0.5
    return "jsd", float(alpha)


def f_divergence_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    divergence: str = "forward_kl",
    jsd_beta: float = 0.5,
    top_k: int | None = 100,
    add_tail: bool = True,
    ratio_clip_low: float | None = 0.2,
    ratio_clip_high: float | None = None,
    temperature: float = 1.0,
    topk_source: str = "student",
    teacher_grad: bool = False,
    rollout_logprobs: torch.Tensor | None = None,
    target_ids: torch.Tensor | None = None,
    rollout_is_cap: float = ROLLOUT_IS_CAP,
) -> torch.Tensor:
    """Per-token clipped f-divergence between student and teacher over the top-k support (+ tail).

    Args:
        student_logits: [B, T, V] logits of the student at the response positions (any float dtype;
            gradients flow into it).
        teacher_logits: [B, T, V] teacher logits aligned position by position with the student's;
            detached (stop-gradient target) unless ``teacher_grad`` is True.
        mask: [B, T]; positions where it is non-zero are scored, the others are never read.
        divergence, jsd_beta, top_k, add_tail, ratio_clip_low, ratio_clip_high, temperature,
            topk_source: see the module docstring.
        teacher_grad: let gradients flow into ``teacher_logits`` too (default False: the teacher is a
            constant target).
        rollout_logprobs, target_ids: [B, T] log-probabilities the generation engine gave the sampled
            tokens, and those token ids. When given, each token's loss is multiplied by the rollout
            correction weight ``min(exp(log p_student(target) - rollout_logprob), rollout_is_cap)``
            (detached), the official ``rollout_is=token``. Both log-probs are untempered (temperature
            1, the :class:`~resd_learner.rollout.base.Generation` contract) whatever ``temperature``
            is: the weight corrects the numeric engine/trainer mismatch, which needs the two sides
            computed the same way; a student log-prob at ``temperature`` against the engine's raw
            one would weigh tokens by the temperature instead.

    Returns:
        [B, T] per-token losses (float32, or float64 for float64 inputs), exactly 0 where ``mask`` is 0.
    """
    _check_options(divergence, jsd_beta, top_k, ratio_clip_low, ratio_clip_high, temperature, topk_source,
                   add_tail)
    _check_teacher_grad(teacher_grad)
    if not teacher_grad:
        teacher_logits = teacher_logits.detach()
    if student_logits.dim() != 3:
        raise ValueError(f"student_logits must be [B, T, V], got shape {tuple(student_logits.shape)}")
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits shape {tuple(teacher_logits.shape)} differs from student_logits shape "
            f"{tuple(student_logits.shape)}; slice the teacher's outputs to the same response positions"
        )
    batch, tokens, vocab = student_logits.shape
    rows = _masked_rows(mask, batch, tokens, student_logits.device)
    correction = None
    if _check_rollout_args(rollout_logprobs, target_ids, rollout_is_cap, (batch, tokens)):
        with torch.no_grad():
            flat = _select_rows(student_logits.detach().reshape(batch * tokens, vocab), rows)
            trainer_lp = target_logprobs(flat, target_ids.reshape(-1)[rows], 1.0)
        correction = rollout_correction_weights(trainer_lp, rollout_logprobs.reshape(-1)[rows].to(flat.device),
                                                cap=rollout_is_cap)
    per_row = _per_row_divergence(
        _select_rows(student_logits.reshape(batch * tokens, vocab), rows),
        _select_rows(teacher_logits.reshape(batch * tokens, vocab), rows),
        divergence=divergence, jsd_beta=jsd_beta, top_k=top_k, add_tail=add_tail,
        ratio_clip_low=ratio_clip_low, ratio_clip_high=ratio_clip_high, temperature=temperature,
        topk_source=topk_source,
    )
    if correction is not None:
        per_row = per_row * correction.to(per_row.dtype)
    return _scatter_rows(per_row, rows, batch, tokens)


def chunked_f_divergence_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    student_lm_head_weight: torch.Tensor,
    teacher_lm_head_weight: torch.Tensor,
    mask: torch.Tensor,
    *,
    chunk_size: int = 1024,
    teacher_grad: bool = False,
    rollout_logprobs: torch.Tensor | None = None,
    target_ids: torch.Tensor | None = None,
    rollout_is_cap: float = ROLLOUT_IS_CAP,
    **loss_kwargs: Any,
) -> torch.Tensor:
    """:func:`f_divergence_loss` computed from hidden states without materialising [B, T, V] logits.

    Only the masked positions are scored, ``chunk_size`` of them at a time: each chunk's logits
    ``hidden @ lm_head_weight.T`` (shape [chunk, V]) are formed, reduced to per-token losses and dropped.
    Under autograd nothing of size V is kept between forward and backward; each chunk's logits are
    recomputed in backward instead. With a teacher that needs no gradient and a top-k support (the
    normal case) a custom autograd Function keeps only the support ids and the teacher's [N, K']
    support log-probs, recomputes just the student's logits chunk by chunk and accumulates the
    [V, H] head gradient in place; otherwise each chunk runs under ``torch.utils.checkpoint``
    (non-reentrant). Peak memory is O(chunk_size * V) for logits plus the [V, H] head gradient,
    whatever B * T is; compute is one extra student logit matmul per chunk.
    The result (values and gradients) equals ``f_divergence_loss(student_hidden @ W_s.T,
    teacher_hidden @ W_t.T, mask, ...)`` up to float rounding. Logits are formed in the inputs' dtype
    and upcast to float32 for the divergence.

    Args:
        student_hidden: [B, T, H] final hidden states (after the last norm) at the positions that
            predict the response tokens.
        teacher_hidden: [B, T, H] the teacher's hidden states at the positions that predict the same
            response tokens (slice the teacher's longer context so the two line up).
        student_lm_head_weight: [V, H] the student's output projection (may be tied to embeddings).
        teacher_lm_head_weight: [V, H] the teacher's output projection.
        mask: [B, T]; non-zero marks positions to score.
        chunk_size: positions per chunk (>= 1).
        teacher_grad: let gradients flow into the teacher's hidden states and head too (default False:
            both are detached, so the memory-lean frozen-teacher path is used).
        rollout_logprobs, target_ids, rollout_is_cap: the rollout correction, as in
            :func:`f_divergence_loss` (the student log-probs are formed chunk by chunk, without grad).
        **loss_kwargs: the keyword options of :func:`f_divergence_loss`.

    Returns:
        [B, T] per-token losses (float32, or float64 for float64 inputs), 0 where ``mask`` is 0.
    """
    options = _default_options()
    unknown = set(loss_kwargs) - set(options)
    if unknown:
        raise TypeError(
            f"chunked_f_divergence_loss got unknown keyword(s) {sorted(unknown)}; valid: {sorted(options)}"
        )
    options.update(loss_kwargs)
    _check_options(**options)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive integer")
    _check_teacher_grad(teacher_grad)
    if not teacher_grad:
        teacher_hidden, teacher_lm_head_weight = teacher_hidden.detach(), teacher_lm_head_weight.detach()
    if student_hidden.dim() != 3 or teacher_hidden.shape != student_hidden.shape:
        raise ValueError(
            f"student_hidden and teacher_hidden must both be [B, T, H] with equal shapes, got "
            f"{tuple(student_hidden.shape)} and {tuple(teacher_hidden.shape)}"
        )
    hidden = student_hidden.shape[-1]
    for name, weight in (("student", student_lm_head_weight), ("teacher", teacher_lm_head_weight)):
        if weight.dim() != 2 or weight.shape[1] != hidden:
            raise ValueError(f"{name}_lm_head_weight must be [V, {hidden}], got shape {tuple(weight.shape)}")
    if student_lm_head_weight.shape[0] != teacher_lm_head_weight.shape[0]:
        raise ValueError(
            f"student and teacher vocabularies differ ({student_lm_head_weight.shape[0]} vs "
            f"{teacher_lm_head_weight.shape[0]}); both heads must cover the same token ids"
        )
    batch, tokens, _ = student_hidden.shape
    rows = _masked_rows(mask, batch, tokens, student_hidden.device)
    student_rows = _select_rows(student_hidden.reshape(batch * tokens, hidden), rows)
    teacher_rows = _select_rows(teacher_hidden.reshape(batch * tokens, hidden), rows)
    chunk_fn = partial(_chunk_divergence, options=options)
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (student_rows, teacher_rows, student_lm_head_weight, teacher_lm_head_weight)
    )
    frozen_teacher = not (teacher_rows.requires_grad or teacher_lm_head_weight.requires_grad)
    vocab = student_lm_head_weight.shape[0]
    correction = None
    if _check_rollout_args(rollout_logprobs, target_ids, rollout_is_cap, (batch, tokens)) and rows.numel():
        targets = target_ids.reshape(-1).to(rows.device)[rows]
        with torch.no_grad():
            trainer_lp = torch.cat([
                target_logprobs(student_rows[i:i + chunk_size] @ student_lm_head_weight.T, targets[i:i + chunk_size],
                                1.0)  # untempered, as the engine's (see f_divergence_loss)
                for i in range(0, rows.numel(), chunk_size)])
        correction = rollout_correction_weights(
            trainer_lp, rollout_logprobs.reshape(-1)[rows.to(rollout_logprobs.device)].to(trainer_lp.device),
            cap=rollout_is_cap)
    if rows.numel() == 0:
        empty_dtype = torch.promote_types(student_rows.dtype, torch.float32)
        zeros = student_hidden.new_zeros(batch, tokens, dtype=empty_dtype)
        if needs_grad:  # nothing to distil: a zero that is still attached to the graph, so backward works
            anchor = student_hidden.sum() + student_lm_head_weight.sum()
            zeros = zeros + 0.0 * anchor.to(empty_dtype)
        return zeros
    if needs_grad and frozen_teacher and not _uses_full_vocab(options["top_k"], vocab):
        per_row = _FrozenTeacherChunkedLoss.apply(student_rows, teacher_rows, student_lm_head_weight,
                                                  teacher_lm_head_weight, options, chunk_size)
        return _scatter_rows(_corrected(per_row, correction), rows, batch, tokens)
    pieces = []
    for start in range(0, rows.numel(), chunk_size):
        args = (student_rows[start:start + chunk_size], teacher_rows[start:start + chunk_size],
                student_lm_head_weight, teacher_lm_head_weight)
        if needs_grad:
            pieces.append(checkpoint(chunk_fn, *args, use_reentrant=False, preserve_rng_state=False))
        else:
            pieces.append(chunk_fn(*args))
    return _scatter_rows(_corrected(torch.cat(pieces), correction), rows, batch, tokens)


def aggregate_loss(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    *,
    sample_weights: torch.Tensor | None = None,
    mode: str = "seq-mean-token-mean",
) -> torch.Tensor:
    """Reduce [B, T] per-token losses to a scalar.

    * ``"seq-mean-token-mean"`` (official RESD/GRPO behaviour, one sequence per micro-batch):
      ``mean_b( w_b * sum_t l[b,t] m[b,t] / max(sum_t m[b,t], 1) )``; a fully masked sample
      contributes 0 but still counts in the mean over B.
    * ``"token-mean"``: ``sum_{b,t} w_b l[b,t] m[b,t] / max(sum_{b,t} m[b,t], 1)``; long responses
      weigh more.

    ``mask`` may be 0/1 or real-valued weights; ``sample_weights`` ([B], e.g. success-rate weights)
    multiply each sample's token losses and do not change the token counts.
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"aggregation mode {mode!r} is unknown; use one of {AGGREGATIONS}")
    if per_token.dim() != 2 or mask.shape != per_token.shape:
        raise ValueError(
            f"per_token and mask must both be [B, T], got {tuple(per_token.shape)} and {tuple(mask.shape)}"
        )
    mask = mask.to(per_token.dtype)
    weighted = per_token * mask
    if sample_weights is not None:
        sample_weights = torch.as_tensor(sample_weights, dtype=per_token.dtype, device=per_token.device)
        if sample_weights.shape != per_token.shape[:1]:
            raise ValueError(
                f"sample_weights must have shape [B] = [{per_token.shape[0]}], "
                f"got {tuple(sample_weights.shape)}"
            )
        weighted = weighted * sample_weights[:, None]
    if mode == "seq-mean-token-mean":
        return (weighted.sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)).mean()
    return weighted.sum() / mask.sum().clamp_min(1.0)


def rollout_correction_weights(
    trainer_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, *, cap: float = 2.0
) -> torch.Tensor:
    """Truncated importance weights ``min(exp(log pi_trainer - log pi_rollout), cap)``, detached.

    They correct the numeric mismatch between the generation engine (vLLM) and the trainer for the
    same weights (official ``rollout_is = token``, threshold 2). Shapes: any, equal; returns float32.
    """
    if trainer_logprobs.shape != rollout_logprobs.shape:
        raise ValueError(
            f"trainer_logprobs {tuple(trainer_logprobs.shape)} and rollout_logprobs "
            f"{tuple(rollout_logprobs.shape)} must have the same shape"
        )
    if not cap > 0:
        raise ValueError(f"cap={cap!r} must be positive")
    log_ratio = trainer_logprobs.detach().float() - rollout_logprobs.detach().float()
    log_ratio = log_ratio.clamp(max=math.log(cap))
    return log_ratio.exp()


# ----------------------------------------------------------------------------------------- internals


def _default_options() -> dict[str, Any]:
    fields = LossConfig.__dataclass_fields__
    return {name: fields[name].default for name in fields if name not in ("aggregation", "chunk_size")}


def _option_problems(
    divergence: str, jsd_beta: float, top_k: int | None, ratio_clip_low: float | None,
    ratio_clip_high: float | None, temperature: float, topk_source: str,
) -> list[str]:
    found = []
    if divergence not in DIVERGENCES:
        found.append(f"divergence={divergence!r} is unknown; use one of {DIVERGENCES}")
    if divergence == "jsd" and not (isinstance(jsd_beta, (int, float)) and 0.0 < jsd_beta < 1.0):
        found.append(
            f"jsd_beta={jsd_beta!r} must lie strictly between 0 and 1; for 0 use divergence='forward_kl', "
            "for 1 use divergence='reverse_kl'"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        found.append(f"top_k={top_k!r} must be a positive integer, or None for the full vocabulary")
    for name, bound in (("ratio_clip_low", ratio_clip_low), ("ratio_clip_high", ratio_clip_high)):
        if bound is not None and not (isinstance(bound, (int, float)) and math.isfinite(bound) and bound > 0):
            found.append(f"{name}={bound!r} must be a positive finite ratio, or None to disable it")
    if (isinstance(ratio_clip_low, (int, float)) and isinstance(ratio_clip_high, (int, float))
            and ratio_clip_low > ratio_clip_high):
        found.append(f"ratio_clip_low={ratio_clip_low} exceeds ratio_clip_high={ratio_clip_high}; swap them")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        found.append(f"temperature={temperature!r} must be a positive finite number")
    if topk_source not in TOPK_SOURCES:
        found.append(f"topk_source={topk_source!r} is unknown; use one of {TOPK_SOURCES}")
    return found


def _check_options(
    divergence: str, jsd_beta: float, top_k: int | None, ratio_clip_low: float | None,
    ratio_clip_high: float | None, temperature: float, topk_source: str, add_tail: bool = True,
) -> None:
    problems = _option_problems(divergence, jsd_beta, top_k, ratio_clip_low, ratio_clip_high, temperature,
                                topk_source)
    if not isinstance(add_tail, bool):
        problems.append(f"add_tail={add_tail!r} must be True or False")
    if problems:
        raise ValueError("invalid distillation loss options: " + "; ".join(problems))


def _check_rollout_args(rollout_logprobs: torch.Tensor | None, target_ids: torch.Tensor | None, cap: float,
                        shape: tuple[int, int]) -> bool:
    """Whether the rollout correction is requested; raises when its arguments do not fit together."""
    if rollout_logprobs is None and target_ids is None:
        return False
    if rollout_logprobs is None or target_ids is None:
        raise ValueError("the rollout correction needs both rollout_logprobs and target_ids ([B, T] each), or neither")
    for name, value in (("rollout_logprobs", rollout_logprobs), ("target_ids", target_ids)):
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} must be [B, T] = {list(shape)}, got shape {tuple(value.shape)}")
    if not (isinstance(cap, (int, float)) and cap > 0):
        raise ValueError(f"rollout_is_cap={cap!r} must be a positive number (official 2.0)")
    return True


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """[..., V] logits and [...] token ids -> [...] log-probabilities (at least float32) of those tokens
    at ``temperature``. Differentiable; pass detached logits for a value without a graph."""
    scaled = _scaled_fp32(logits, temperature)
    picked = scaled.gather(-1, targets.to(logits.device).long()[..., None]).squeeze(-1)
    return picked - torch.logsumexp(scaled, dim=-1)


def _corrected(per_row: torch.Tensor, correction: torch.Tensor | None) -> torch.Tensor:
    return per_row if correction is None else per_row * correction.to(per_row.dtype)


def _check_teacher_grad(teacher_grad: bool) -> None:
    if not isinstance(teacher_grad, bool):
        raise TypeError(f"teacher_grad={teacher_grad!r} must be True or False")


def _masked_rows(mask: torch.Tensor, batch: int, tokens: int, device: torch.device) -> torch.Tensor:
    """Flat indices (into B*T) of the positions where ``mask`` is non-zero."""
    if mask.shape != (batch, tokens):
        raise ValueError(f"mask must be [B, T] = [{batch}, {tokens}], got shape {tuple(mask.shape)}")
    return (mask.reshape(-1) != 0).nonzero().squeeze(1).to(device)


def _select_rows(flat: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``flat[rows]``, without a copy when every row is selected (no padding)."""
    return flat if rows.numel() == flat.shape[0] else flat.index_select(0, rows)


def _scatter_rows(per_row: torch.Tensor, rows: torch.Tensor, batch: int, tokens: int) -> torch.Tensor:
    if rows.numel() == batch * tokens:
        return per_row.reshape(batch, tokens)
    out = per_row.new_zeros(batch * tokens)
    return out.index_copy(0, rows, per_row).reshape(batch, tokens)


def _chunk_divergence(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, student_weight: torch.Tensor,
    teacher_weight: torch.Tensor, *, options: dict[str, Any],
) -> torch.Tensor:
    """Per-row loss of one chunk: [c, H] hidden states and [V, H] heads -> [c] float32."""
    student_logits = student_hidden @ student_weight.T
    teacher_needs_grad = teacher_hidden.requires_grad or teacher_weight.requires_grad
    with torch.set_grad_enabled(torch.is_grad_enabled() and teacher_needs_grad):
        teacher_logits = teacher_hidden @ teacher_weight.T
    return _per_row_divergence(student_logits, teacher_logits, **options)


class _FrozenTeacherChunkedLoss(torch.autograd.Function):
    """The chunked loss over all rows when the teacher needs no gradient and the support is top-k.

    Forward forms each chunk's [c, V] student and teacher logits without autograd and keeps only the
    support ids and the teacher's [c, K'] support log-probs. Backward recomputes each chunk's student
    logits, differentiates the divergence with respect to them, and accumulates the hidden-state and
    head gradients in place, so memory holds one [V, H] head gradient plus one chunk's temporaries
    (autograd would add a fresh [V, H] gradient per chunk) and the teacher is never recomputed.
    """

    @staticmethod
    def forward(ctx: Any, student_rows: torch.Tensor, teacher_rows: torch.Tensor,
                student_weight: torch.Tensor, teacher_weight: torch.Tensor,
                options: dict[str, Any], chunk_size: int) -> torch.Tensor:
        temperature, top_k, add_tail = options["temperature"], options["top_k"], options["add_tail"]
        losses, all_ids, all_log_q = [], [], []
        for start in range(0, student_rows.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            student = _scaled_fp32(student_rows[rows] @ student_weight.T, temperature)
            teacher = _scaled_fp32(teacher_rows[rows] @ teacher_weight.T, temperature)
            ids, log_q = _teacher_support(student, teacher, top_k, add_tail, options["topk_source"])
            del teacher
            losses.append(_divergence_on_support(_student_support(student, ids, add_tail), log_q, options))
            all_ids.append(ids)
            all_log_q.append(log_q)
        ctx.save_for_backward(student_rows, student_weight, torch.cat(all_ids), torch.cat(all_log_q))
        ctx.options, ctx.chunk_size = options, chunk_size
        return torch.cat(losses)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        student_rows, weight, ids, log_q = ctx.saved_tensors
        options, chunk_size = ctx.options, ctx.chunk_size
        want_rows, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        grad_rows = torch.zeros_like(student_rows) if want_rows else None
        accumulate = torch.promote_types(weight.dtype, torch.float32)
        grad_weight = torch.zeros_like(weight, dtype=accumulate) if want_weight else None
        for start in range(0, student_rows.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            hidden = student_rows[rows]
            with torch.no_grad():
                logits = (hidden @ weight.T).requires_grad_()
            with torch.enable_grad():
                student = _scaled_fp32(logits, options["temperature"])
                loss = _divergence_on_support(_student_support(student, ids[rows], options["add_tail"]),
                                              log_q[rows], options)
                (grad_logits,) = torch.autograd.grad(loss, logits, grad[rows])
            if want_rows:
                grad_rows[rows] = grad_logits @ weight
            if want_weight:
                grad_weight.addmm_(grad_logits.T.to(accumulate), hidden.to(accumulate))
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_rows, None, grad_weight, None, None, None


def _per_row_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, **options: Any
) -> torch.Tensor:
    """[N, V] student and teacher logits -> [N] float32 divergence over the (clipped) support."""
    temperature = options["temperature"]
    student = _scaled_fp32(student_logits, temperature)
    ids, log_q = _teacher_support(student, _scaled_fp32(teacher_logits, temperature), options["top_k"],
                                  options["add_tail"], options["topk_source"])
    return _divergence_on_support(_student_support(student, ids, options["add_tail"]), log_q, options)


def _divergence_on_support(log_p: torch.Tensor, log_q: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    """Clip the teacher's [N, K'] support log-probs against the student's, then the divergence -> [N]."""
    log_q = _clip_ratio(log_p, log_q, options["ratio_clip_low"], options["ratio_clip_high"])
    divergence, beta = options["divergence"], options["jsd_beta"]
    if divergence == "forward_kl":
        return _kl(log_q, log_p)
    if divergence == "reverse_kl":
        return _kl(log_p, log_q)
    log_m = torch.logaddexp(log_p + math.log1p(-beta), log_q + math.log(beta))
    return (1.0 - beta) * _kl(log_p, log_m) + beta * _kl(log_q, log_m)


def _scaled_fp32(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Upcast to at least float32 (float64 stays float64, e.g. for gradcheck) and apply the temperature."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return logits if temperature == 1.0 else logits / temperature


class _SupportLogSoftmax(torch.autograd.Function):
    """``log_softmax(logits)[ids]`` for [N, V] logits and [N, k] ids, without a [N, V] log-softmax.

    Forward keeps only the logits (alive anyway) and the [N, 1] log-normaliser; backward writes the
    gradient ``onehot(ids) * g - softmax(logits) * sum(g)`` into one fresh [N, V] tensor, instead of
    the several [N, V] temporaries autograd would chain through logsumexp, gather and their sum.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        log_norm = torch.logsumexp(logits, dim=-1, keepdim=True)
        ctx.save_for_backward(logits, ids, log_norm)
        return logits.gather(-1, ids) - log_norm

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, ids, log_norm = ctx.saved_tensors
        grad_logits = torch.sub(logits, log_norm).exp_()
        grad_logits.mul_(-grad.sum(dim=-1, keepdim=True))
        grad_logits.scatter_add_(-1, ids, grad)
        return grad_logits, None


def _support_log_softmax(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and logits.requires_grad:
        return _SupportLogSoftmax.apply(logits, ids)
    return logits.gather(-1, ids) - torch.logsumexp(logits, dim=-1, keepdim=True)


def _uses_full_vocab(top_k: int | None, vocab: int) -> bool:
    return top_k is None or top_k >= vocab


def _teacher_support(
    student: torch.Tensor, teacher: torch.Tensor, top_k: int | None, add_tail: bool, topk_source: str
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Choose the support and return ``(ids [N, k] or None for the full vocabulary, log q [N, K'])``.

    K' = V (no tail) when top_k is None or >= V; otherwise top_k, plus 1 when ``add_tail``. The
    teacher's values are normalised over the full vocabulary.
    """
    if _uses_full_vocab(top_k, teacher.shape[-1]):
        return None, torch.log_softmax(teacher, dim=-1)
    chooser = student if topk_source == "student" else teacher
    ids = torch.topk(chooser.detach(), top_k, dim=-1).indices
    log_q = _support_log_softmax(teacher, ids)
    if add_tail:
        log_q = torch.cat([log_q, _log_tail(log_q)], dim=-1)
    return ids, log_q


def _student_support(student: torch.Tensor, ids: torch.Tensor | None, add_tail: bool) -> torch.Tensor:
    """The student's full-vocabulary-normalised log-probs on the support ``ids`` (+ tail): [N, K']."""
    if ids is None:
        return torch.log_softmax(student, dim=-1)
    log_p = _support_log_softmax(student, ids)
    if add_tail:
        log_p = torch.cat([log_p, _log_tail(log_p)], dim=-1)
    return log_p


def _log_tail(log_probs: torch.Tensor) -> torch.Tensor:
    """``log(1 - sum exp(log_probs))`` per row as [N, 1], with the official clamp of the log-sum."""
    log_mass = torch.logsumexp(log_probs, dim=-1, keepdim=True).clamp(max=TAIL_LOG_MASS_MAX)
    return torch.log(-torch.expm1(log_mass))


def _clip_ratio(
    log_p: torch.Tensor, log_q: torch.Tensor, low: float | None, high: float | None
) -> torch.Tensor:
    """Clamp ``log q`` into ``[sg(log p) + log(low), sg(log p) + log(high)]`` entry by entry."""
    anchor = log_p.detach()
    if low is not None:
        floor = anchor + math.log(low)
        log_q = torch.where(log_q < floor, floor, log_q)
    if high is not None:
        ceiling = anchor + math.log(high)
        log_q = torch.where(log_q > ceiling, ceiling, log_q)
    return log_q


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """``sum_v a(v) (log a(v) - log b(v))`` over the last dimension, from log-values; [N, K] -> [N]."""
    return (log_a.exp() * (log_a - log_b)).sum(dim=-1)
