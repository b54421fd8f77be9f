"""Rank-based checkpoint selection (paper §4.1) over a run's validation log.

The paper picks one checkpoint per run this way: for every logged validation step, rank that step
against the other steps on each of the four validation metrics (mean@4 and best@4 of per-task and
per-test-case accuracy), add up the four ranks, and keep the step with the highest total.

Exact rule implemented here (the paper leaves ties open; these choices are ours):

1. Candidates are the ``kind == "val"`` rows of ``RUN_DIR/metrics.jsonl``. If a step was logged
   twice (a resumed run), the last row wins. Rows missing a metric, or with a non-finite value,
   are skipped and reported.
2. For each metric, candidates are ranked in ascending order of value: the lowest gets rank 1, the
   highest rank N. Equal values share the mean of the ranks they span ("fractional" ranking, so
   two steps tied for best out of 5 both get 4.5).
3. A candidate's score is the sum of its ranks over the metrics; the highest sum wins.
4. Ties on the sum go to the larger sum of the raw metric values, then to the earlier step.

Only steps present in the log can be chosen; with ``only_saved=True`` only steps that have a
``RUN_DIR/checkpoints/step_<N>`` directory are candidates (ranks are computed among those).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``val/<mean|best>@<n>/<per_task|per_test_case>`` keys logged by the trainer.
VAL_METRIC_RE = re.compile(r"^val/(mean|best)@(\d+)/(per_task|per_test_case)$")


def fractional_ranks(values: Sequence[float]) -> list[float]:
    """Ascending ranks 1..N of ``values``; tied values get the mean of the ranks they occupy.

    >>> fractional_ranks([0.2, 0.5, 0.5, 0.1])
    [2.0, 3.5, 3.5, 1.0]
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        shared = (i + j) / 2 + 1  # mean of the 1-based positions i+1 .. j+1
        for k in range(i, j + 1):
            ranks[order[k]] = shared
        i = j + 1
    return ranks


@dataclass(frozen=True)
class Candidate:
    """One validation step with its metric values, per-metric ranks and rank total."""

    step: int
    values: dict[str, float]
    ranks: dict[str, float]
    total_rank: float
    checkpoint: Path | None = None


@dataclass(frozen=True)
class Selection:
    """The chosen step, every ranked candidate (in step order) and the skipped rows with reasons."""

    best: Candidate
    candidates: list[Candidate]
    metrics: tuple[str, ...]
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def cand(c: Candidate) -> dict[str, Any]:
            return {
                "step": c.step,
                "values": c.values,
                "ranks": c.ranks,
                "total_rank": c.total_rank,
                "checkpoint": str(c.checkpoint) if c.checkpoint else None,
            }

        return {
            "metrics": list(self.metrics),
            "best": cand(self.best),
            "candidates": [cand(c) for c in self.candidates],
            "skipped": self.skipped,
        }


