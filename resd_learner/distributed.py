"""DeepSpeed engine construction and rank helpers.

Single process without a launcher: the world-size-1 rendezvous variables are set here (DeepSpeed
would otherwise try MPI discovery), and DeepSpeed's shared-memory allreduce op, which it JIT-compiles
on first use but which a gloo group of one rank never needs, is patched out. Under ``deepspeed`` or
``torchrun`` the launcher's variables are used as they are. The optimizer is a client
``torch.optim.AdamW`` so no DeepSpeed op is compiled.
"""

from __future__ import annotations

import importlib
import os
import socket
from functools import partial
from typing import Any

import torch
import torch.distributed as dist

_LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


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
    import deepspeed  # noqa: F401  (imports its comm module, which we patch next)

    comm_torch = importlib.import_module("deepspeed.comm.torch")  # `import a.b as m` would give torch
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 or not has_cuda():
        comm_torch.build_shm_op = lambda: None


def init_distributed(backend: str = "auto", master_port: int | None = None) -> None:
    """Create the default process group once (gloo on CPU, nccl with CUDA unless told otherwise)."""
    prepare_environment(master_port)
    import deepspeed

    if dist.is_available() and dist.is_initialized():
        return
    chosen = backend if backend != "auto" else ("nccl" if has_cuda() else "gloo")
    if has_cuda():
        torch.cuda.set_device(local_rank())
    deepspeed.init_distributed(dist_backend=chosen, auto_mpi_discovery=False)


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
        dist.barrier()


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


def build_engine(model: Any, optim: Any, *, zero_stage: int, micro_batch_size: int, grad_accum: int,
                 bf16: bool = False) -> tuple[Any, Any, Any]:
    """Wrap ``model`` in a DeepSpeed engine with AdamW and a linear-warmup-then-constant schedule.

    Args:
        optim: an :class:`~resd_learner.config.OptimConfig`.
    Returns:
        (engine, optimizer, lr_scheduler).
    """
    import deepspeed
    optimizer = torch.optim.AdamW(parameter_groups(model, optim.weight_decay, optim.decay_norms_and_biases),
                                  lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(warmup_factor, warmup=int(optim.warmup_steps), from_zero=optim.warmup_from_zero))
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


def warmup_factor(step: int, *, warmup: int, from_zero: bool = True) -> float:
    """The LR multiplier of optimizer step ``step`` (0-based): linear warmup over ``warmup`` steps, then 1.

    ``from_zero``: ``step / warmup`` (step 0 has lr 0, as verl's schedule); else ``(step + 1) / (warmup + 1)``.
    """
    if warmup <= 0:
        return 1.0
    if from_zero:
        return min(1.0, step / warmup)
    return min(1.0, (step + 1) / (warmup + 1))


def full_state_dict(engine: Any) -> dict[str, Any]:
    """The student's full (unpartitioned) weights on CPU, under their HF names (every rank gets them)."""
    import deepspeed

    module = engine.module
    params = list(module.parameters())
    partitioned = any(hasattr(p, "ds_id") for p in params)
    if partitioned:
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def has_cuda() -> bool:
    """Whether a CUDA device is usable (the one check the learner makes)."""
    return torch.cuda.is_available()
