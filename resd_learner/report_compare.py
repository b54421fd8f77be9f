"""``resd-report --compare RUN [RUN ...]``: several runs on one set of axes, and their summary table.

Runs are grouped by method: a run directory named ``<method>_s<seed>`` (as ``benchmarks/learning_cpu.py``
writes them) belongs to ``<method>``; any other name is its own group. Writes into ``--out``:

- ``compare_val.png``: the held-out per-test-case mean@n of every run against the optimizer step (thin
  lines), with each group's mean over its runs (thick line) where a group has several;
- ``compare_reward.png``: the training rollout reward per step, the same way;
- ``compare.md``: one row per run from its ``summary.json`` (start -> end, change, 95 % paired
  bootstrap CI, playbook size, parse rate, minutes), then each group's mean change over runs, then
  the pooled table (:func:`pooled_table`): per method, the per-prompt scores averaged over its seeds,
  start -> end with a paired bootstrap CI over the prompts, and the end score's difference from the
  first method's on the same prompts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resd_learner.selection import read_jsonl
from resd_learner.summary import VAL_SCORES_FILE, paired_bootstrap

_SEEDED = re.compile(r"^(?P<group>.+)_s(?P<seed>\d+)$")
VAL_PREFIX = "val/mean@"
VAL_SUFFIX = "/per_test_case"
REWARD_KEY = "rollout/reward_mean"


def group_of(run: Path) -> str:
    """The method a run directory belongs to (its name without a ``_s<seed>`` suffix)."""
    match = _SEEDED.match(run.name)
    return match.group("group") if match else run.name


def val_curve(rows: Sequence[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """(steps, held-out per-test-case mean@n) from a run's metrics rows (the first mean@n key found)."""
    points: dict[int, float] = {}
    for row in rows:
        if row.get("kind") != "val":
            continue
        for key, value in row.items():
            if key.startswith(VAL_PREFIX) and key.endswith(VAL_SUFFIX) and isinstance(value, (int, float)):
                points[int(row["step"])] = float(value)
    return sorted(points), [points[s] for s in sorted(points)]


