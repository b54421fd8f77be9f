"""vLLM's full-sort top-p filter against the partial one (``rollout.top_p_impl``), in one process.

With the quickstart's own model (the cached warm start), settings and validation prompts, the
validation pass (``eval.n`` completions of each of ``--prompts`` FinerMini test prompts at the eval
sampling settings) runs twice on one engine: first with vLLM's own top-p filter (a sort of every
row of logits over the whole vocabulary at every decoding step), then, after a prefix-cache reset,
with :func:`resd_learner.rollout.nucleus.partial_top_k_top_p`. A short warm-up pass (``--warmup``
prompts) runs before both. For each pass it reports the wall time, the seconds spent inside the
top-p filter, and the rows filtered; for the partial filter also the rows that fell back to the full
sort. Then it compares the two passes' completions token for token.

The ratio printed is between the two passes of this process; nothing else should run beside it.

    python benchmarks/top_p_sampler.py [--config configs/quickstart.yaml] [--prompts 128] [--warmup 8]
        [--json] [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from quickstart_setup import load_validation
from resd_learner.rollout import nucleus


class _FilterTimer:
    """Wraps the function vLLM's sampler calls for top-p and sums its time and rows."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.rows = 0
        self.fallback_rows = 0
        self.inner: Callable[..., Any] | None = None

    def __call__(self, logits: Any, k: Any, p: Any) -> Any:
        began = time.perf_counter()
        out = self.inner(logits, k, p)
        self.seconds += time.perf_counter() - began
        if p is not None:
            self.rows += int(logits.shape[0])
        return out


def _install(timer: _FilterTimer, partial: bool) -> None:
    """Route vLLM's top-p call through ``timer`` to its own filter or the partial one."""
    from vllm.v1.sample.ops import topk_topp_sampler as sampler_ops

    nucleus.use_partial_top_p(partial)
    original = nucleus._ORIGINAL["apply_top_k_top_p"]

    def counting_fallback(rows: Any, rows_p: Any) -> Any:
        timer.fallback_rows += int(rows.shape[0])
        return original(rows, None, rows_p)

    def partial_filter(logits: Any, k: Any, p: Any) -> Any:
        if p is None or k is not None:
            return original(logits, k, p)
        return nucleus.nucleus_filter(logits, p, fallback=counting_fallback)

    timer.inner = partial_filter if partial else original
    sampler_ops.apply_top_k_top_p = timer


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--prompts", type=int, default=128, help="validation prompts (the split's first)")
    parser.add_argument("--warmup", type=int, default=8, help="prompts of the warm-up pass (not timed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.warmup < 0:
        parser.error("--prompts must be at least 1 and --warmup at least 0")

    setup = load_validation(args.config, args.overrides, args.prompts)
    tasks, ev, dtype = setup.tasks, setup.config.eval, setup.dtype
    backend = setup.backend(args.seed)

    def validate(some_tasks: list) -> tuple[float, list]:
        backend.llm.reset_prefix_cache()
        began = time.perf_counter()
        samples = setup.sample(backend, args.seed, some_tasks)
        return round(time.perf_counter() - began, 2), samples

    if args.warmup:
        _install(_FilterTimer(), partial=False)
        validate(tasks[: args.warmup])
    passes: dict[str, dict[str, Any]] = {}
    outputs: dict[str, list] = {}
    for name, partial in (("vllm", False), ("partial", True)):
        timer = _FilterTimer()
        _install(timer, partial)
        seconds, samples = validate(tasks)
        outputs[name] = [tuple(s.response_ids) for s in samples]
        passes[name] = {"seconds": seconds, "filter_seconds": round(timer.seconds, 2), "rows": timer.rows,
                        "fallback_rows": timer.fallback_rows if partial else None,
                        "generated_tokens": sum(len(ids) for ids in outputs[name]),
                        "mean_score": round(sum(s.reward for s in samples) / max(1, len(samples)), 4)}
    nucleus.use_partial_top_p(False)
    differing = [i for i, (a, b) in enumerate(zip(outputs["vllm"], outputs["partial"])) if a != b]
    result = {"dtype": dtype, "prompts": len(tasks), "n": ev.n, "temperature": ev.temperature, "top_p": ev.top_p,
              "passes": passes, "completions": len(outputs["vllm"]), "completions_differing": len(differing)}
    if args.json:
        print(json.dumps(result))
        return result
    a, b = passes["vllm"], passes["partial"]
    print(f"validation: {len(tasks)} prompts x n={ev.n}, T={ev.temperature}, top-p {ev.top_p}, {dtype}")
    for name, row in passes.items():
        fallback = "" if row["fallback_rows"] is None else f", {row['fallback_rows']} fell back to the sort"
        print(f"  {name:<8} {row['seconds']:7.1f} s, top-p filter {row['filter_seconds']:6.1f} s over "
              f"{row['rows']} rows{fallback}; {row['generated_tokens']} tokens, mean reward {row['mean_score']}")
    print(f"  pass time vllm / partial: {a['seconds'] / b['seconds']:.2f}x; filter time: "
          f"{a['filter_seconds'] / max(b['filter_seconds'], 1e-9):.1f}x")
    print(f"  completions differing token for token: {len(differing)} of {len(outputs['vllm'])}")
    return result


if __name__ == "__main__":
    main()
