"""Seconds per sandboxed evaluation (one program, 15 calls) per tier, against a reference-style run.

Programs: ``trivial`` (returns a constant), ``never_returning`` (spins forever in the function)
and ``swallows_timeout`` (spins and catches the timeout signal, so only the parent's watchdog
stops it). The ``reference-style`` row re-creates how the reference verifier executes code -- one
forked process per test, program and call exec'd in it, the parent waiting 1 s per test -- so the
speed-up is measured on the same machine under the same load.

Usage::

    python benchmarks/sandbox.py [--repeats 10] [--hang-repeats 2] [--skip-reference-hang] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resd_envs.sandbox import available_tiers, run_function_calls, sandbox_info  # noqa: E402

CALLS = [[round(0.1 * i, 2)] for i in range(1, 16)]
PROGRAMS = {
    "trivial": "def predict_position(t):\n    return [[100.0 + t, 200.0 - t]]\n",
    "never_returning": "def predict_position(t):\n    while True:\n        pass\n",
    "swallows_timeout": (
        "def predict_position(t):\n    while True:\n        try:\n            while True:\n"
        "                pass\n        except BaseException:\n            pass\n"
    ),
}


def _reference_call(source: str, t: float, queue: multiprocessing.Queue) -> None:
    namespace: dict = {}
    exec(source, namespace)
    queue.put(namespace["predict_position"](t))


def reference_style(source: str, timeout_s: float = 1.0) -> float:
    """One forked process per call, joined with a per-call timeout; returns elapsed seconds."""
    context = multiprocessing.get_context("fork")
    start = time.perf_counter()
    for (t,) in CALLS:
        queue = context.Queue()
        proc = context.Process(target=_reference_call, args=(source, t, queue))
        proc.start()
        proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join()
        queue.close()
    return time.perf_counter() - start


def sandbox_run(source: str, tier: str) -> float:
    start = time.perf_counter()
    run_function_calls(source, "predict_position", CALLS, tier=tier, allow_rlimit=True)
    return time.perf_counter() - start


def measure(fn, repeats: int) -> dict:
    fn()  # warm-up (tier self-test, page cache)
    samples = [fn() for _ in range(repeats)]
    return {"median_s": statistics.median(samples), "min_s": min(samples), "n": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="runs of the trivial program per tier")
    parser.add_argument("--hang-repeats", type=int, default=2, help="runs of each hanging program")
    parser.add_argument("--skip-reference-hang", action="store_true",
                        help="do not run the 15 s reference-style never-returning baseline")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiers = available_tiers(allow_rlimit=True)  # the rlimit tier is measured too (opt-in)
        results: dict = {"tiers": {t: sandbox_info(t, allow_rlimit=True)["self_test_ms"] for t in tiers},
                         "rows": []}
        for name, source in PROGRAMS.items():
            repeats = args.repeats if name == "trivial" else args.hang_repeats
            ref = None
            if name == "trivial" or (name == "never_returning" and not args.skip_reference_hang):
                ref = measure(lambda s=source: reference_style(s), 1 if name != "trivial" else repeats)
                results["rows"].append({"program": name, "runner": "reference-style", **ref})
            for tier in tiers:
                row = measure(lambda s=source, t=tier: sandbox_run(s, t), repeats)
                if ref is not None:
                    row["speedup_vs_reference"] = ref["median_s"] / row["median_s"]
                results["rows"].append({"program": name, "runner": tier, **row})
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"self-test ms per tier: {results['tiers']}")
    print(f"{'program':<18}{'runner':<17}{'median s':>10}{'min s':>10}{'speed-up':>10}")
    for row in results["rows"]:
        speed = f"{row['speedup_vs_reference']:.1f}x" if "speedup_vs_reference" in row else ""
        print(f"{row['program']:<18}{row['runner']:<17}{row['median_s']:>10.4f}{row['min_s']:>10.4f}{speed:>10}")


if __name__ == "__main__":
    main()
