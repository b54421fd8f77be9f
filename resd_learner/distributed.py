"""DeepSpeed engine construction and rank helpers.

Single process without a launcher: the world-size-1 rendezvous variables are set here (DeepSpeed
would otherwise try MPI discovery), and DeepSpeed's shared-memory allreduce op, which it JIT-compiles
on first use but which a gloo group of one rank never needs, is patched out. Under ``deepspeed`` or
``torchrun`` the launcher's variables are used as they are. The optimizer is a client
``torch.optim.AdamW`` so no DeepSpeed op is compiled.

Collectives: the default process group (nccl with CUDA, else gloo) carries the training traffic;
small Python objects and CPU statistics travel over a second, gloo group (:func:`cpu_group`), so
they work the same under nccl. Both groups use ``distributed.timeout_minutes`` (default 120 min:
a rank may wait while the others finish a long generation shard).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

import torch
import torch.distributed as dist

_LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT_MINUTES = 120.0
"""Collective timeout when none is given (DeepSpeed's own default, 10 min, is shorter than one
reflection round of a long Manufactoria batch)."""

T = TypeVar("T")
_CPU_GROUP: Any = None


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_environment(master_port: int | None = None) -> None:
    """Set the single-process rendezvous defaults and the CPU-friendly DeepSpeed patches (idempotent).

    Without a launcher, ``MASTER_PORT`` is ``master_port`` or, when None, a free port (several runs
    can share a machine).
    """
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    if "MASTER_PORT" not in os.environ:
        defaults["MASTER_PORT"] = str(master_port if master_port is not None else free_port())
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if not has_deepspeed():
        return
    import deepspeed  # noqa: F401  (imports its comm module, which we patch next)

    comm_torch = importlib.import_module("deepspeed.comm.torch")  # `import a.b as m` would give torch
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 or not has_cuda():
        comm_torch.build_shm_op = lambda: None


def init_distributed(backend: str = "auto", master_port: int | None = None,
                     timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> None:
    """Create the default process group once (gloo on CPU, nccl with CUDA unless told otherwise),
    plus the gloo group for objects (:func:`cpu_group`); every collective times out after
    ``timeout_minutes``."""
    global _CPU_GROUP
    if timeout_minutes <= 0:
        raise ValueError(f"distributed.timeout_minutes={timeout_minutes!r} must be positive")
    prepare_environment(master_port)
    timeout = timedelta(minutes=timeout_minutes)
    if not (dist.is_available() and dist.is_initialized()):
        chosen = backend if backend != "auto" else ("nccl" if has_cuda() else "gloo")
        if has_cuda():
            torch.cuda.set_device(local_rank())
        if has_deepspeed():
            import deepspeed

            deepspeed.init_distributed(dist_backend=chosen, auto_mpi_discovery=False, timeout=timeout)
        else:
            dist.init_process_group(backend=chosen, timeout=timeout)
    if _CPU_GROUP is None:
        multi = dist.get_world_size() > 1
        _CPU_GROUP = dist.new_group(backend="gloo", timeout=timeout) \
            if multi and dist.get_backend() != "gloo" else dist.group.WORLD


def shutdown() -> None:
    """Leave the process groups at the end of a run: a barrier, then the gloo object group and the
    default group are destroyed (collective: every rank calls it; a no-op without a process group).

    Exiting with live groups leaves their C++ worker threads to be torn down at interpreter exit,
    where a rank can abort ("terminate called without an active exception") after its work is done
    and fail the whole launcher job. :func:`init_distributed` can build the groups again afterwards.
    """
    global _CPU_GROUP
    if not (dist.is_available() and dist.is_initialized()):
        _CPU_GROUP = None
        return
    barrier()
    if _CPU_GROUP is not None and _CPU_GROUP is not dist.group.WORLD:
        dist.destroy_process_group(_CPU_GROUP)
    _CPU_GROUP = None
    dist.destroy_process_group()


def cpu_group() -> Any:
    """The gloo group for object collectives and CPU tensors (the default group when that is gloo)."""
    return _CPU_GROUP if _CPU_GROUP is not None else dist.group.WORLD


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` with one process)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=cpu_group())
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` of rank ``src`` on every rank (identity with one process)."""
    if world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src, group=cpu_group())
    return holder[0]


def all_reduce_cpu(values: Sequence[float], op: str = "sum") -> list[float]:
    """Element-wise sum or max of a list of floats over ranks (float64, over the gloo group)."""
    if world_size() == 1:
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op], group=cpu_group())
    return tensor.tolist()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier(group=cpu_group())


def device() -> Any:
    return torch.device("cuda", local_rank()) if has_cuda() else torch.device("cpu")


