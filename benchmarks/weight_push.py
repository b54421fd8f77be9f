"""Peak extra host memory of one weight push, per bucket size (ZeRO-3 on CPU, 2 ranks).

A stack of ``--layers`` square linear layers (``--width``² fp32 elements each) is wrapped in a
ZeRO-3 DeepSpeed engine, so each rank holds half of every parameter. (Run it with 2 ranks: with one
rank DeepSpeed's coalesced gather needs no new memory, which would measure nothing.) A fake generation engine holds its own
preallocated copy of every weight (part of the baseline) and copies each streamed tensor into it,
as vLLM's ``reload_weights`` does. For each bucket size one push runs through
``resd_learner.weight_sync.push_weights``; then the old behaviour (gather everything, copy the whole
state dict to the CPU) runs once. Peak extra memory of a push = the resident set's high-water mark
during the push (Linux: reset through ``/proc/self/clear_refs`` right before, read from ``VmHWM``)
minus the resident set just before it.

    torchrun --nproc_per_node 2 benchmarks/weight_push.py [--layers 32] [--width 1024]
        [--buckets 2097152 8388608] [--json]

Rank 0 prints the table (or one JSON object).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys

import torch

from resd_learner import distributed, weight_sync


def _status_bytes(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {key}")


def can_measure() -> bool:
    """Whether this system lets a process reset its RSS high-water mark (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _mmap_large_allocations() -> None:
    """glibc: serve every allocation >= 1 MiB by its own mmap, unmapped on free, so the resident set
    follows the live large tensors (by default freed heap memory stays resident and is reused)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (also fixes the dynamic threshold)
    except (OSError, AttributeError):
        pass


def _release_free_heap() -> None:
    """Give freed heap pages back to the OS (glibc keeps them resident otherwise, hiding later reuse)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_extra(run) -> int:
    """Bytes by which the resident set rose above its starting value while ``run()`` ran."""
    gc.collect()
    _release_free_heap()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # VmHWM := current VmRSS
    before = _status_bytes("VmRSS")
    run()
    return _status_bytes("VmHWM") - before


class _FakeEngine:
    """Stands in for an in-process vLLM engine: copies each streamed tensor into its own storage."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.weights = {name: torch.zeros(tuple(p.ds_shape) if hasattr(p, "ds_shape") else p.shape)
                        for name, p in module.named_parameters()}
        self.received = 0

    def collective_rpc(self, method: str, kwargs: dict) -> None:
        assert method == "reload_weights"
        for name, tensor in kwargs["weights_iterator"]:
            self.weights[name].copy_(tensor)
            self.received += 1


class _Backend:
    def __init__(self, llm: _FakeEngine) -> None:
        self.llm = llm


def measure(layers: int, width: int, buckets: list[int]) -> dict:
    """Peak extra bytes per bucket size and for the full state-dict copy, plus the model size."""
    _mmap_large_allocations()
    distributed.init_distributed("gloo")
    import deepspeed

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width, bias=False) for _ in range(layers)])
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                           config={"train_micro_batch_size_per_gpu": 1,
                                                   "zero_optimization": {"stage": 3}, "zero_allow_untested_optimizer": True,
                                                   "steps_per_print": 10**9})
    assert all(p.numel() == 0 for p in engine.module.parameters()), "parameters should be ZeRO-3 partitions"
    fake = _FakeEngine(engine.module)
    model_bytes = sum(w.numel() * w.element_size() for w in fake.weights.values())
    weight_sync.push_weights(_Backend(fake), engine.module, max(buckets))  # warm-up (lazy imports, pools)
    rows = []
    for bucket in buckets:
        fake.received = 0
        extra = peak_extra(lambda bucket=bucket: weight_sync.push_weights(_Backend(fake), engine.module, bucket))
        assert fake.received == layers
        rows.append({"bucket_numel": bucket, "bucket_bytes": bucket * 4, "peak_extra_bytes": extra})

    def old_push() -> None:  # what every rank did before: gather all parameters, copy them all to the CPU
        params = list(engine.module.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            full = {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
        for name, tensor in full.items():
            fake.weights[name].copy_(tensor)

    rows.append({"bucket_numel": None, "bucket_bytes": model_bytes, "peak_extra_bytes": peak_extra(old_push),
                 "note": "old push: full state dict copied to CPU"})
    for name, param in engine.module.named_parameters():
        with deepspeed.zero.GatheredParameters([param]):
            assert torch.equal(fake.weights[name], param.detach()), name
    engine.destroy()
    return {"model_bytes": model_bytes, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--buckets", type=float, nargs="+", default=[2**21, 2**23])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if not can_measure():
        print("cannot reset the RSS high-water mark here (/proc/self/clear_refs); Linux >= 4.0 needed")
        return 2
    result = measure(args.layers, args.width, [int(b) for b in args.buckets])
    main_rank, ranks = distributed.is_main(), distributed.world_size()  # before the groups are gone
    distributed.shutdown()  # leave together: a rank exiting with a live gloo group can abort at teardown
    if not main_rank:
        return 0
    if args.json:
        print(json.dumps(result))
        return 0
    mib = 2**20
    print(f"model: {args.layers} x {args.width}^2 fp32 = {result['model_bytes'] / mib:.0f} MiB "
          f"(ZeRO-3, {ranks} ranks; rank 0 measured)")
    print(f"{'bucket':>22} {'bucket MiB':>11} {'peak extra MiB':>15}")
    for row in result["rows"]:
        label = f"{row['bucket_numel']:,} elements" if row["bucket_numel"] else "full state dict (old)"
        print(f"{label:>22} {row['bucket_bytes'] / mib:>11.1f} {row['peak_extra_bytes'] / mib:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
