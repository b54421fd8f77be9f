"""The EMA self-teacher: an fp32 shadow copy of the student that scores responses under no_grad.

This module owns the teacher's weights, their exponential-moving-average update and the teacher's
forward pass up to the final hidden states. It does not build the teacher's (enriched) input ids
(``resd_learner.context.teacher_prompt`` does) nor compute the loss (``resd_learner.loss``).

Update rule, applied on every ``update_every``-th call of :meth:`EmaTeacher.update`, parameter by
parameter in ``dtype`` (float32 by default)::

    theta_T <- (1 - rate) * theta_T + rate * theta_S

The official recipe calls it once per inner iteration (after each optimizer step) with
rate = 1e-4 (1e-2 for BouncingSim-Medium); rate = 0 keeps the teacher frozen at the initial student,
which is what the released official code effectively does (its update is never triggered). Buffers
(e.g. rotary tables) are copied once and not averaged.

DeepSpeed ZeRO-3: when the student's parameters are partitioned (they carry ``ds_id``), the full
values are gathered bucket by bucket with ``deepspeed.zero.GatheredParameters`` both when the copy is
made and at each update. Every rank must therefore call the constructor and ``update`` together, and
every rank holds a full, unpartitioned teacher. The trainer uses
:class:`resd_learner.partitioned_teacher.PartitionedEmaTeacher` under ZeRO-3 instead, which is
partitioned like the student.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from resd_learner.shared_prefix import supports_shared_prefix
from resd_learner.weight_sync import gathered, is_partitioned

GATHER_BUCKET_NUMEL = 50_000_000
"""Parameters are gathered under ZeRO-3 in buckets of at most this many elements (one tensor minimum)."""

_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks",
)
_DEEPSPEED_MODULE_ATTRS = (
    "_original_parameters", "_external_params", "ds_external_parameters", "all_parameters", "pre_bwd_fn",
    "post_bwd_fn", "applied_pre_backward_ref_cnt", "to_empty",
)


@dataclass
class TeacherConfig:
    """How the EMA teacher follows the student."""

    rate: float = 1e-4
    """EMA rate tau in theta_T <- (1 - tau) theta_T + tau theta_S (official 1e-4; BSim-Medium 1e-2)."""
    update_every: int = 1
    """Apply the update on every N-th call, i.e. every N optimizer steps (official: 1)."""
    share_prefix: bool = True
    """Compute the keys/values of the token prefix that all teacher sequences of a step share (system
    turn, teacher instructions, a task's fixed opening) once per teacher version and reuse them for
    every micro-batch; the hidden states equal the plain forward's up to float rounding. False runs
    every sequence whole. Ignored under ZeRO-3 and for models with sliding-window attention."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid teacher config:\n  - " + "\n  - ".join(problems))

    def problems(self) -> list[str]:
        """Every problem with these settings, each naming the field and the fix (empty if valid)."""
        found = []
        if not (isinstance(self.rate, (int, float)) and 0.0 <= self.rate <= 1.0):
            found.append(f"teacher.rate={self.rate!r} must be in [0, 1] (0 freezes the teacher)")
        every = self.update_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            found.append(f"teacher.update_every={self.update_every!r} must be a positive integer")
        if not isinstance(self.share_prefix, bool):
            found.append(f"teacher.share_prefix={self.share_prefix!r} must be true or false")
        return found


