"""The student's distillation loss computed inside the module the DeepSpeed engine wraps.

The chunked loss (:func:`resd_learner.loss.chunked_f_divergence_loss`) reads the student's output
head ``[V, H]`` directly, outside the head's own forward. Under ZeRO-3 the head is partitioned and
gathered only while a module that owns it runs its forward; used anywhere else it is an empty
partition, and with tied embeddings ZeRO-3 also loses part of its gradient. So the loss runs inside
the student's own forward: :func:`install_distillation_forward` gives the Hugging Face model an
instance-level ``forward`` that, called with ``distill=DistillInputs(...)``, runs the base model and
the chunked loss and returns the ``[B, R]`` per-token losses; called without it, it is the model's
normal forward. Under ZeRO-3 the head weight is registered as an external parameter of the model, so
DeepSpeed gathers it for the whole forward and routes its gradient back to the partition owner.

The model keeps its class, parameter names and ``state_dict`` (checkpoints and the weight push see
the plain Hugging Face model). The same path runs under every ZeRO stage, so ZeRO-3 costs no more
activation memory than ZeRO 0-2: no ``[B, R, V]`` logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from resd_learner.batch import gather_positions
from resd_learner.loss import chunked_f_divergence_loss


@dataclass
class DistillInputs:
    """What one micro-batch's distillation forward needs.

    Attributes:
        input_ids, attention_mask: [B, T] the student sequences (prompt + response), padded.
        positions: [B, R] the positions whose hidden states predict the response tokens.
        teacher_hidden: [B, R, H] the teacher's hidden states at the matching positions (no grad).
        teacher_head: [V, H] the teacher's output projection.
        mask: [B, R] 1 on response tokens, 0 on padding.
        chunk_size: response positions per loss chunk.
        options: the loss keyword arguments (``LossConfig.loss_kwargs()``).
        rollout_logprobs, target_ids: [B, R] the engine's log-probabilities of the sampled response
            tokens and those tokens, for the rollout correction (official ``rollout_is=token``); None
            skips it.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    positions: torch.Tensor
    teacher_hidden: torch.Tensor
    teacher_head: torch.Tensor
    mask: torch.Tensor
    chunk_size: int = 1024
    options: dict[str, Any] = field(default_factory=dict)
    rollout_logprobs: torch.Tensor | None = None
    target_ids: torch.Tensor | None = None


def distillation_loss(model: nn.Module, inputs: DistillInputs) -> torch.Tensor:
    """[B, R] per-token divergences of ``model`` (a Hugging Face causal LM) against the teacher."""
    out = model.base_model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask, use_cache=False)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    head = model.get_output_embeddings().weight
    student = gather_positions(hidden, inputs.positions)
    correction = {}
    if inputs.rollout_logprobs is not None and inputs.target_ids is not None:
        correction = {"rollout_logprobs": inputs.rollout_logprobs.to(hidden.device),
                      "target_ids": inputs.target_ids.to(hidden.device)}
    return chunked_f_divergence_loss(student, inputs.teacher_hidden.to(device=hidden.device),
                                     head, inputs.teacher_head.to(device=hidden.device), inputs.mask,
                                     chunk_size=inputs.chunk_size, **correction, **inputs.options)


def install_distillation_forward(model: nn.Module) -> nn.Module:
    """Give ``model`` the dispatching forward (idempotent) and return it.

    ``model(distill=DistillInputs(...))`` returns the per-token losses; any other call is the model's
    original forward. Call before ``deepspeed.initialize``; under ZeRO-3 call
    :func:`register_head_with_zero3` after the model's parameters are partitioned.
    """
    if getattr(model, "_resd_distill_forward", False):
        return model
    original = model.forward

    def forward(*args: Any, distill: DistillInputs | None = None, **kwargs: Any) -> Any:
        if distill is None:
            return original(*args, **kwargs)
        if args or kwargs:
            raise TypeError("a distillation forward takes only distill=DistillInputs(...)")
        return distillation_loss(model, distill)

    model.forward = forward
    model._resd_distill_forward = True
    return model


def register_head_with_zero3(model: nn.Module) -> bool:
    """Register the (partitioned) output head as an external parameter of ``model``; False if not ZeRO-3."""
    head = model.get_output_embeddings().weight
    if not hasattr(head, "ds_id"):
        return False
    import deepspeed

    deepspeed.zero.register_external_parameter(model, head)
    return True
