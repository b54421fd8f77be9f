"""The bucketed weight push: bucketing, the stream's content, and its peak memory being O(bucket)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resd_learner.weight_sync import iter_full_parameters, parameter_buckets, push_weights

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.mid = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight


def test_buckets_respect_the_size_and_keep_order():
    named = [(f"p{i}", torch.zeros(n)) for i, n in enumerate([3, 3, 5, 1, 9, 2])]
    buckets = list(parameter_buckets(named, 6))
    assert [[name for name, _ in b] for b in buckets] == [["p0", "p1"], ["p2", "p3"], ["p4"], ["p5"]]
    with pytest.raises(ValueError, match="bucket_numel"):
        list(parameter_buckets(named, 0))


def test_stream_holds_every_parameter_under_every_name_without_copies():
    model = Tied()
    streamed = list(iter_full_parameters(model, bucket_numel=16))
    # the tied head follows the embedding it shares, so an engine that keeps them apart gets both
    assert [name for name, _ in streamed] == ["embed.weight", "head.weight", "mid.weight", "mid.bias"]
    every = dict(model.named_parameters(remove_duplicate=False))
    for name, tensor in streamed:
        assert tensor.data_ptr() == every[name].data_ptr()
    assert list(iter_full_parameters(model, 16, keep=False)) == []


def test_push_streams_into_an_engine_and_lists_for_other_backends():
    model = Tied()

    class Llm:
        def __init__(self):
            self.names, self.lazy, self.reset = [], False, 0

        def collective_rpc(self, method, kwargs):
            iterator = kwargs["weights_iterator"]
            self.lazy = not isinstance(iterator, (list, tuple, dict))
            self.names = [name for name, _ in iterator]

        def reset_prefix_cache(self):
            self.reset += 1

    class Vllm:
        llm = Llm()

    class Hf:
        got = None

        def push_weights(self, pairs):
            Hf.got = pairs

    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    push_weights(Vllm, model, 8)
    assert Vllm.llm.lazy and Vllm.llm.reset == 1 and sorted(Vllm.llm.names) == sorted(names)
    push_weights(Hf(), model, 8)
    assert sorted(n for n, _ in Hf.got) == sorted(names)
    push_weights(None, model, 8)  # a rank without an engine only takes part in the gathers


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/self/clear_refs")
def test_push_peak_memory_grows_with_the_bucket_not_the_model():
    """ZeRO-3 over 2 ranks, a 128 MiB model: one push's peak extra RSS is about one bucket.

    (About 30 s: a torchrun job of two processes running benchmarks/weight_push.py.)
    """
    from resd_learner.distributed import free_port

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    small, large = 2**21, 2**23  # 8 MiB and 32 MiB of fp32
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), str(ROOT / "benchmarks" / "weight_push.py"), "--json",
               "--buckets", str(small), str(large)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    model = result["model_bytes"]
    by_bucket = {row["bucket_numel"]: row["peak_extra_bytes"] for row in result["rows"]}
    print(f"\nmodel {model / MIB:.0f} MiB; peak extra: bucket 8 MiB -> {by_bucket[small] / MIB:.1f} MiB, "
          f"bucket 32 MiB -> {by_bucket[large] / MIB:.1f} MiB, full copy -> {by_bucket[None] / MIB:.1f} MiB")
    assert model == 128 * MIB
    assert by_bucket[small] < 2 * small * 4 + 16 * MIB  # about one bucket plus gloo buffers
    growth = by_bucket[large] - by_bucket[small]
    assert 0.5 * (large - small) * 4 < growth < 1.5 * (large - small) * 4  # slope ~1 in the bucket size
    assert by_bucket[None] > model  # the old push: all of it, at least once
    assert by_bucket[large] < by_bucket[None] / 3