class EmaTeacher:
    """An fp32 EMA copy of a student module, used as the self-distillation teacher.

    Args:
        student_module: the student (a plain ``nn.Module``, a DeepSpeed engine or another wrapper
            exposing ``.module``; ZeRO-3 partitioned parameters are gathered).
        rate: EMA rate tau in [0, 1].
        update_every: apply the EMA on every N-th :meth:`update` call.
        dtype: floating dtype of the teacher's parameters and buffers (float32 recommended: with
            tau = 1e-4 a bf16 teacher would round most updates away).
        device: where the teacher lives; None keeps the student's device (pass "cpu" to offload).
    """

    def __init__(
        self,
        student_module: nn.Module,
        *,
        rate: float,
        update_every: int = 1,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        compute_dtype: torch.dtype | None = None,
        share_prefix: bool = True,
    ) -> None:
        config = TeacherConfig(rate=rate, update_every=update_every, share_prefix=share_prefix)
        if compute_dtype is not None and not compute_dtype.is_floating_point:
            raise ValueError(f"compute_dtype={compute_dtype} must be a floating-point dtype, e.g. torch.bfloat16")
        self.compute_dtype = compute_dtype
        """The teacher's forward runs under ``torch.autocast`` in this dtype (None: in ``dtype``); its
        weights and the EMA stay in ``dtype``."""
        if not dtype.is_floating_point:
            raise ValueError(f"dtype={dtype} must be a floating-point dtype, e.g. torch.float32")
        self.rate = float(config.rate)
        self.update_every = config.update_every
        self.dtype = dtype
        self.device = None if device is None else torch.device(device)
        self.calls = 0
        """Number of :meth:`update` calls so far."""
        self.updates = 0
        """Number of EMA updates actually applied so far."""
        self.module = _detached_copy(_unwrap(student_module), dtype, self.device)
        self._params = dict(self.module.named_parameters())
        model_config = getattr(self.module, "config", None)
        self.share_prefix = bool(share_prefix) and model_config is not None and supports_shared_prefix(model_config)
        """Whether :meth:`response_hidden` reuses a shared prefix's keys/values (``teacher.share_prefix``
        and a full-attention model)."""
        self._loads = 0
        self._prefix_key: tuple[Any, ...] | None = None
        self._prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = []

    @classmethod
    def from_config(cls, student_module: nn.Module, config: TeacherConfig, **kwargs: Any) -> EmaTeacher:
        """Build from a :class:`TeacherConfig`; ``kwargs`` go to the constructor (dtype, device)."""
        return cls(student_module, rate=config.rate, update_every=config.update_every,
                   share_prefix=config.share_prefix, **kwargs)

    @torch.no_grad()
    def update(self, student_module: nn.Module,
               full_param: Callable[[torch.Tensor], torch.Tensor | None] | None = None) -> None:
        """Count one call and, on every ``update_every``-th call, move the teacher towards the student.

        ``student_module`` must have the same parameter names and shapes as the module the teacher
        was built from. Under ZeRO-3 this gathers the student's parameters: call it on every rank.
        ``full_param`` maps a student parameter to the full value to average from, e.g. its fp32
        master copy in a mixed-precision optimizer (DeepSpeed's ``safe_get_full_fp32_param``, itself
        collective under ZeRO); None, or a None result, reads the parameter (gathered under ZeRO-3).
        """
        self.calls += 1
        if self.calls % self.update_every:
            return
        student = dict(_unwrap(student_module).named_parameters())
        if student.keys() != self._params.keys():
            missing = sorted(self._params.keys() - student.keys())[:5]
            extra = sorted(student.keys() - self._params.keys())[:5]
            raise ValueError(
                "the student's parameters do not match the teacher's: missing "
                f"{missing}, unexpected {extra}; update the teacher from the module it was copied from"
            )
        for name, param in student.items():
            shape = tuple(param.ds_shape) if is_partitioned(param) else tuple(param.shape)
            if shape != tuple(self._params[name].shape):
                raise ValueError(
                    f"parameter {name!r} has shape {shape} in the student but "
                    f"{tuple(self._params[name].shape)} in the teacher; nothing was updated"
                )
        if full_param is not None:
            masters = {name: full_param(param) for name, param in student.items()} if self.rate else {}
            if any(value is None for value in masters.values()):
                masters = {}  # no master copy for this student: read the parameters themselves
            for name, value in masters.items():
                self._average(self._params[name], value)
            if masters or not self.rate:
                self.updates += 1
                return
        for names in _buckets(student):
            with gathered([student[name] for name in names]):
                for name in names:
                    if self.rate:
                        self._average(self._params[name], student[name])
        self.updates += 1

    def _average(self, target: torch.Tensor, source: torch.Tensor) -> None:
        """target <- (1 - rate) * target + rate * source: two rounded products and one rounded sum."""
        source = source.detach().to(device=target.device, dtype=target.dtype)
        target.mul_(1.0 - self.rate).add_(source * self.rate)

    @torch.no_grad()
    def hidden_and_head(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states of the teacher and its output projection, without gradients.

        Args:
            input_ids: [B, T] token ids (the enriched teacher prompt followed by the response).
            attention_mask: [B, T] 1 for real tokens, 0 for padding (None: all ones).

        Returns:
            ``(hidden [B, T, H], lm_head_weight [V, H])``: ``hidden @ lm_head_weight.T`` are the
            teacher's logits. ``hidden`` is in ``compute_dtype`` when one is set (the forward runs
            under autocast), the head in ``dtype``. The module must be a Hugging Face style causal LM exposing
            ``base_model`` and ``get_output_embeddings()``.
        """
        base = getattr(self.module, "base_model", None)
        head = self.module.get_output_embeddings() if hasattr(self.module, "get_output_embeddings") else None
        if base is None or head is None or base is self.module:
            raise TypeError(
                f"{type(self.module).__name__} is not a causal LM with a separate base model and output "
                "embeddings; hidden_and_head needs a Hugging Face *ForCausalLM model"
            )
        device = next(self.module.parameters()).device
        input_ids = input_ids.to(device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(device)
        with torch.autocast(device_type=device.type, dtype=self.compute_dtype or self.dtype,
                            enabled=self.compute_dtype is not None and self.compute_dtype != self.dtype):
            outputs = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden = outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]
        return hidden, head.weight

    @torch.no_grad()
    def response_hidden(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor, *,
        shared_prefix: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's final hidden states at ``positions`` and its output projection, without gradients.

        Args:
            input_ids, attention_mask: [B, T] right-padded teacher sequences.
            positions: [B, R] the positions to read (those predicting the response tokens; padding
                entries may hold any position, their rows of the result are meaningless).
            shared_prefix: P > 0 when every row starts with the same P tokens and every position that
                matters is >= P (:func:`resd_learner.shared_prefix.shared_prefix_length`). The prefix's
                keys/values are then computed once and kept until the teacher's weights change (an
                EMA update or a load); only tokens P.. of each row are run. Ignored (the plain
                forward runs) when :attr:`share_prefix` is off.

        Returns:
            ``(hidden [B, R, H], lm_head_weight [V, H])``, dtypes as in :meth:`hidden_and_head`.
        """
        if shared_prefix <= 0 or not self.share_prefix:
            hidden, head = self.hidden_and_head(input_ids, attention_mask)
            return _gather(hidden, positions), head
        if shared_prefix >= input_ids.shape[1]:
            raise ValueError(f"shared_prefix={shared_prefix} leaves no token of the {input_ids.shape[1]}-token rows to run")
        base = self.module.base_model
        head = self.module.get_output_embeddings()
        device = next(self.module.parameters()).device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        prefix = input_ids[0, :shared_prefix]
        with torch.autocast(device_type=device.type, dtype=self.compute_dtype or self.dtype,
                            enabled=self.compute_dtype is not None and self.compute_dtype != self.dtype):
            cache = self._prefix_cache(base, prefix, batch=input_ids.shape[0])
            mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], shared_prefix),
                              attention_mask[:, shared_prefix:]], dim=1)
            outputs = base(input_ids=input_ids[:, shared_prefix:], attention_mask=mask, past_key_values=cache,
                           use_cache=True)
        hidden = outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]
        return _gather(hidden, (positions.to(device) - shared_prefix).clamp(min=0)), head.weight

    def _prefix_cache(self, base: nn.Module, prefix: torch.Tensor, batch: int) -> Any:
        """A fresh cache holding the prefix's keys/values for ``batch`` rows (computed on a miss)."""
        from transformers import DynamicCache

        key = (tuple(prefix.tolist()), self.updates, self._loads)
        if key != self._prefix_key:
            self._prefix_kv, self._prefix_key = [], None  # free the old prefix before computing the new one
            past = base(input_ids=prefix[None], use_cache=True).past_key_values
            self._prefix_kv = [(layer.keys, layer.values) for layer in past.layers]
            self._prefix_key = key
        kv = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in self._prefix_kv]
        return DynamicCache(ddp_cache_data=kv, config=self.module.config)

    def state_dict(self) -> dict[str, Any]:
        """Teacher weights plus the counters needed to resume the update cadence exactly."""
        return {
            "module": self.module.state_dict(),
            "calls": self.calls,
            "updates": self.updates,
            "rate": self.rate,
            "update_every": self.update_every,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; rate and cadence stay those of this instance."""
        missing = {"module", "calls", "updates"} - set(state)
        if missing:
            raise ValueError(
                f"teacher state lacks {sorted(missing)}; pass what EmaTeacher.state_dict() returned"
            )
        self.module.load_state_dict(state["module"])
        self._loads += 1  # the cached prefix belongs to the old weights
        self.calls = int(state["calls"])
        self.updates = int(state["updates"])


def _gather(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``states[b, positions[b, j]]`` for [B, T, H] states and [B, R] positions -> [B, R, H]."""
    index = positions.to(states.device)[..., None].expand(-1, -1, states.shape[-1])
    return states.gather(1, index)


def _unwrap(module: nn.Module) -> nn.Module:
    """Strip DeepSpeed engines and (Distributed)DataParallel wrappers, which keep the model in ``.module``."""
    while isinstance(getattr(module, "module", None), nn.Module) and (
        isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel))
        or type(module).__name__.endswith("Engine")
    ):
        module = module.module
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"expected a torch nn.Module (or an engine wrapping one), got {type(module).__name__}"
        )
    return module