def reward_curve(rows: Sequence[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """(steps, rollout reward mean) from a run's training rows."""
    points = {int(r["step"]): float(r[REWARD_KEY]) for r in rows
              if r.get("kind") == "train" and isinstance(r.get(REWARD_KEY), (int, float))}
    return sorted(points), [points[s] for s in sorted(points)]


def _mean_curve(curves: list[tuple[list[int], list[float]]]) -> tuple[list[int], list[float]]:
    """Pointwise mean over the steps every curve has."""
    common = sorted(set.intersection(*(set(steps) for steps, _ in curves))) if curves else []
    lookup = [dict(zip(steps, values)) for steps, values in curves]
    return common, [sum(d[s] for d in lookup) / len(lookup) for s in common]


def _plot(curves: dict[str, list[tuple[list[int], list[float]]]], title: str, ylabel: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for index, (group, runs) in enumerate(sorted(curves.items())):
        color = f"C{index % 10}"
        for steps, values in runs:
            ax.plot(steps, values, color=color, linewidth=0.8, alpha=0.45 if len(runs) > 1 else 1.0,
                    marker="o", markersize=3, label=None if len(runs) > 1 else group)
        if len(runs) > 1:
            steps, values = _mean_curve(runs)
            ax.plot(steps, values, color=color, linewidth=2.4, label=f"{group} (mean of {len(runs)})")
    ax.set_title(title)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if not isinstance(value, (int, float)) or not math.isfinite(value) else format(value, fmt)


def summary_table(runs: Sequence[Path]) -> str:
    """Markdown: a row per run from ``summary.json`` (runs without one are listed as unfinished)."""
    lines = ["| method | run | start | end | change | 95% paired bootstrap CI | prompts | playbook | "
             "reflections parsed | minutes |", "|---|---|---|---|---|---|---|---|---|---|"]
    changes: dict[str, list[float]] = {}
    for run in runs:
        path = run / "summary.json"
        if not path.is_file():
            lines.append(f"| {group_of(run)} | {run.name} | unfinished (no summary.json) | | | | | | | |")
            continue
        s = json.loads(path.read_text(encoding="utf-8"))
        ci = ("n/a" if s.get("ci_low") is None
              else f"[{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]")
        parse = s.get("reflection_parse_rate")
        lines.append(
            f"| {group_of(run)} | {run.name} | {_cell(s.get('start_score'), '.3f')} | {_cell(s.get('end_score'), '.3f')} | "
            f"{_cell(s.get('change'), '+.3f')} | {ci} | {s.get('num_prompts', 'n/a')} | "
            f"{s.get('playbook_size') if s.get('playbook_size') is not None else '-'} | "
            f"{'-' if parse is None else f'{100 * parse:.0f}%'} | {_cell(s.get('minutes'), '.1f')} |")
        if isinstance(s.get("change"), (int, float)):
            changes.setdefault(group_of(run), []).append(float(s["change"]))
    multi = {g: c for g, c in changes.items() if len(c) > 1}
    if multi:
        lines += ["", "| method | runs | mean change | sd |", "|---|---|---|---|"]
        for group, values in sorted(multi.items()):
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            lines.append(f"| {group} | {len(values)} | {mean:+.3f} | {sd:.3f} |")
    return "\n".join(lines) + "\n"


def _first_and_last_validation(run: Path) -> tuple[dict[str, float], dict[str, float]] | None:
    """Per-prompt mean@n at a run's first and last validation (``val_scores.jsonl``), keyed by task id."""
    path = run / VAL_SCORES_FILE
    if not path.is_file():
        return None
    rows, _bad = read_jsonl(path)
    rows = [r for r in rows if isinstance(r.get("step"), int) and isinstance(r.get("task_ids"), list)
            and isinstance(r.get("mean_at_n"), list) and len(r["task_ids"]) == len(r["mean_at_n"])]
    if len(rows) < 2:  # malformed lines are skipped, as metrics.jsonl's are
        return None
    rows.sort(key=lambda r: r["step"])
    first, last = rows[0], rows[-1]
    return (dict(zip(first["task_ids"], map(float, first["mean_at_n"]))),
            dict(zip(last["task_ids"], map(float, last["mean_at_n"]))))


def pooled_table(runs: Sequence[Path], *, resamples: int = 10_000) -> str:
    """Markdown: each method's seeds pooled per prompt, and each method against the first one.

    For a method, a prompt's start (end) score is the mean over the method's runs of its first (last)
    validation score on that prompt, over the prompts every run of every method validated on. The CI
    of the change resamples those prompts (paired), so it covers prompt sampling with the seeds
    averaged in; the spread over seeds is the ``sd`` of the table above. ``end - <first>`` is the
    per-prompt end score minus the first method's (in ``runs`` order), with the same kind of CI.
    Empty when no run has two validations saved, or the runs share no validation prompt.
    """
    per_group: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {}
    for run in runs:
        scores = _first_and_last_validation(run)
        if scores is not None:
            per_group.setdefault(group_of(run), []).append(scores)
    if not per_group:
        return ""
    shared = set.intersection(*(set(s) & set(e) for runs_ in per_group.values() for s, e in runs_))
    if not shared:
        return ""
    prompts = sorted(shared)

    def pooled(runs_: list[tuple[dict[str, float], dict[str, float]]], which: int) -> list[float]:
        return [sum(r[which][p] for r in runs_) / len(runs_) for p in prompts]

    groups = list(per_group)
    reference = groups[0]
    ref_end = pooled(per_group[reference], 1)
    lines = ["", f"Pooled over seeds, on the {len(prompts)} prompts every run validated on (95% CI: paired "
             "bootstrap over prompts, seeds averaged per prompt):", "",
             f"| method | runs | start | end | change | 95% CI | end - {reference} | 95% CI |",
             "|---|---|---|---|---|---|---|---|"]
    for group in groups:
        start, end = pooled(per_group[group], 0), pooled(per_group[group], 1)
        change, low, high = paired_bootstrap(start, end, resamples=resamples)
        if group == reference:
            versus = "- | -"
        else:
            diff, d_low, d_high = paired_bootstrap(ref_end, end, resamples=resamples)
            versus = f"{diff:+.3f} | [{d_low:+.3f}, {d_high:+.3f}]"
        lines.append(f"| {group} | {len(per_group[group])} | {sum(start) / len(start):.3f} | "
                     f"{sum(end) / len(end):.3f} | {change:+.3f} | [{low:+.3f}, {high:+.3f}] | {versus} |")
    return "\n".join(lines) + "\n"


def write_comparison(runs: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Write the comparison figures and table for ``runs``; returns the files written.

    Raises:
        FileNotFoundError: a run directory lacks ``metrics.jsonl``.
    """
    paths = [Path(r) for r in runs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    val: dict[str, list[tuple[list[int], list[float]]]] = {}
    reward: dict[str, list[tuple[list[int], list[float]]]] = {}
    for run in paths:
        metrics = run / "metrics.jsonl"
        if not metrics.is_file():
            raise FileNotFoundError(f"{run} has no metrics.jsonl; is it a resd-learn run directory?")
        rows, _bad_lines = read_jsonl(metrics)  # a torn last line (crash) is skipped, as resd-report does
        for store, curve in ((val, val_curve(rows)), (reward, reward_curve(rows))):
            if curve[0]:
                store.setdefault(group_of(run), []).append(curve)
    written = []
    if val:
        _plot(val, "Held-out per-test-case mean@n", "score", out / "compare_val.png")
        written.append(out / "compare_val.png")
    if reward:
        _plot(reward, "Training rollout reward", "reward", out / "compare_reward.png")
        written.append(out / "compare_reward.png")
    (out / "compare.md").write_text(summary_table(paths) + pooled_table(paths), encoding="utf-8")
    written.append(out / "compare.md")
    return written
