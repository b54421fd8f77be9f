"""Run under ``torchrun --nproc_per_node N`` by test_partitioned_teacher.py (CPU, gloo).

A bf16 ZeRO-3 student (fp32 masters in the optimizer) takes ``STEPS`` AdamW steps; after each, the
partitioned teacher does its local EMA while the script keeps an unpartitioned reference EMA computed
from the gathered fp32 masters. Each rank writes its results to ``OUT/result_rank<r>.json`` (two ranks
printing to one pipe can interleave their lines).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(out_dir: str, steps: int = 3, rate: float = 0.25) -> None:
    import deepspeed
    import torch.distributed as dist
    from deepspeed.utils import safe_get_full_fp32_param
    from transformers import AutoModelForCausalLM, Qwen3Config

    from resd_learner import distributed
    from resd_learner.partitioned_teacher import PartitionedEmaTeacher, is_zero3_partitioned

    distributed.init_distributed("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    config = Qwen3Config(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True)
    ds_config = {"train_micro_batch_size_per_gpu": 2, "steps_per_print": 10**9, "bf16": {"enabled": True},
                 "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}
    torch.manual_seed(0)
    with deepspeed.zero.Init(config_dict_or_path=ds_config):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    assert is_zero3_partitioned(model)

    def gathered(module):
        params = dict(module.named_parameters())
        with deepspeed.zero.GatheredParameters(list(params.values())):
            return {n: p.detach().float().clone() for n, p in params.items()}

    reference = gathered(model)  # the teacher starts as the (bf16) student, in fp32
    teacher = PartitionedEmaTeacher(model, rate=rate)  # built before the engine, as the trainer does
    engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
                                      config=ds_config)
    gen = torch.Generator().manual_seed(1 + rank)
    masters_differ = False
    for _ in range(steps):
        ids = torch.randint(0, 48, (2, 8), generator=gen)
        engine.backward(engine(input_ids=ids, labels=ids).loss)
        engine.step()
        teacher.update(engine)
        for name, param in engine.module.named_parameters():
            master = safe_get_full_fp32_param(param).float().cpu()
            reference[name] = reference[name] * (1 - rate) + master * rate
        bf16 = gathered(engine.module)
        masters_differ |= any(not torch.equal(bf16[n], safe_get_full_fp32_param(p).float().cpu())
                              for n, p in engine.module.named_parameters())
    ema = teacher.gathered_state()
    ema_err = max(float((ema[n] - reference[n]).abs().max()) for n in reference)

    # (b) the forward equals an unpartitioned teacher holding the reference weights
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(reference, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    plain.eval()
    ids = torch.randint(0, 48, (2, 8), generator=torch.Generator().manual_seed(7))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    with torch.no_grad():
        expect = plain.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    hidden, head = teacher.hidden_and_head(ids, mask)
    hidden_err = float((hidden.float() - expect).abs().max())
    head_err = float((head - plain.get_output_embeddings().weight.detach()).abs().max())
    teacher.compute_dtype = torch.bfloat16  # the trainer's setting with a bf16 student
    low, _ = teacher.hidden_and_head(ids, mask)
    teacher.compute_dtype = None
    autocast_err = float((low.float() - expect).abs().max())

    # (d) checkpoint round trip: a fresh teacher (a copy of the current student) takes the saved partitions
    path = Path(out_dir) / f"teacher_rank{rank}.pt"
    torch.save(teacher.state_dict(), path)
    fresh = PartitionedEmaTeacher(engine, rate=rate)
    before_load = fresh.gathered_state()
    fresh.load_state_dict(torch.load(path, weights_only=False))
    loaded = fresh.gathered_state()
    resumed_equal = all(torch.equal(loaded[n], ema[n]) for n in ema)
    resumed_changed = any(not torch.equal(before_load[n], ema[n]) for n in ema)
    fresh.update(engine)
    teacher.update(engine)
    after_update_equal = all(torch.equal(a, b) for a, b in zip(fresh.gathered_state().values(),
                                                             teacher.gathered_state().values()))
    (Path(out_dir) / f"result_rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": world, "ema_err": ema_err, "hidden_err": hidden_err, "head_err": head_err, "autocast_err": autocast_err,
        "masters_differ": masters_differ, "local_numel": teacher.local_numel(), "full_numel": teacher.full_numel(),
        "teacher_dtype": str({p.ds_tensor.dtype for p in teacher.module.parameters()}),
        "resumed_equal": resumed_equal, "resumed_changed": resumed_changed,
        "after_update_equal": after_update_equal, "counters": [fresh.calls, fresh.updates],
    }), encoding="utf-8")
    engine.destroy()
    distributed.shutdown()  # leave the groups before exit: live gloo threads can abort a rank at teardown


if __name__ == "__main__":
    main(sys.argv[1])
