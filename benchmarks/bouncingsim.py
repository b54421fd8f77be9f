"""Seconds per BouncingSim evaluation with the sandbox on (15 test times, one child per submission).

Prints the mean and the slowest evaluation for: a trivial program (returns a constant), the gold
solver, and a program that never returns; plus the oracle's cost per scene. Absolute times only: no
reference verifier runs in this process, so no comparison is printed (``benchmarks/sandbox.py`` times a
reference-style runner side by side).

    python benchmarks/bouncingsim.py [--tasks 10] [--level medium]
"""

from __future__ import annotations

import argparse
import statistics
import time

from resd_envs.bouncingsim.family import BouncingSimFamily
from resd_envs.bouncingsim.oracle import simulate

TRIVIAL = "```python\ndef predict_position(t):\n    return [[750.0, 750.0]] * {n}\n```"
NEVER = "```python\ndef predict_position(t):\n    while True:\n        pass\n```"


def _time(fam: BouncingSimFamily, tasks: list, make_response) -> tuple[float, float, float]:
    seconds, scores = [], []
    for task in tasks:
        response = make_response(task)
        start = time.perf_counter()
        evaluation = fam.evaluate(task, response, detail="minimal")
        seconds.append(time.perf_counter() - start)
        scores.append(evaluation.score)
    return statistics.mean(seconds), max(seconds), statistics.mean(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10, help="test tasks per program (default 10)")
    parser.add_argument("--never-tasks", type=int, default=3, help="tasks for the never-returning program")
    parser.add_argument("--level", default="medium", choices=("easy", "medium"))
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args()
    fam = BouncingSimFamily(args.level, sandbox=args.sandbox)
    tasks = list(fam.tasks("test")[: args.tasks])
    warm = fam.evaluate(tasks[0], TRIVIAL.format(n=tasks[0]["n_balls"]))  # warm-up (tier self-test)
    print(
        f"BouncingSim-{args.level.capitalize()}: sandbox tier {warm.extra['sandbox_tier']}, "
        f"{len(tasks)} tasks"
    )
    rows = [
        ("trivial program", _time(fam, tasks, lambda t: TRIVIAL.format(n=t["n_balls"]))),
        ("gold solver", _time(fam, tasks, fam.reference_response)),
        ("never returns", _time(fam, tasks[: args.never_tasks], lambda t: NEVER)),
    ]
    print(f"{'program':<18}{'mean s/eval':>12}{'max s':>8}{'score':>8}")
    for name, (mean, worst, score) in rows:
        print(f"{name:<18}{mean:>12.3f}{worst:>8.3f}{score:>8.2f}")
    start = time.perf_counter()
    for task in tasks:
        simulate(task["scene"])
    print(f"oracle: {(time.perf_counter() - start) / len(tasks):.3f} s per scene (15 times, one pass)")


if __name__ == "__main__":
    main()