def deepspeed_config(*, zero_stage: int, micro_batch_size: int, grad_accum: int, grad_clip: float,
                     bf16: bool) -> dict[str, Any]:
    """The DeepSpeed JSON config for one optimizer step per ``grad_accum`` micro-batches on each rank."""
    return {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch_size * grad_accum * world_size(),
        "gradient_clipping": grad_clip,
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def has_deepspeed() -> bool:
    """Whether DeepSpeed is importable."""
    return importlib.util.find_spec("deepspeed") is not None


def resolve_engine(kind: str, zero_stage: int) -> str:
    """``distributed.engine`` made concrete: "deepspeed" or "torch" (auto = DeepSpeed when installed).

    Raises:
        ValueError: the torch engine asked for with ZeRO > 0 or several ranks, or DeepSpeed missing.
    """
    if kind not in ("auto", "deepspeed", "torch"):
        raise ValueError(f"distributed.engine={kind!r}: use auto, deepspeed or torch")
    chosen = kind if kind != "auto" else ("deepspeed" if has_deepspeed() else "torch")
    if chosen == "deepspeed" and not has_deepspeed():
        raise ValueError("distributed.engine=deepspeed but DeepSpeed is not installed: pip install deepspeed "
                         "(or a local wheel), or use distributed.engine=torch with zero_stage=0 on one rank")
    if chosen == "torch" and (zero_stage != 0 or world_size() > 1):
        raise ValueError(f"the plain-torch engine runs one rank without ZeRO (got zero_stage={zero_stage}, "
                         f"{world_size()} ranks): install DeepSpeed for ZeRO or several ranks")
    return chosen


def build_engine(model: Any, optim: Any, *, zero_stage: int, micro_batch_size: int, grad_accum: int,
                 bf16: bool = False, config: dict[str, Any] | None = None,
                 engine: str = "auto") -> tuple[Any, Any, Any]:
    """Wrap ``model`` in a DeepSpeed engine (or the plain-torch one) with AdamW and a
    linear-warmup-then-constant schedule.

    Args:
        optim: an :class:`~resd_learner.config.OptimConfig`.
        config: the DeepSpeed config (the one a ZeRO-3 model was loaded under); built from the other
            arguments when None.
        engine: ``distributed.engine`` (auto, deepspeed or torch), see :func:`resolve_engine`.
    Returns:
        (engine, optimizer, lr_scheduler).
    """
    chosen = resolve_engine(engine, zero_stage)
    if chosen == "torch":
        model.to(device())
    optimizer = torch.optim.AdamW(parameter_groups(model, optim.weight_decay, optim.decay_norms_and_biases),
                                  lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(warmup_factor, warmup=int(optim.warmup_steps), from_zero=optim.warmup_from_zero))
    if chosen == "torch":
        from resd_learner.torch_engine import TorchEngine

        wrapped = TorchEngine(model, optimizer, scheduler, device=device(), micro_batch_size=micro_batch_size,
                              grad_accum=grad_accum, grad_clip=optim.grad_clip, bf16=bf16)
        return wrapped, optimizer, scheduler
    import deepspeed
    if config is None:
        config = deepspeed_config(zero_stage=zero_stage, micro_batch_size=micro_batch_size, grad_accum=grad_accum,
                                  grad_clip=optim.grad_clip, bf16=bf16)
    engine, optimizer, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer,
                                                           lr_scheduler=scheduler, config=config)
    return engine, optimizer, scheduler


def parameter_groups(model: torch.nn.Module, weight_decay: float, decay_all: bool) -> list[dict[str, Any]]:
    """AdamW parameter groups: one group with ``weight_decay`` for every trainable parameter
    (``decay_all``, the official behaviour), or norms/biases (ndim < 2 or 'norm' in the name) in a
    second group without decay."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if decay_all:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    exempt = [p for name, p in params if p.ndim < 2 or "norm" in name.lower()]
    exempt_ids = {id(p) for p in exempt}
    return [{"params": [p for _, p in params if id(p) not in exempt_ids], "weight_decay": weight_decay},
            {"params": exempt, "weight_decay": 0.0}]


def master_param_reader(engine: Any) -> Any:
    """A function parameter -> its full fp32 master value when ``engine`` is DeepSpeed with bf16 (the
    module holds bf16 copies; the fp32 masters live in the optimizer), else None (the parameters are
    the master weights). The function is DeepSpeed's ``safe_get_full_fp32_param``: collective under
    ZeRO, so every rank must call it for the same parameters in the same order."""
    enabled = getattr(engine, "bfloat16_enabled", None)
    if not callable(enabled) or not enabled():
        return None
    from deepspeed.utils import safe_get_full_fp32_param

    return safe_get_full_fp32_param


def warmup_factor(step: int, *, warmup: int, from_zero: bool = True) -> float:
    """The LR multiplier of optimizer step ``step`` (0-based): linear warmup over ``warmup`` steps, then 1.

    ``from_zero``: ``step / warmup`` (step 0 has lr 0, as verl's schedule); else ``(step + 1) / (warmup + 1)``.
    """
    if warmup <= 0:
        return 1.0
    if from_zero:
        return min(1.0, step / warmup)
    return min(1.0, (step + 1) / (warmup + 1))


def full_state_dict(engine: Any, *, bucket_numel: int | None = None) -> dict[str, Any] | None:
    """The student's full weights on CPU under their HF names, on the main rank only (None elsewhere).

    Collective under ZeRO-3 (every rank gathers the partitions bucket by bucket, only the main rank
    copies them); under ZeRO 0-2 the other ranks do nothing. Used for the ``model/`` directory of a
    checkpoint. Tied weights appear under each of their names, as ``state_dict`` has them.
    """
    from resd_learner.weight_sync import DEFAULT_BUCKET_NUMEL, iter_full_parameters

    module = engine.module
    keep = is_main()
    params = {name: tensor.detach().cpu().clone()
              for name, tensor in iter_full_parameters(module, bucket_numel or DEFAULT_BUCKET_NUMEL, keep=keep)}
    if not keep:
        return None
    state = {}
    for name, value in module.state_dict(keep_vars=True).items():
        state[name] = params[name] if name in params else _tied_or_buffer(module, name, value, params)
    return state


def _tied_or_buffer(module: torch.nn.Module, name: str, value: Any, params: dict[str, Any]) -> Any:
    """A state-dict entry that is not a (deduplicated) named parameter: a tied alias or a buffer."""
    if isinstance(value, torch.nn.Parameter):
        by_id = {id(p): n for n, p in module.named_parameters()}
        if id(value) in by_id:
            return params[by_id[id(value)]]
    return value.detach().cpu().clone()


def has_cuda() -> bool:
    """Whether a CUDA device is usable (the one check the learner makes)."""
    return torch.cuda.is_available()
