"""Sharding of generation rounds over replicas and the vLLM engine arguments (resd_learner.colocate)."""

from __future__ import annotations

import pytest

from resd_learner.colocate import GenerationGroups, engine_kwargs, sleep_level
from resd_learner.config import RolloutConfig


def test_shards_are_contiguous_balanced_and_cover_everything():
    for world, tp in ((8, 1), (8, 2), (8, 4), (6, 3)):
        groups = [GenerationGroups(world, rank, tp) for rank in range(world)]
        for count in (0, 1, 5, 13, 32):
            bounds = [groups[r * tp].bounds(count) for r in range(world // tp)]
            assert bounds[0][0] == 0 and bounds[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [stop - start for start, stop in bounds]
            assert max(sizes) - min(sizes) <= 1
            for rank in range(world):  # every rank of a replica gets its replica's shard
                assert groups[rank].bounds(count) == bounds[rank // tp]


def test_replicas_are_blocks_of_consecutive_ranks():
    groups = [GenerationGroups(8, rank, 4) for rank in range(8)]
    assert [g.replica for g in groups] == [0, 0, 0, 0, 1, 1, 1, 1] and groups[0].replicas == 2
    with pytest.raises(ValueError, match="tensor_parallel_size=3 must divide"):
        GenerationGroups(8, 0, 3)


def test_one_replica_keeps_the_seed_and_runs_locally():
    groups = GenerationGroups(1, 0)
    assert groups.shard_seed(1234) == 1234
    assert groups.run(list("abc"), lambda shard, replica: [s.upper() for s in shard]) == ["A", "B", "C"]
    with pytest.raises(RuntimeError, match="returned 1 results"):
        groups.run(list("abc"), lambda shard, replica: shard[:1])
    several = [GenerationGroups(4, rank, 1) for rank in range(4)]
    assert len({g.shard_seed(1234) for g in several}) == 4  # each replica draws its own samples


def test_engine_arguments_per_topology():
    rollout = RolloutConfig(max_model_len=8192, tensor_parallel_size=2)
    single = engine_kwargs(rollout, "/m", dtype="bfloat16", seed=0, world=1, on_gpu=True)
    assert "distributed_executor_backend" not in single and single["enable_sleep_mode"] is True
    multi = engine_kwargs(rollout, "/m", dtype="bfloat16", seed=0, world=8, on_gpu=True)
    assert multi["distributed_executor_backend"] == "external_launcher" and multi["tensor_parallel_size"] == 2
    cpu = engine_kwargs(rollout, "/m", dtype="float32", seed=0, world=2, on_gpu=False)
    assert cpu["enable_chunked_prefill"] is False and cpu["max_num_batched_tokens"] == 8192
    assert "enable_sleep_mode" not in cpu and "gpu_memory_utilization" not in cpu
    assert "block_size" not in cpu  # vLLM's default unless set
    assert engine_kwargs(RolloutConfig(block_size=32), "/m", dtype="float32", seed=0, world=1,
                         on_gpu=False)["block_size"] == 32
    assert sleep_level(RolloutConfig(), on_gpu=True) == 1 and sleep_level(RolloutConfig(), on_gpu=False) == 0
    assert sleep_level(RolloutConfig(sleep_level=0), on_gpu=True) == 0
    assert "enable_sleep_mode" not in engine_kwargs(RolloutConfig(sleep_level=0), "/m", dtype="float32", seed=0,
                                                    world=1, on_gpu=True)


def test_config_rejects_bad_topology_values():
    from resd_learner.config import DistributedConfig

    assert any("tensor_parallel_size" in p for p in RolloutConfig(tensor_parallel_size=0).problems())
    assert any("sleep_level" in p for p in RolloutConfig(sleep_level=3).problems())
    assert any("timeout_minutes" in p for p in DistributedConfig(timeout_minutes=0).problems())
    assert any("push_bucket_numel" in p for p in DistributedConfig(push_bucket_numel=0).problems())
    assert any("zero_stage=0" in p for p in DistributedConfig(engine="torch", zero_stage=2).problems())
    assert DistributedConfig().timeout_minutes == 120.0 and DistributedConfig().problems() == []
