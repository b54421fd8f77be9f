"""resd_learner.distributed: weight-decay groups, the warmup schedule, and leaving the process groups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resd_learner.config import OptimConfig
from resd_learner.distributed import parameter_groups, warmup_factor


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)


def test_weight_decay_applies_to_every_parameter_by_default():
    model = Block()
    assert OptimConfig().decay_norms_and_biases is True
    groups = parameter_groups(model, 0.01, decay_all=True)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.01
    assert len(groups[0]["params"]) == len(list(model.parameters())) == 4


def test_weight_decay_switch_exempts_norms_and_biases():
    model = Block()
    decay, exempt = parameter_groups(model, 0.01, decay_all=False)
    assert [p.shape for p in decay["params"]] == [model.proj.weight.shape] and decay["weight_decay"] == 0.01
    assert {id(p) for p in exempt["params"]} == {id(model.proj.bias), id(model.norm.weight), id(model.norm.bias)}
    assert exempt["weight_decay"] == 0.0


def test_warmup_starts_at_zero_like_verl():
    assert OptimConfig().warmup_from_zero is True
    assert [warmup_factor(s, warmup=4) for s in range(6)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    assert [warmup_factor(s, warmup=4, from_zero=False) for s in range(5)] == pytest.approx(
        [0.2, 0.4, 0.6, 0.8, 1.0])
    assert warmup_factor(0, warmup=0) == 1.0


def test_scheduler_gives_lr_zero_on_the_first_step():
    model = Block()
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.0, True), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_factor(s, warmup=2))
    seen = []
    for _ in range(3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.0, 0.5, 1.0])


SHUTDOWN_SCRIPT = """
import torch.distributed as dist
from resd_learner import distributed
distributed.shutdown()                      # nothing to leave yet: a no-op
distributed.init_distributed("gloo")
assert dist.is_initialized() and distributed.all_gather_objects("x") == ["x"]
distributed.shutdown()
assert not dist.is_initialized() and distributed.world_size() == 1
distributed.shutdown()                      # twice is fine
distributed.init_distributed("gloo")       # and the groups can be built again
assert dist.is_initialized() and distributed.broadcast_object(7) == 7
distributed.shutdown()
print("left cleanly")
"""


def test_shutdown_leaves_the_groups_and_they_can_be_rebuilt():
    # its own interpreter: destroying the default group here would pull it from under other tests
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-c", SHUTDOWN_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("left cleanly")
