"""A plain-PyTorch stand-in for the DeepSpeed engine: one process, no ZeRO, AdamW, autocast for bf16.

For machines without DeepSpeed (``distributed.engine: torch``, or ``auto`` when DeepSpeed is not
installed). It offers the part of DeepSpeed's engine API the trainer and the checkpoints use, with
the same semantics: the loss passed to :meth:`TorchEngine.backward` is divided by the number of
accumulation steps; :meth:`TorchEngine.step` clips the global gradient norm, steps the optimizer and
the LR schedule and zeroes the gradients at the end of each accumulation window. The parameters stay
fp32 (they are the master weights); with ``bf16`` every forward runs under ``torch.autocast`` in
bfloat16 on the module's device. One rank only: several ranks need DeepSpeed (ZeRO) or DDP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class TorchEngine:
    """DeepSpeed-engine-like wrapper of ``module`` (moved to ``device``) with ``optimizer`` and ``scheduler``."""

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, *, device: torch.device,
                 micro_batch_size: int, grad_accum: int, grad_clip: float, bf16: bool) -> None:
        self.module = module.to(device=device, dtype=torch.float32)
        self.optimizer = optimizer
        self.lr_scheduler = scheduler
        self.device = device
        self.micro_batch_size = micro_batch_size
        self.gradient_accumulation_steps = grad_accum
        self.grad_clip = grad_clip
        self.bf16 = bf16
        self.micro_steps = 0
        self.global_steps = 0
        self._grad_norm = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.bf16:
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                return self.module(*args, **kwargs)
        return self.module(*args, **kwargs)

    def train(self, mode: bool = True) -> TorchEngine:
        self.module.train(mode)
        return self

    def eval(self) -> TorchEngine:
        return self.train(False)

    def is_gradient_accumulation_boundary(self) -> bool:
        return (self.micro_steps + 1) % self.gradient_accumulation_steps == 0

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.gradient_accumulation_steps).backward()

    def step(self) -> None:
        if self.is_gradient_accumulation_boundary():
            params = [p for p in self.module.parameters() if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip if self.grad_clip > 0 else float("inf"))
            self._grad_norm = float(norm)
            self.optimizer.step()
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.global_steps += 1
        self.micro_steps += 1

    def get_global_grad_norm(self) -> float:
        """The gradient norm (before clipping) of the last optimizer step."""
        return self._grad_norm

    def set_train_batch_size(self, train_batch_size: int) -> None:
        if train_batch_size % self.micro_batch_size:
            raise ValueError(f"train batch size {train_batch_size} is not a multiple of the micro-batch size "
                             f"{self.micro_batch_size}")
        self.gradient_accumulation_steps = train_batch_size // self.micro_batch_size

    def save_checkpoint(self, save_dir: str, tag: str) -> None:
        path = Path(save_dir) / tag
        path.mkdir(parents=True, exist_ok=True)
        torch.save({"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None,
                    "global_steps": self.global_steps, "micro_steps": self.micro_steps}, path / "engine.pt")

    def load_checkpoint(self, load_dir: str, tag: str, load_optimizer_states: bool = True,
                        load_lr_scheduler_states: bool = True) -> tuple[str | None, dict[str, Any]]:
        path = Path(load_dir) / tag / "engine.pt"
        if not path.is_file():
            return None, {}
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.module.load_state_dict(state["module"])
        if load_optimizer_states:
            self.optimizer.load_state_dict(state["optimizer"])
        if load_lr_scheduler_states and self.lr_scheduler is not None and state["lr_scheduler"] is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.global_steps, self.micro_steps = int(state["global_steps"]), int(state["micro_steps"])
        return str(path.parent), {}

    def destroy(self) -> None:
        """Nothing to release (DeepSpeed's engine needs this call; kept for the same interface)."""