def detect_metrics(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The four ``val/{mean,best}@n/{per_task,per_test_case}`` keys present in ``rows``.

    Raises:
        ValueError: none found, or several sample counts ``n`` (then pass ``metrics`` explicitly).
    """
    keys = {k for row in rows for k in row if VAL_METRIC_RE.match(k)}
    ns = sorted({VAL_METRIC_RE.match(k).group(2) for k in keys})  # type: ignore[union-attr]
    if not ns:
        raise ValueError(
            "no validation metric of the form val/<mean|best>@<n>/<per_task|per_test_case> in the log; "
            "pass the metric names explicitly (--metrics)"
        )
    if len(ns) > 1:
        raise ValueError(f"validation metrics for several sample counts n={ns}; choose them with --metrics")
    n = ns[0]
    return tuple(f"val/{agg}@{n}/{acc}" for acc in ("per_task", "per_test_case") for agg in ("mean", "best"))


def select_checkpoint(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    *,
    saved_steps: Mapping[int, Path] | None = None,
    only_saved: bool = False,
) -> Selection:
    """Apply the rank rule (module docstring) to validation rows.

    Args:
        rows: metrics rows; only those with ``kind == "val"`` are used. Each needs an int ``step``.
        metrics: metric keys to rank on (default: :func:`detect_metrics`); higher is better for all.
        saved_steps: step -> checkpoint dir, attached to candidates (and filtering when ``only_saved``).
        only_saved: restrict the candidates to steps in ``saved_steps``.

    Raises:
        ValueError: no usable validation row, or bad ``metrics``.
    """
    val_rows = [r for r in rows if r.get("kind") == "val"]
    if not val_rows:
        raise ValueError('no validation rows (kind "val") to select from; did the run validate at all?')
    metric_keys = tuple(metrics) if metrics else detect_metrics(val_rows)
    if not metric_keys:
        raise ValueError("metrics is empty; give at least one metric key")
    saved = dict(saved_steps or {})
    by_step: dict[int, Mapping[str, Any]] = {}
    skipped: list[dict[str, Any]] = []
    for row in val_rows:
        step = row.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            skipped.append({"step": step, "reason": "step is not an integer"})
            continue
        by_step[step] = row  # a later row for the same step replaces the earlier one
    usable: list[tuple[int, dict[str, float]]] = []
    for step in sorted(by_step):
        row = by_step[step]
        if only_saved and step not in saved:
            skipped.append({"step": step, "reason": "no checkpoint saved at this step"})
            continue
        values: dict[str, float] = {}
        problem = None
        for key in metric_keys:
            value = row.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problem = f"metric {key!r} is missing or not a number ({value!r})"
                break
            if not math.isfinite(value):
                problem = f"metric {key!r} is not finite ({value!r})"
                break
            values[key] = float(value)
        if problem:
            skipped.append({"step": step, "reason": problem})
            continue
        usable.append((step, values))
    if not usable:
        reasons = "; ".join(f"step {s['step']}: {s['reason']}" for s in skipped[:5])
        raise ValueError(f"no validation row has all of {list(metric_keys)} ({reasons})")
    per_metric = {key: fractional_ranks([v[key] for _, v in usable]) for key in metric_keys}
    candidates = []
    for i, (step, values) in enumerate(usable):
        ranks = {key: per_metric[key][i] for key in metric_keys}
        candidates.append(Candidate(step, values, ranks, sum(ranks.values()), saved.get(step)))
    best = max(candidates, key=lambda c: (c.total_rank, sum(c.values.values()), -c.step))
    return Selection(best, candidates, metric_keys, skipped)


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of a JSON-lines file and the 1-based numbers of lines that were not JSON objects."""
    rows: list[dict[str, Any]] = []
    bad: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad.append(number)
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad.append(number)
    return rows, bad


def saved_checkpoints(run_dir: Path) -> dict[int, Path]:
    """``{step: path}`` for every ``RUN_DIR/checkpoints/step_<N>`` directory."""
    out = {}
    root = run_dir / "checkpoints"
    if root.is_dir():
        for path in root.iterdir():
            match = re.fullmatch(r"step_(\d+)", path.name)
            if match and path.is_dir():
                out[int(match.group(1))] = path
    return out


def select_from_run(run_dir: str | Path, metrics: Sequence[str] | None = None, *, only_saved: bool = False) -> Selection:
    """:func:`select_checkpoint` on ``RUN_DIR/metrics.jsonl`` with the run's saved checkpoints attached."""
    run = Path(run_dir)
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; pass a run directory written by resd-learn")
    rows, _bad = read_jsonl(path)
    return select_checkpoint(rows, metrics, saved_steps=saved_checkpoints(run), only_saved=only_saved)


def format_selection(selection: Selection) -> str:
    """A text table: one line per candidate, the winner marked with ``*``."""
    short = [m.removeprefix("val/") for m in selection.metrics]
    header = f"  {'step':>6} " + " ".join(f"{s:>24}" for s in short) + f" {'rank sum':>9}"
    lines = [header]
    for c in selection.candidates:
        mark = "*" if c.step == selection.best.step else " "
        cells = " ".join(f"{c.values[m]:>14.4f} (r{c.ranks[m]:>5.1f})" for m in selection.metrics)
        lines.append(f"{mark} {c.step:>6} {cells} {c.total_rank:>9.1f}")
    for s in selection.skipped:
        lines.append(f"  skipped step {s['step']}: {s['reason']}")
    where = f" ({selection.best.checkpoint})" if selection.best.checkpoint else " (no checkpoint saved at that step)"
    lines.append(f"selected step {selection.best.step}{where}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m resd_learner.selection RUN_DIR``: print the rank table and the chosen step."""
    parser = argparse.ArgumentParser(prog="python -m resd_learner.selection", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--metrics", nargs="+", default=None, help="metric keys (default: the four val/*@n/* keys)")
    parser.add_argument("--only-saved", action="store_true", help="choose only among steps with a saved checkpoint")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        selection = select_from_run(args.run_dir, args.metrics, only_saved=args.only_saved)
    except (ValueError, FileNotFoundError) as err:
        print(f"selection: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(selection.as_dict(), indent=2) if args.json else format_selection(selection))
    return 0


if __name__ == "__main__":
    sys.exit(main())
