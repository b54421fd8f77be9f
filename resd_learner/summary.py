"""The end-of-run summary: did the model learn? Start -> end score with a paired bootstrap CI.

Two pieces, each a one-line call from the trainer:

* :func:`record_val_scores` (in ``validate``) appends one line per validation to
  ``RUN_DIR/val_scores.jsonl``: the step, the validation prompt ids and each prompt's per-test-case
  mean@n. These per-prompt numbers are what a paired comparison needs (``metrics.jsonl`` keeps only
  the averages).
* :func:`print_run_summary` (at the end of ``fit``) reads ``val_scores.jsonl`` and ``metrics.jsonl``
  and prints, e.g.::

      == resd run summary: runs/quickstart ==
      held-out per-test-case mean@4 on 64 prompts: 0.180 (step 0) -> 0.262 (step 8)
        change +0.082, 95% paired bootstrap CI [+0.031, +0.133] (10000 resamples of the prompts)
      playbook: 5 entries
      reflections parsed: 32/32 (100%); curations parsed: 8/8 (100%)
      wall time: 11.4 min (since resd_learner was imported; model loading and warm start included)

The CI resamples validation prompts with replacement, keeping each prompt's (start, end) pair
together, and takes the 2.5 / 97.5 percentiles of the mean change (seeded: the same run gives the
same interval).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VAL_SCORES_FILE = "val_scores.jsonl"


def record_val_scores(
    run_dir: str | Path, step: int, task_ids: Sequence[str], per_test_case: Sequence[Sequence[float]]
) -> None:
    """Append one validation's per-prompt per-test-case mean@n to ``run_dir/val_scores.jsonl``.

    Args:
        per_test_case: one list of n sample scores per validation prompt, in ``task_ids`` order.
    """
    if len(task_ids) != len(per_test_case):
        raise ValueError(f"{len(task_ids)} task ids but {len(per_test_case)} score lists; pass one per prompt")
    means = [float(np.mean(scores)) if len(scores) else 0.0 for scores in per_test_case]
    n = max((len(scores) for scores in per_test_case), default=0)
    line = {"step": int(step), "n": n, "task_ids": [str(t) for t in task_ids], "mean_at_n": means}
    path = Path(run_dir) / VAL_SCORES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def paired_bootstrap(
    start: Sequence[float], end: Sequence[float], *, resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``end - start`` and its percentile bootstrap interval, resampling the pairs.

    Raises:
        ValueError: the two lists differ in length or are empty.
    """
    a, b = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty lists (got {a.size} and {b.size})")
    diff = b - a
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(diff.mean()), float(low), float(high)


@dataclass(frozen=True)
class RunSummary:
    """The numbers of the end-of-run summary (None where the run did not produce them)."""

    run_dir: str
    num_prompts: int
    n: int
    start_step: int | None
    end_step: int | None
    start_score: float | None
    end_score: float | None
    change: float | None
    ci_low: float | None
    ci_high: float | None
    playbook_size: int | None
    reflections: int
    reflections_malformed: int
    curations_applied: int
    curations_failed: int
    minutes: float | None
    reflections_echo: int = 0
    """Parsed reflections dropped because they only repeated the prompt's format example
    (``context.drop_template_echo``); they reach neither the curator text nor the teacher."""

    @property
    def reflection_parse_rate(self) -> float | None:
        return None if not self.reflections else 1.0 - self.reflections_malformed / self.reflections

    @property
    def curation_parse_rate(self) -> float | None:
        total = self.curations_applied + self.curations_failed
        return None if not total else self.curations_applied / total

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["reflection_parse_rate"] = self.reflection_parse_rate
        out["curation_parse_rate"] = self.curation_parse_rate
        return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash: skip it, the rest still summarises
    return out