def _buckets(named: dict[str, torch.Tensor]) -> Iterator[list[str]]:
    """Parameter names in order, grouped so that each group holds at most GATHER_BUCKET_NUMEL elements."""
    bucket: list[str] = []
    size = 0
    for name, param in named.items():
        numel = param.ds_numel if is_partitioned(param) else param.numel()
        if bucket and size + numel > GATHER_BUCKET_NUMEL:
            yield bucket
            bucket, size = [], 0
        bucket.append(name)
        size += numel
    if bucket:
        yield bucket


def _detached_copy(student: nn.Module, dtype: torch.dtype, device: torch.device | None) -> nn.Module:
    """Deep copy of ``student`` with fresh, full ``dtype`` parameters and no hooks or DeepSpeed state.

    ``copy.deepcopy`` is given a memo that maps every parameter to its gathered clone, every
    parameter dictionary (DeepSpeed replaces them with gathering dictionaries) to a plain one and every
    hook dictionary to an empty one, so nothing of the training engine leaks into the teacher.
    """
    clones: dict[int, nn.Parameter] = {}
    named = dict(student.named_parameters())
    with torch.no_grad():
        for names in _buckets(named):
            with gathered([named[name] for name in names]):
                for name in names:
                    param = named[name]
                    value = param.detach().to(device=device or param.device, dtype=dtype, copy=True)
                    clones[id(param)] = nn.Parameter(value, requires_grad=False)
    memo: dict[int, Any] = dict(clones)
    for module in student.modules():
        for attr in ("_parameters", "_original_parameters"):
            params = module.__dict__.get(attr)
            if isinstance(params, dict):
                memo[id(params)] = OrderedDict(
                    (key, None if p is None else clones[id(p)]) for key, p in params.items()
                )
        for attr in _HOOK_DICTS:
            hooks = module.__dict__.get(attr)
            if hooks is not None:
                memo[id(hooks)] = type(hooks)() if isinstance(hooks, dict) else copy.copy(hooks)
    teacher = copy.deepcopy(student, memo)
    for module in teacher.modules():
        engine_attrs = [name for name in module.__dict__
                        if name.startswith("ds_") or name in _DEEPSPEED_MODULE_ATTRS]
        for attr in engine_attrs:
            delattr(module, attr)
    teacher.to(dtype=dtype)
    if device is not None:
        teacher.to(device=device)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher
