"""The EMA self-teacher under DeepSpeed ZeRO-3: partitioned exactly like the student.

Each rank holds only its 1/N partition (``param.ds_tensor``) of every teacher parameter, in fp32. The
partitions use DeepSpeed's own layout (every parameter flattened, padded to a multiple of the world
size, rank r holding elements [r*P, (r+1)*P)), which is the layout of the student's partitions and
of the ZeRO-3 optimizer's fp32 master partitions. The EMA is therefore a local, per-shard operation
with no communication::

    teacher.ds_tensor <- (1 - rate) * teacher.ds_tensor + rate * student_fp32_master_partition

(``deepspeed.utils.safe_get_local_fp32_param``; the student's own ``ds_tensor`` where the optimizer has
no master copy). The forward runs through a DeepSpeed ZeRO-3 engine without an optimizer, which gathers
the parameters module by module and releases them again, under ``torch.autocast`` in ``compute_dtype``.

This module owns only the partitioned teacher; the unpartitioned one (ZeRO 0-2, single process) is
:class:`resd_learner.teacher.EmaTeacher`, whose interface this class follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resd_learner.teacher import TeacherConfig, _gather, _unwrap

TEACHER_ZERO3_CONFIG: dict[str, Any] = {
    "train_micro_batch_size_per_gpu": 1,
    "steps_per_print": 10**9,
    "zero_optimization": {
        "stage": 3,
        # nothing stays gathered after a forward: the EMA writes the partitions, so a gathered copy
        # kept for reuse would go stale
        "stage3_param_persistence_threshold": 0,
        "stage3_model_persistence_threshold": 0,
        "stage3_max_reuse_distance": 0,
    },
}
"""DeepSpeed config of the teacher's inference engine (no optimizer, fp32 weights)."""


class _Trunk(nn.Module):
    """The causal LM without its output head: forward returns the final hidden states."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        outputs = self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]


def is_zero3_partitioned(module: nn.Module) -> bool:
    """Whether every parameter of ``module`` (or of the model an engine wraps) is a ZeRO-3 partition."""
    params = list(_unwrap(module).parameters())
    return bool(params) and all(hasattr(p, "ds_tensor") for p in params)


def local_fp32_master(param: torch.Tensor) -> torch.Tensor | None:
    """This rank's fp32 master partition of a ZeRO-3 student parameter (None without a ZeRO-3 optimizer)."""
    if getattr(param, "_z3_optimizer", None) is None:
        return None
    from deepspeed.utils import safe_get_local_fp32_param

    return safe_get_local_fp32_param(param)


