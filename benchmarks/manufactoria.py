"""Throughput of the Manufactoria-Has verifier; with ``--reference-dir``, side by side with DELTA's.

Usage::

    python benchmarks/manufactoria.py                                 # absolute rates only
    python benchmarks/manufactoria.py --reference-dir ~/delta-code    # plus DELTA, same process, ratios
    python benchmarks/manufactoria.py --profile                       # also a cProfile of end-to-end

Running DELTA side by side: clone the public repository next to (not inside) this one and install
what its verifier imports at module level (networkx and matplotlib, used only by its drawing helper)::

    git clone https://github.com/sunblaze-ucb/delta-code ~/delta-code
    pip install networkx matplotlib
    python benchmarks/manufactoria.py --reference-dir ~/delta-code

``--reference-dir`` is the repository root (the folder holding ``manufactoria/verifier/``). Its
``manufactoria_parser.py`` is loaded unmodified from that path and called the way its API does
(``create_robot_factory(text)`` then ``factory.process_robot(tape)`` per test). Before anything is timed,
every result of ours is checked against DELTA's (finished/accepted, final tape, path length/steps).

Measurements (the same inputs for both verifiers; CPU time of this process by default so that other jobs
on a shared machine distort the numbers less, ``--wall`` for wall-clock time):

a) pre-parsed: every reference solution of the 874 problems parsed once, then each (program, tape)
   check of its tests; checks/s;
b) end-to-end: parse each reference solution from its text and run all its tests; checks/s and problems/s;
c) parse alone: every reference solution's text, parsed; programs/s. Our parser checks the whole program
   but builds its ``Node``/``Route`` objects only when ``factory.nodes`` is first read (and the symbol
   table the runner uses on the first run), so c') also reads ``.nodes``; DELTA builds its nodes in both;
d) robots that run into the 1000-iteration limit (loops that paint, loops that never consume, loops that
   rotate the tape, loops that grow it, plain reading of an over-long tape); tapes/s.

Ours and DELTA's are timed in alternating repeats (``--repeat`` of each); the best repeat of each is
shown, and a ratio is printed only when DELTA ran in this process. Neither parser caches results across
calls, so b) and c) parse every text afresh in every repeat (the number of distinct texts is printed).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import resd_envs
from resd_envs import manufactoria as mf
from resd_envs.manufactoria.machine import trace

#: Where DELTA's verifier lives inside its repository.
DELTA_VERIFIER = Path("manufactoria", "verifier", "manufactoria_parser.py")

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

CLOCK: Callable[[], float] = time.process_time


def load_delta(reference_dir: Path) -> ModuleType:
    """Import DELTA's ``manufactoria_parser.py`` from a checkout, unmodified, under a private module name."""
    path = reference_dir.expanduser() / DELTA_VERIFIER
    if not path.is_file():
        raise SystemExit(
            f"--reference-dir {reference_dir}: no {DELTA_VERIFIER} there; pass the root of a checkout of "
            "https://github.com/sunblaze-ucb/delta-code"
        )
    spec = importlib.util.spec_from_file_location("delta_manufactoria_parser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as error:
        raise SystemExit(
            f"DELTA's verifier ({path}) imports {error.name!r}, which is not installed; "
            f"install it (pip install networkx matplotlib) to run it side by side"
        ) from error
    return module


def timed(work: Callable[[], Any], before: Callable[[], Any] | None = None) -> float:
    """CPU (or wall) seconds of one call of ``work``; ``before`` runs first, untimed."""
    if before is not None:
        before()
    start = CLOCK()
    work()
    return CLOCK() - start


class Row:
    """One measurement: ``items`` per call of ``ours``, ``items_theirs`` (default: the same) per call of
    ``theirs`` (the same work done by DELTA); ``before`` runs untimed before each call of ``ours``."""

    def __init__(self, label: str, unit: str, items: int, ours: Callable[[], Any],
                 theirs: Callable[[], Any] | None, before: Callable[[], Any] | None = None,
                 items_theirs: int | None = None) -> None:
        self.label, self.unit, self.items = label, unit, items
        self.items_theirs = items if items_theirs is None else items_theirs
        self.ours, self.theirs, self.before = ours, theirs, before

    def measure(self, repeat: int) -> tuple[float, float | None]:
        """Best rates (items/s) of ours and DELTA's, timed in alternating repeats."""
        ours: list[float] = []
        theirs: list[float] = []
        for r in range(repeat):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for who in order:
                if who == 0:
                    ours.append(timed(self.ours, self.before))
                elif self.theirs is not None:
                    theirs.append(timed(self.theirs))
        rate_ours = self.items / max(min(ours), 1e-9)
        rate_theirs = self.items_theirs / max(min(theirs), 1e-9) if theirs else None
        return rate_ours, rate_theirs


def show(label: str, unit: str, ours: float, theirs: float | None) -> None:
    line = f"{label:<46} {ours:>11,.0f} {unit:<11}"
    if theirs is not None:
        line += f" DELTA {theirs:>10,.0f}   {ours / theirs:5.1f}x"
    print(line)


def check_against_delta(delta: ModuleType, programs: list[str], tapes: list[list[str]]) -> int:
    """Compare every (program, tape) result with DELTA's; returns how many were compared."""
    compared = 0
    for text, row in zip(programs, tapes):
        theirs = delta.create_robot_factory(text)
        factory = mf.parse(text)
        for tape in row:
            got, want = mf.run(factory, tape), theirs.process_robot(tape)
            same = (got.accepted, got.output_tape, got.steps) == (want.finished, want.final_tape, len(want.path))
            if not same:
                raise SystemExit(f"disagreement with DELTA on tape {tape!r} of program:\n{text}\nours {got}, "
                                 f"DELTA finished={want.finished} tape={want.final_tape!r} path={len(want.path)}")
            compared += 1
    return compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", type=Path, default=None,
                        help="root of a checkout of sunblaze-ucb/delta-code: run its verifier side by side")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each verifier per measurement")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of our end-to-end pass")
    parser.add_argument("--wall", action="store_true", help="time with wall-clock instead of process CPU time")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    global CLOCK
    CLOCK = time.perf_counter if args.wall else time.process_time
    delta = load_delta(args.reference_dir) if args.reference_dir is not None else None

    fam = resd_envs.family("resd/Manufactoria-Has-v0")
    tasks = [t for split in fam.splits for t in fam.tasks(split)]
    programs = [mf.extract_program(fam.reference_response(t)) for t in tasks]
    tapes = [[c["tape"] for c in t["tests"]] for t in tasks]
    labels = [[c["accept"] for c in t["tests"]] for t in tasks]
    total_checks = sum(map(len, tapes))
    clock = "wall-clock" if args.wall else "process CPU"
    print(f"{len(tasks)} problems ({len(set(programs))} distinct program texts), {total_checks} test tapes; "
          f"best of {args.repeat} alternating runs, {clock} time; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores; Python {sys.version.split()[0]}")

    factories = [mf.parse(p) for p in programs]
    for factory, row, want in zip(factories, tapes, labels):  # verdicts checked (and tables compiled) first
        for tape, accept in zip(row, want):
            out = mf.run(factory, tape)
            assert out == trace(factory, tape, keep=0).result and out.accepted == accept
    for text, tape in LOOPS.values():
        assert mf.run(text, tape).rejection == "max_iterations"
    if delta is not None:
        compared = check_against_delta(delta, programs + [t for t, _ in LOOPS.values()],
                                       tapes + [[tape] for _, tape in LOOPS.values()])
        print(f"DELTA: {args.reference_dir / DELTA_VERIFIER}, unmodified; {compared} results identical to ours")
    else:
        print("no --reference-dir: absolute rates only (see the module docstring to run DELTA side by side)")
    print()

    run = mf.run
    parse = mf.parse

    def pre_parsed() -> None:
        for factory, row in zip(factories, tapes):
            for tape in row:
                run(factory, tape)

    def end_to_end() -> None:
        for text, row in zip(programs, tapes):
            factory = parse(text)
            for tape in row:
                run(factory, tape)

    def parse_only() -> None:
        for text in programs:
            parse(text)

    def parse_nodes() -> None:
        for text in programs:
            parse(text).nodes  # noqa: B018 -- builds the Node/Route objects, as DELTA's parser does

    rows = [
        Row("a) pre-parsed (program, tape) checks", "checks/s", total_checks, pre_parsed, None),
        Row(f"b) end-to-end: parse + all tests, {len(tasks)} problems", "checks/s", total_checks, end_to_end,
            None),
        Row(f"c) parse alone, {len(tasks)} programs", "programs/s", len(programs), parse_only, None),
        Row("c') parse + read .nodes (Node objects)", "programs/s", len(programs), parse_nodes, None),
    ]
    if delta is not None:
        theirs_factories = [delta.create_robot_factory(p) for p in programs]
        create = delta.create_robot_factory

        def delta_pre_parsed() -> None:
            for factory, row in zip(theirs_factories, tapes):
                for tape in row:
                    factory.process_robot(tape)

        def delta_end_to_end() -> None:
            for text, row in zip(programs, tapes):
                factory = create(text)
                for tape in row:
                    factory.process_robot(tape)

        def delta_parse_only() -> None:
            for text in programs:
                create(text)

        rows[0].theirs, rows[1].theirs, rows[2].theirs = delta_pre_parsed, delta_end_to_end, delta_parse_only
        rows[3].theirs = delta_parse_only

    for number, row in enumerate(rows):
        ours, theirs = row.measure(args.repeat)
        show(row.label, row.unit, ours, theirs)
        if number == 1:
            show("   = problems/s", "problems/s", ours * len(tasks) / total_checks,
                 None if theirs is None else theirs * len(tasks) / total_checks)

    def evaluate() -> None:
        for task, response in zip(tasks, responses):
            fam.evaluate(task, response)

    responses = [fam.reference_response(t) for t in tasks]
    ours, _ = Row("", "", total_checks, evaluate, None).measure(args.repeat)
    show("b') b) through family.evaluate (with feedback)", "checks/s", ours, None)

    print()
    rates: list[float] = []
    delta_rates: list[float] = []
    for name, (text, tape) in LOOPS.items():
        factory = parse(text)
        count = 2000

        def ours_loop(f: Any = factory, t: str = tape) -> None:
            for _ in range(count):
                run(f, t)

        theirs_loop = None
        count_theirs = 50  # DELTA steps through all 1000 iterations: fewer robots per timed call
        if delta is not None:
            theirs_factory = delta.create_robot_factory(text)

            def theirs_loop(f: Any = theirs_factory, t: str = tape) -> None:
                for _ in range(count_theirs):
                    f.process_robot(t)

        ours_rate, theirs_rate = Row("", "", count, ours_loop, theirs_loop, items_theirs=count_theirs).measure(
            args.repeat)
        rates.append(ours_rate)
        if theirs_rate is not None:
            delta_rates.append(theirs_rate)
        show(f"d) cap: {name}", "tapes/s", ours_rate, theirs_rate)
    mixed = len(rates) / sum(1 / r for r in rates)
    mixed_theirs = len(delta_rates) / sum(1 / r for r in delta_rates) if delta_rates else None
    show("d) cap: all kinds mixed (harmonic mean)", "tapes/s", mixed, mixed_theirs)

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(end_to_end)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
