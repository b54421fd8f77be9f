"""Throughput of the Manufactoria-Has verifier, compared with the DELTA reference on this machine.

Usage::

    python benchmarks/manufactoria.py            # all three measurements
    python benchmarks/manufactoria.py --profile  # also a cProfile of the end-to-end pass

Measures (single process, best of ``--repeat`` runs, CPU time of this process so that other jobs on a
shared machine distort the numbers less; ``--wall`` uses wall-clock time instead):

a) interpretation only: pre-parsed reference solutions x their test tapes, (program, tape) checks/s;
b) end-to-end: parse every reference solution from text and run all its tests, like DELTA's API does
   (also shown: the full ``family.evaluate`` path with feedback);
c) robots that run into the 1000-iteration limit (loops that paint, loops that never consume, loops that
   rotate the tape, loops that grow it, and plain reading of over-long tapes), tapes/s.

Each line also shows the speed-up over an in-process baseline timed in the same run: the literal
step-by-step interpreter (``trace(..., keep=0)``, one node per iteration like the reference).

Reference numbers (DELTA's parser/interpreter measured on this machine, spec §7): a) ~30,000 checks/s,
b) ~10,000 checks/s, c) ~170 tapes/s. Every verdict, output tape and step count is checked against the
step-by-step interpreter before timing.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Callable

import resd_envs
from resd_envs import manufactoria as mf
from resd_envs.manufactoria.machine import trace
from resd_envs.manufactoria.parser import parse

REFERENCE = {"a": 30_000.0, "b": 10_000.0, "c": 170.0}

LOOPS = {
    "painter cycle": ("START start:\n    NEXT w\nPAINTER_YELLOW w:\n    NEXT x\nPAINTER_GREEN x:\n    NEXT w\nEND end", "RB"),
    "non-consuming pullers": ("START start:\n    NEXT a\nPULLER_YG a:\n    [EMPTY] b\nPULLER_YG b:\n    [EMPTY] a\nEND end", "RBRB"),
    "rotating tape": (
        "START start:\n    NEXT rb\nPULLER_RB rb:\n    [R] pr\n    [B] pb\nPAINTER_RED pr:\n    NEXT rb\n"
        "PAINTER_BLUE pb:\n    NEXT rb\nEND end",
        "RBBRBRRB",
    ),
    "growing tape": (
        "START start:\n    NEXT rb\nPULLER_RB rb:\n    [R] p1\n    [EMPTY] end\nPAINTER_RED p1:\n    NEXT p2\n"
        "PAINTER_RED p2:\n    NEXT rb\nEND end",
        "RR",
    ),
    "reading a 1500-symbol tape": (
        "START start:\n    NEXT rd\nPULLER_YG rd:\n    [Y] rd\n    [G] rd\n    [EMPTY] rb\nPULLER_RB rb:\n"
        "    [R] rd\n    [B] rd\n    [EMPTY] end\nEND end",
        "RYBG" * 375,
    ),
}


CLOCK = time.process_time


def best_rate(work: Callable[[], int], repeat: int) -> float:
    """Items per second of ``work`` (which returns how many items it did), best of ``repeat`` runs."""
    best = 0.0
    for _ in range(repeat):
        start = CLOCK()
        items = work()
        best = max(best, items / max(CLOCK() - start, 1e-9))
    return best


def report(label: str, key: str, rate: float, unit: str, baseline: float | None = None) -> None:
    ratio = rate / REFERENCE[key]
    extra = f"  {rate / baseline:6.1f}x step-by-step" if baseline else ""
    print(f"{label:<48} {rate:>10,.0f} {unit:<9} {ratio:6.1f}x reference ({REFERENCE[key]:,.0f}){extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (best is shown)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the end-to-end pass")
    parser.add_argument("--wall", action="store_true", help="time with wall-clock instead of process CPU time")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.wall else time.process_time

    fam = resd_envs.family("resd/Manufactoria-Has-v0")
    tasks = [t for split in fam.splits for t in fam.tasks(split)]
    programs = [mf.extract_program(fam.reference_response(t)) for t in tasks]
    tapes = [[c["tape"] for c in t["tests"]] for t in tasks]
    labels = [[c["accept"] for c in t["tests"]] for t in tasks]
    total_checks = sum(map(len, tapes))
    clock = "wall-clock" if args.wall else "process CPU"
    print(f"{len(tasks)} problems, {total_checks} test tapes; best of {args.repeat} runs, {clock} time; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")

    factories = [parse(p) for p in programs]
    for factory, row, want in zip(factories, tapes, labels):  # verdicts checked (and tables compiled) first
        for tape, accept in zip(row, want):
            out = mf.run(factory, tape)
            assert out == trace(factory, tape, keep=0).result and out.accepted == accept

    def interpret() -> int:
        run = mf.run
        for factory, row in zip(factories, tapes):
            for tape in row:
                run(factory, tape)
        return total_checks

    def interpret_baseline() -> int:
        for factory, row in zip(factories, tapes):
            for tape in row:
                trace(factory, tape, keep=0)
        return total_checks

    def end_to_end_baseline() -> int:
        for text, row in zip(programs, tapes):
            factory = parse(text)
            for tape in row:
                trace(factory, tape, keep=0)
        return total_checks

    def end_to_end() -> int:
        run = mf.run
        for text, row in zip(programs, tapes):
            factory = parse(text)
            for tape in row:
                run(factory, tape)
        return total_checks

    responses = [fam.reference_response(t) for t in tasks]

    def evaluate() -> int:
        for task, response in zip(tasks, responses):
            fam.evaluate(task, response)
        return total_checks

    base_a = best_rate(interpret_baseline, args.repeat)
    report("a) pre-parsed (program, tape) checks", "a", best_rate(interpret, args.repeat), "checks/s", base_a)
    rate_b = best_rate(end_to_end, args.repeat)
    base_b = best_rate(end_to_end_baseline, args.repeat)
    report("b) end-to-end: parse + all tests, 874 problems", "b", rate_b, "checks/s", base_b)
    print(f"{'   = problems/s':<58} {rate_b * len(tasks) / total_checks:>12,.0f}")
    report("b') same through family.evaluate (with feedback)", "b", best_rate(evaluate, args.repeat), "checks/s")

    print()
    rates, bases = [], []
    for name, (text, tape) in LOOPS.items():
        factory = parse(text)
        out = mf.run(factory, tape)
        assert out == trace(factory, tape, keep=0).result and out.rejection == "max_iterations", name
        rate = best_rate(lambda f=factory, t=tape: [mf.run(f, t) for _ in range(2000)] and 2000, args.repeat)
        base = best_rate(lambda f=factory, t=tape: [trace(f, t, keep=0) for _ in range(100)] and 100, args.repeat)
        rates.append(rate)
        bases.append(base)
        report(f"c) cap: {name}", "c", rate, "tapes/s", base)
    mixed = len(rates) / sum(1 / r for r in rates)
    report("c) cap: all kinds mixed (harmonic mean)", "c", mixed, "tapes/s", len(bases) / sum(1 / b for b in bases))

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(end_to_end)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(12)


if __name__ == "__main__":
    main()