def summarize_run(run_dir: str | Path, minutes: float | None = None, *, seed: int = 0) -> RunSummary:
    """Build the summary from the files of ``run_dir`` (first vs last validation, context totals)."""
    root = Path(run_dir)
    vals = _read_jsonl(root / VAL_SCORES_FILE)
    first, last = (vals[0], vals[-1]) if vals else (None, None)
    start = end = change = low = high = None
    prompts = n = 0
    if first is not None and last is not None:
        prompts, n = len(first["mean_at_n"]), int(last.get("n", 0))
        start, end = float(np.mean(first["mean_at_n"])), float(np.mean(last["mean_at_n"]))
        if len(vals) > 1 and first["task_ids"] == last["task_ids"]:
            change, low, high = paired_bootstrap(first["mean_at_n"], last["mean_at_n"], seed=seed)
    train = [r for r in _read_jsonl(root / "metrics.jsonl") if r.get("kind") == "train"]

    def total(key: str) -> int:
        return int(sum(float(r.get(f"context/{key}", 0) or 0) for r in train))

    sizes = [r["context/playbook_size"] for r in train if r.get("context/playbook_size") is not None]
    return RunSummary(
        run_dir=str(root), num_prompts=prompts, n=n,
        start_step=None if first is None else int(first["step"]),
        end_step=None if last is None else int(last["step"]),
        start_score=start, end_score=end, change=change, ci_low=low, ci_high=high,
        playbook_size=int(sizes[-1]) if sizes else None,
        reflections=total("reflections"), reflections_malformed=total("reflections_malformed"),
        curations_applied=total("curations_applied"), curations_failed=total("curations_failed"),
        minutes=minutes, reflections_echo=total("reflections_echo"),
    )


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100.0 * part / whole:.0f}%)" if whole else "none"


def format_summary(summary: RunSummary) -> str:
    """The printed summary (plain text, a few lines)."""
    lines = [f"== resd run summary: {summary.run_dir} =="]
    if summary.start_score is None or summary.end_score is None:
        lines.append("held-out score: no validation was recorded (train.val_before_train / val_after_train off?)")
    else:
        lines.append(
            f"held-out per-test-case mean@{summary.n} on {summary.num_prompts} prompts: "
            f"{summary.start_score:.3f} (step {summary.start_step}) -> {summary.end_score:.3f} (step {summary.end_step})"
        )
        if summary.change is not None:
            lines.append(
                f"  change {summary.change:+.3f}, 95% paired bootstrap CI [{summary.ci_low:+.3f}, {summary.ci_high:+.3f}] "
                "(10000 resamples of the prompts)"
            )
    if summary.playbook_size is not None:
        lines.append(f"playbook: {summary.playbook_size} entries")
    if summary.reflections or summary.curations_applied or summary.curations_failed:
        curations = summary.curations_applied + summary.curations_failed
        reflections = f"reflections parsed: {_pct(summary.reflections - summary.reflections_malformed, summary.reflections)}"
        if summary.reflections_echo:
            reflections += f", {summary.reflections_echo} of them dropped as echoes of the prompt's format example"
        curated = f"curations parsed: {_pct(summary.curations_applied, curations)}" if curations else "no curator call"
        lines.append(f"{reflections}; {curated}")
    if summary.minutes is not None:
        lines.append(f"wall time: {summary.minutes:.1f} min (since resd_learner was imported; model loading and "
                     "warm start included)")
    return "\n".join(lines)


def process_minutes() -> float:
    """Minutes since ``resd_learner`` was first imported in this interpreter (:data:`resd_learner.STARTED_AT`):
    the job's own time, interpreter start-up (well under a second) aside, and never the time of a shell
    that exec'd it."""
    import resd_learner

    return (time.time() - resd_learner.STARTED_AT) / 60.0


def print_run_summary(run_dir: str | Path) -> RunSummary:
    """Print the summary of ``run_dir`` and save it as ``run_dir/summary.json``; returns it."""
    summary = summarize_run(run_dir, process_minutes())
    print(format_summary(summary), flush=True)
    (Path(run_dir) / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    return summary