class PartitionedEmaTeacher:
    """An fp32 EMA copy of a ZeRO-3 partitioned Hugging Face causal LM, itself ZeRO-3 partitioned.

    Collective: build it, :meth:`hidden_and_head`, :meth:`gathered_state` and checkpoints on every rank
    together (:meth:`update` is local but also belongs on every rank).

    Args:
        student_module: the partitioned student (built under ``deepspeed.zero.Init``) or its engine;
            it must be a ``transformers`` model (``type(student)(student.config)`` builds the copy).
        rate: EMA rate tau in [0, 1].
        update_every: apply the EMA on every N-th :meth:`update` call.
        compute_dtype: the forward runs under ``torch.autocast`` in this dtype (None: in fp32).
    """

    def __init__(self, student_module: nn.Module, *, rate: float, update_every: int = 1,
                 compute_dtype: torch.dtype | None = None) -> None:
        import deepspeed

        config = TeacherConfig(rate=rate, update_every=update_every)
        if compute_dtype is not None and not compute_dtype.is_floating_point:
            raise ValueError(f"compute_dtype={compute_dtype} must be a floating-point dtype, e.g. torch.bfloat16")
        student = _unwrap(student_module)
        if not is_zero3_partitioned(student):
            raise ValueError(f"{type(student).__name__} is not ZeRO-3 partitioned (its parameters have no "
                             "ds_tensor); build it under deepspeed.zero.Init or use EmaTeacher")
        if not hasattr(student, "config") or not hasattr(student, "base_model"):
            raise TypeError(f"{type(student).__name__} is not a Hugging Face causal LM (no config/base_model); "
                            "the partitioned teacher rebuilds the student's class from its config")
        self.rate = float(config.rate)
        self.update_every = config.update_every
        self.dtype = torch.float32
        self.compute_dtype = compute_dtype
        self.calls = 0
        self.updates = 0
        with torch.random.fork_rng(devices=[]), deepspeed.zero.Init(
                config_dict_or_path=TEACHER_ZERO3_CONFIG):  # no bf16/fp16 in it: fp32 partitions
            with _no_init_weights():  # the partitions are overwritten from the student's next
                lm = type(student)(student.config)
            if hasattr(lm, "tie_weights"):
                lm.tie_weights()
        self.device = next(iter(lm.parameters())).ds_tensor.device
        """Where this rank's partitions live (DeepSpeed's accelerator device, as for the student)."""
        if {p.ds_tensor.dtype for p in lm.parameters()} != {self.dtype}:
            raise RuntimeError("deepspeed.zero.Init did not build the teacher in fp32; check TEACHER_ZERO3_CONFIG")
        self._copy_partitions(student, lm)
        lm.eval()
        lm.requires_grad_(False)
        self.module = lm
        self.engine, *_ = deepspeed.initialize(model=_Trunk(lm), config=TEACHER_ZERO3_CONFIG)
        self.engine.eval()
        self._params = dict(lm.named_parameters())

    @classmethod
    def from_config(cls, student_module: nn.Module, config: TeacherConfig, **kwargs: Any) -> PartitionedEmaTeacher:
        return cls(student_module, rate=config.rate, update_every=config.update_every, **kwargs)

    # -- weights ----------------------------------------------------------------------------------
    def _copy_partitions(self, student: nn.Module, lm: nn.Module) -> None:
        """Initialise each teacher partition from the student's partition (cast to fp32), and its buffers."""
        source = dict(student.named_parameters())
        target = dict(lm.named_parameters())
        if source.keys() != target.keys():
            raise ValueError(f"rebuilding {type(student).__name__} from its config gave other parameters: "
                             f"{sorted(source.keys() ^ target.keys())[:5]}")
        with torch.no_grad():
            for name, param in target.items():
                _check_same_partition(name, param, source[name])
                param.ds_tensor.copy_(source[name].ds_tensor.detach().reshape(-1).to(self.device, self.dtype))
            # persistent buffers (part of the state dict) are copied; non-persistent ones (rotary tables)
            # were computed from the config when the teacher was built, in fp32
            persistent = set(lm.state_dict().keys())
            buffers = dict(lm.named_buffers())
            for name, buf in student.named_buffers():
                if name in buffers and name in persistent:
                    buffers[name].copy_(buf.to(buffers[name].dtype))

    def local_numel(self) -> int:
        """Elements of the teacher held by this rank (its partitions, padding included)."""
        return sum(p.ds_tensor.numel() for p in self._params.values())

    def full_numel(self) -> int:
        """Elements of the whole (unpartitioned) teacher."""
        return sum(p.ds_numel for p in self._params.values())

    @torch.no_grad()
    def update(self, student_module: nn.Module,
               local_param: Callable[[torch.Tensor], torch.Tensor | None] = local_fp32_master) -> None:
        """Count one call and, on every ``update_every``-th call, move each local partition towards the student's.

        ``local_param`` maps a student parameter to this rank's partition of the value to average from
        (default: the optimizer's fp32 master partition; a None result reads ``param.ds_tensor``).
        No communication.
        """
        self.calls += 1
        if self.calls % self.update_every:
            return
        student = dict(_unwrap(student_module).named_parameters())
        if student.keys() != self._params.keys():
            raise ValueError("the student's parameters do not match the teacher's: "
                             f"{sorted(student.keys() ^ self._params.keys())[:5]}; update the teacher from the "
                             "module it was copied from")
        for name, param in student.items():
            _check_same_partition(name, self._params[name], param)
        if self.rate:
            self._release_gathered()
            for name, param in student.items():
                value = local_param(param)
                value = param.ds_tensor if value is None else value
                target = self._params[name].ds_tensor
                source = value.detach().reshape(-1).to(device=target.device, dtype=target.dtype)
                target.mul_(1.0 - self.rate).add_(source * self.rate)
        self.updates += 1

    def _release_gathered(self) -> None:
        """Drop any gathered full copy, so the next forward gathers the updated partitions."""
        from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

        available = [p for p in self._params.values() if p.ds_status != ZeroParamStatus.NOT_AVAILABLE]
        if available:
            available[0].partition(param_list=available, has_been_updated=False)

    def gathered_state(self) -> dict[str, torch.Tensor]:
        """The full teacher weights as fp32 CPU tensors (collective; gathers one parameter at a time)."""
        import deepspeed

        out = {}
        for name, param in self._params.items():
            with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
                out[name] = param.detach().to("cpu", copy=True)
        return out

    # -- scoring ----------------------------------------------------------------------------------
    @torch.no_grad()
    def hidden_and_head(self, input_ids: torch.Tensor,
                        attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states [B, T, H] and a gathered copy of the output projection [V, H] (collective).

        The forward gathers the parameters module by module (DeepSpeed ZeRO-3) under autocast in
        ``compute_dtype``; the head is a transient fp32 copy of V x H elements on this rank's device.
        """
        import deepspeed

        device = self.device
        input_ids = input_ids.to(device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(device)
        with torch.autocast(device_type=device.type, dtype=self.compute_dtype or self.dtype,
                            enabled=self.compute_dtype is not None and self.compute_dtype != self.dtype):
            hidden = self.engine(input_ids, attention_mask)
        head = self.module.get_output_embeddings().weight
        with deepspeed.zero.GatheredParameters([head], modifier_rank=None):
            head = head.detach().clone()
        return hidden, head

    @torch.no_grad()
    def response_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor, *,
                        shared_prefix: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states [B, R, H] at ``positions`` and the gathered head (collective).

        ``shared_prefix`` is accepted for the trainer's sake and ignored: under ZeRO-3 every forward
        gathers the layers anyway, and the partitioned teacher runs every sequence whole.
        """
        del shared_prefix
        hidden, head = self.hidden_and_head(input_ids, attention_mask)
        return _gather(hidden, positions), head

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """This rank's partitions plus the counters (every rank saves its own; resume needs the same world size)."""
        import torch.distributed as dist

        return {
            "partitions": {name: p.ds_tensor.detach().to("cpu", copy=True) for name, p in self._params.items()},
            "world_size": dist.get_world_size(), "rank": dist.get_rank(),
            "calls": self.calls, "updates": self.updates, "rate": self.rate, "update_every": self.update_every,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore this rank's partitions from what :meth:`state_dict` returned on the same rank."""
        import torch.distributed as dist

        missing = {"partitions", "world_size", "rank", "calls", "updates"} - set(state)
        if missing:
            raise ValueError(f"partitioned teacher state lacks {sorted(missing)}; pass what "
                             "PartitionedEmaTeacher.state_dict() returned (an unpartitioned teacher's state "
                             "cannot be loaded into a ZeRO-3 teacher)")
        world, rank = dist.get_world_size(), dist.get_rank()
        if (state["world_size"], state["rank"]) != (world, rank):
            raise ValueError(f"teacher partitions saved by rank {state['rank']} of {state['world_size']} cannot "
                             f"be loaded on rank {rank} of {world}; resume with the same number of ranks")
        parts = state["partitions"]
        if parts.keys() != self._params.keys():
            raise ValueError(f"teacher state has other parameters: {sorted(parts.keys() ^ self._params.keys())[:5]}")
        self._release_gathered()
        with torch.no_grad():
            for name, param in self._params.items():
                if parts[name].shape != param.ds_tensor.shape:
                    raise ValueError(f"teacher partition {name!r} has shape {tuple(parts[name].shape)} in the "
                                     f"checkpoint but {tuple(param.ds_tensor.shape)} here")
                param.ds_tensor.copy_(parts[name])
        self.calls = int(state["calls"])
        self.updates = int(state["updates"])


def _no_init_weights() -> Any:
    """transformers' context that skips the random initialisation of a model being built."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()


def _check_same_partition(name: str, teacher: torch.Tensor, student: torch.Tensor) -> None:
    if not hasattr(student, "ds_tensor"):
        raise ValueError(f"student parameter {name!r} is not ZeRO-3 partitioned; the partitioned teacher needs "
                         "a student built under deepspeed.zero.Init")
    if tuple(teacher.ds_shape) != tuple(student.ds_shape) or teacher.ds_tensor.numel() != student.ds_tensor.numel():
        raise ValueError(f"parameter {name!r}: the teacher's partition ({tuple(teacher.ds_shape)}, "
                         f"{teacher.ds_tensor.numel()} local elements) does not match the student's "
                         f"({tuple(student.ds_shape)}, {student.ds_tensor.numel()}); nothing was updated")
