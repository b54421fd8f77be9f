"""``resd-report RUN_DIR``: training-curve PNGs and a readable playbook history for one run
(``resd-report --compare RUN ... --out DIR`` compares several: :mod:`resd_learner.report_compare`).

Reads ``RUN_DIR/metrics.jsonl`` (rows ``{"step", "kind": "train"|"val", ...}``) and
``RUN_DIR/playbook_history.jsonl`` (events ``add``/``tag``/``remove``) and writes, into
``RUN_DIR/report/`` (or ``--out``):

- ``val_metrics.png``, ``reward.png``, ``loss.png``, ``playbook.png``, ``timings.png``: one figure
  per metric group, drawn only when the log has keys of that group;
- ``playbook_history.md`` and ``playbook_history.html``: per step, the entries added (with the
  reflection that caused each), tagged helpful/harmful (with the new counts) and removed (with the
  reason), then a table of every entry's life;
- ``index.md`` and ``index.html``: the figures, the rank-based checkpoint selection (when the run
  has validation rows), the outcomes of the recorded validation replies (``records/val_<N>.jsonl.gz``:
  how many passed, how many failed with each feedback head, per validation step), worked examples and
  links to the history.

All model text is escaped in HTML, and pipes/newlines are neutralised in Markdown tables.
"""

from __future__ import annotations

import argparse
import html
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resd_learner.records import read_records, read_validations, validation_outcomes
from resd_learner.selection import read_jsonl, saved_checkpoints, select_checkpoint

#: Figure file -> (title, key prefixes, row kind). Keys are the flat metric names the trainer logs.
FIGURES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "val_metrics.png": ("Validation accuracy", ("val/",), "val"),
    "reward.png": ("Rollout reward", ("rollout/",), "train"),
    "loss.png": ("Loss", ("loss/",), "train"),
    "playbook.png": ("Playbook and context updates", ("context/",), "train"),
    "timings.png": ("Phase timings (seconds per step)", ("time/",), "train"),
}

#: Context keys left out of ``playbook.png`` (cumulative totals repeat the per-step curves).
PLAYBOOK_CURVES_HIDDEN = ("context/total/",)
#: The bar chart of the most-tagged playbook entries, and how many it shows.
TOP_ENTRIES_FIGURE = "playbook_top_entries.png"
TOP_ENTRIES = 12
#: Characters of an entry's content in its bar label.
ENTRY_LABEL_CHARS = 70
#: Worked examples shown in the index, and the characters of each text shown.
WORKED_EXAMPLES = 3
EXAMPLE_CHARS = 600

#: Heading of the validation-outcome table in the index.
OUTCOMES_TITLE = "Validation replies by outcome (records/val_*.jsonl.gz)"
#: How ``_md_inline`` writes a pipe inside a Markdown table cell.
ESCAPED_PIPE = "\\|"

#: Longest reflection shown in full in the Markdown history (the HTML keeps everything, folded).
MD_REFLECTION_CHARS = 1200


# -- curves -------------------------------------------------------------------------------------
def series(rows: Sequence[Mapping[str, Any]], kind: str, prefixes: Sequence[str]) -> dict[str, tuple[list[int], list[float]]]:
    """``{key: (steps, values)}`` for numeric keys starting with one of ``prefixes`` in rows of ``kind``.

    Steps are sorted; a repeated step keeps its last value; non-finite values are dropped.
    """
    by_key: dict[str, dict[int, float]] = {}
    for row in rows:
        if row.get("kind") != kind or not isinstance(row.get("step"), int):
            continue
        for key, value in row.items():
            if not key.startswith(tuple(prefixes)) or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                by_key.setdefault(key, {})[row["step"]] = float(value)
    return {key: (sorted(points), [points[s] for s in sorted(points)]) for key, points in sorted(by_key.items())}


def _split_scales(data: dict[str, tuple[list[int], list[float]]]) -> list[dict[str, tuple[list[int], list[float]]]]:
    """Put series whose magnitudes differ by >20x on separate panels, so small curves stay visible.

    Series with no points are dropped, and so is any panel left empty (e.g. every series is 0).
    """
    data = {k: v for k, v in data.items() if v[0]}
    if len(data) <= 1:
        return [data] if data else []
    peaks = {k: max((abs(v) for v in vals), default=0.0) for k, (_, vals) in data.items()}
    top = max(peaks.values())
    if top == 0.0:
        return [data]
    big = {k: v for k, v in data.items() if peaks[k] * 20 >= top}
    small = {k: v for k, v in data.items() if k not in big}
    return [panel for panel in (big, small) if panel]


def plot_group(data: dict[str, tuple[list[int], list[float]]], title: str, path: Path, *, best_step: int | None = None) -> None:
    """One PNG with a line per series (matplotlib Agg); panels split by scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = _split_scales(data)
    if not panels:
        raise ValueError(f"plot_group({title!r}): no series with points to draw")
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.6 * len(panels)), squeeze=False, sharex=True)
    for ax, panel in zip(axes[:, 0], panels):
        for key, (steps, values) in panel.items():
            marker = "o" if len(steps) <= 30 else None
            ax.plot(steps, values, marker=marker, markersize=3, linewidth=1.4, label=key)
        if best_step is not None:
            ax.axvline(best_step, color="grey", linestyle="--", linewidth=1, label=f"selected step {best_step}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("step")
    axes[-1, 0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_top_entries(lives: Sequence["EntryLife"], path: Path, *, top: int = TOP_ENTRIES) -> list[str]:
    """Horizontal bars of helpful / harmful counts for the ``top`` most-tagged entries; returns their ids.

    Each bar is labelled with the entry id and the first :data:`ENTRY_LABEL_CHARS` characters of its
    content on one line; entries removed from the playbook are marked "(removed)".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted((life for life in lives if life.helpful or life.harmful),
                    key=lambda life: (-(life.helpful + life.harmful), -life.helpful, life.entry_id))[:top]
    if not ranked:
        raise ValueError("plot_top_entries: no entry has a helpful or harmful tag")
    labels = []
    for life in ranked:
        text = " ".join(life.content.split())
        text = text if len(text) <= ENTRY_LABEL_CHARS else text[: ENTRY_LABEL_CHARS - 1] + "…"
        gone = " (removed)" if life.removed_step is not None else ""
        labels.append(f"[{life.entry_id}]{gone} {text}")
    rows = list(range(len(ranked)))[::-1]  # most tagged on top
    fig, ax = plt.subplots(figsize=(12, max(3.0, 0.45 * len(ranked) + 1.2)))
    ax.barh(rows, [life.helpful for life in ranked], color="#1a7f37", label="helpful")
    ax.barh(rows, [life.harmful for life in ranked], left=[life.helpful for life in ranked], color="#b42318",
            label="harmful")
    ax.set_yticks(rows, labels, fontsize=8)
    ax.set_xlabel("tags")
    ax.set_title(f"Most-tagged playbook entries (top {len(ranked)})")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [life.entry_id for life in ranked]


def selection_table(selection: Any) -> str:
    """The rank table of a checkpoint selection, one line per validation step.

    Columns: the metric values with their ranks, the rank sum, ``tie`` when another step has the same
    rank sum (the winner is then the one with the larger sum of raw values, then the earlier step), and
    whether a checkpoint was saved at that step. When the selected step has no checkpoint, the line
    after the table names the best step that has one.
    """
    short = [m.removeprefix("val/") for m in selection.metrics]
    totals = [c.total_rank for c in selection.candidates]
    lines = [f"  {'step':>6} " + " ".join(f"{s:>24}" for s in short) + f" {'rank sum':>9}  tie  checkpoint"]
    for c in selection.candidates:
        mark = "*" if c.step == selection.best.step else " "
        cells = " ".join(f"{c.values[m]:>14.4f} (r{c.ranks[m]:>5.1f})" for m in selection.metrics)
        tie = "tie" if totals.count(c.total_rank) > 1 else "   "
        saved = "saved" if c.checkpoint else "not saved"
        lines.append(f"{mark} {c.step:>6} {cells} {c.total_rank:>9.1f}  {tie}  {saved}")
    for skipped in selection.skipped:
        lines.append(f"  skipped step {skipped['step']}: {skipped['reason']}")
    best = selection.best
    if best.checkpoint:
        lines.append(f"selected step {best.step} ({best.checkpoint})")
    else:
        saved = sorted((c for c in selection.candidates if c.checkpoint),
                       key=lambda c: (-c.total_rank, -sum(c.values.values()), c.step))
        fallback = (f"; the best step with a checkpoint is {saved[0].step} ({saved[0].checkpoint})" if saved
                    else "; no validated step has a checkpoint")
        lines.append(f"selected step {best.step} (no checkpoint saved at that step){fallback}")
    return "\n".join(lines)


def outcomes_table(outcomes: Mapping[int, Mapping[str, int]]) -> str:
    """Markdown table of :func:`resd_learner.records.validation_outcomes`: one row per outcome ("passed",
    then the feedback heads by their count at the first step), one column per validation step, each cell
    ``count (share %)`` of that step's replies ("" when there are none)."""
    steps = sorted(outcomes)
    if not steps:
        return ""
    heads: list[str] = []
    for step in steps:
        heads += [h for h in outcomes[step] if h not in heads]
    heads.sort(key=lambda h: (h != "passed", -outcomes[steps[0]].get(h, 0)))
    totals = {step: sum(outcomes[step].values()) for step in steps}
    lines = ["| outcome | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
    for head in heads:
        cells = [f"{outcomes[s].get(head, 0)} ({100.0 * outcomes[s].get(head, 0) / totals[s]:.0f} %)" if totals[s]
                 else "" for s in steps]
        lines.append(f"| {_md_inline(head)} | " + " | ".join(cells) + " |")
    lines.append("| replies | " + " | ".join(str(totals[s]) for s in steps) + " |")
    return "\n".join(lines)


@dataclass
class WorkedExample:
    """A failed attempt, its reflection, the playbook entries it produced and the next attempt."""

    step: int
    example_id: str
    response: str
    reward: float
    feedback: str
    reflection: str
    entries: list[tuple[str, str]]
    """(entry id, content) of the entries the reflection's curation added."""
    next_step: int | None = None
    next_response: str = ""
    next_reward: float | None = None


def worked_examples(steps: Sequence[Any], *, limit: int = WORKED_EXAMPLES) -> list[WorkedExample]:
    """Up to ``limit`` failures (from ``resd_learner.records.read_records``) whose curation added an entry.

    Failures that have a later attempt at the same prompt come first, then the earliest; the next
    attempt is the first rollout of that prompt at a later step.
    """
    found: list[WorkedExample] = []
    for index, rec in enumerate(steps):
        rollouts = {(r["example_id"], r["group_index"]): r for r in rec.rollouts}
        reflections = {(c["example_id"], c["group_index"]): c for c in rec.context if c.get("kind") == "reflection"}
        for cur in rec.context:
            if cur.get("kind") != "curation" or not cur.get("added"):
                continue
            key = (cur["example_id"], cur["group_index"])
            rollout, reflection = rollouts.get(key), reflections.get(key)
            if rollout is None:
                continue
            contents = {op.get("content", "") for op in cur.get("operations", [])}
            example = WorkedExample(rec.step, key[0], rollout["response"], rollout["reward"], rollout["feedback"],
                                    reflection["text"] if reflection else "",
                                    [(i, _entry_content(rec.playbook, i, contents)) for i in cur["added"]])
            for later in steps[index + 1:]:
                again = [r for r in later.rollouts if r["example_id"] == key[0]]
                if again:
                    example.next_step, example.next_response = later.step, again[0]["response"]
                    example.next_reward = again[0]["reward"]
                    break
            found.append(example)
    found.sort(key=lambda ex: (ex.next_step is None, ex.step))
    return found[:limit]


def _entry_content(playbook: str | None, entry_id: str, proposed: set[str]) -> str:
    """The entry's line in the step's playbook (after the id), else the proposed content(s)."""
    for line in (playbook or "").splitlines():
        if f"[{entry_id}]" in line:
            return line.split(f"[{entry_id}]", 1)[1].strip()
    return " / ".join(sorted(proposed))


def _clip(text: str, limit: int = EXAMPLE_CHARS) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit] + f" [... {len(text) - limit} more characters]"


def _fenced(text: str) -> list[str]:
    fence = "`" * 3
    return [fence, _clip(text).replace(fence, "'" * 3), fence]


def examples_markdown(examples: Sequence[WorkedExample]) -> list[str]:
    lines: list[str] = []
    for n, ex in enumerate(examples, 1):
        lines += [f"### Example {n}: prompt `{_md_inline(ex.example_id)}`, step {ex.step}", "",
                  f"**Attempt** (reward {ex.reward:g}):", "", *_fenced(ex.response), "",
                  f"**Feedback**: {_md_inline(_clip(ex.feedback))}", "",
                  f"**Reflection**: {_md_inline(_clip(ex.reflection)) or '(empty)'}", "",
                  "**Playbook entries added**:"]
        lines += [f"- `{_md_inline(i)}` {_md_inline(c)}" for i, c in ex.entries]
        if ex.next_step is None:
            lines += ["", "**Next attempt**: the prompt was not seen again in this run.", ""]
        else:
            lines += ["", f"**Next attempt** (step {ex.next_step}, reward {ex.next_reward:g}):", "",
                      *_fenced(ex.next_response), ""]
    return lines


def examples_html(examples: Sequence[WorkedExample]) -> list[str]:
    e = html.escape
    body: list[str] = []
    for n, ex in enumerate(examples, 1):
        body.append(f"<h3>Example {n}: prompt <code>{e(ex.example_id)}</code>, step {ex.step}</h3>")
        body.append(f"<p><b>Attempt</b> (reward {ex.reward:g}):</p><pre>{e(_clip(ex.response))}</pre>")
        body.append(f"<p><b>Feedback</b>:</p><pre>{e(_clip(ex.feedback))}</pre>")
        body.append(f"<p><b>Reflection</b>:</p><pre>{e(_clip(ex.reflection)) or '(empty)'}</pre>")
        body.append("<p><b>Playbook entries added</b>:</p><ul>"
                    + "".join(f"<li><code>{e(i)}</code> {e(c)}</li>" for i, c in ex.entries) + "</ul>")
        if ex.next_step is None:
            body.append("<p><b>Next attempt</b>: the prompt was not seen again in this run.</p>")
        else:
            body.append(f"<p><b>Next attempt</b> (step {ex.next_step}, reward {ex.next_reward:g}):</p>"
                        f"<pre>{e(_clip(ex.next_response))}</pre>")
    return body


# -- playbook history ---------------------------------------------------------------------------
@dataclass
class EntryLife:
    """What happened to one playbook entry over the run."""

    entry_id: str
    section: str = ""
    content: str = ""
    added_step: int | None = None
    removed_step: int | None = None
    removed_reason: str = ""
    helpful: int = 0
    harmful: int = 0


def entry_lives(events: Sequence[Mapping[str, Any]]) -> list[EntryLife]:
    """Fold the event stream into one :class:`EntryLife` per entry id, in order of first appearance."""
    lives: dict[str, EntryLife] = {}
    for ev in events:
        entry_id = str(ev.get("entry_id", "?"))
        life = lives.setdefault(entry_id, EntryLife(entry_id))
        life.section = str(ev.get("section") or life.section)
        life.content = str(ev.get("content") or life.content)
        kind = ev.get("event")
        if kind == "add":
            life.added_step = ev.get("step")
        elif kind == "tag":
            life.helpful = int(ev.get("helpful", life.helpful) or 0)
            life.harmful = int(ev.get("harmful", life.harmful) or 0)
        elif kind == "remove":
            life.removed_step = ev.get("step")
            life.removed_reason = str(ev.get("reason", ""))
    return list(lives.values())


def _by_step(events: Sequence[Mapping[str, Any]]) -> list[tuple[Any, list[Mapping[str, Any]]]]:
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for ev in events:
        groups.setdefault(ev.get("step"), []).append(ev)
    return sorted(groups.items(), key=lambda kv: (not isinstance(kv[0], int), kv[0] if isinstance(kv[0], int) else 0))


def _md_inline(text: Any) -> str:
    """One-line Markdown-safe text: newlines folded, table pipes and backticks neutralised."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("`", "'")


def _tag_counts(ev: Mapping[str, Any]) -> str:
    parts = [f"{k}={ev[k]}" for k in ("helpful", "harmful") if k in ev]
    return f" ({', '.join(parts)})" if parts else ""


def history_markdown(events: Sequence[Mapping[str, Any]]) -> str:
    """The playbook history as Markdown (see module docstring)."""
    lines = ["# Playbook history", ""]
    if not events:
        return "\n".join(lines + ["No playbook events were logged in this run.", ""])
    counts = {k: sum(1 for e in events if e.get("event") == k) for k in ("add", "tag", "remove")}
    lines += [f"{counts['add']} entries added, {counts['tag']} tag events, {counts['remove']} entries removed.", ""]
    for step, group in _by_step(events):
        lines += [f"## Step {step}", ""]
        for ev in group:
            kind = ev.get("event")
            ident = _md_inline(ev.get("entry_id", "?"))
            section = _md_inline(ev.get("section", ""))
            content = _md_inline(ev.get("content", ""))
            if kind == "add":
                lines.append(f"- **added** `{ident}` in *{section}*: {content}")
                reflection = str(ev.get("reflection") or "").strip()
                if reflection:
                    shown = reflection if len(reflection) <= MD_REFLECTION_CHARS else (
                        reflection[:MD_REFLECTION_CHARS] + f" [... {len(reflection) - MD_REFLECTION_CHARS} more characters]"
                    )
                    quoted = "\n".join("  > " + line.replace("`", "'") for line in shown.splitlines())
                    lines += ["  - caused by the reflection:", quoted]
            elif kind == "tag":
                lines.append(f"- **tagged {_md_inline(ev.get('tag', '?'))}** `{ident}`{_tag_counts(ev)}: {content}")
            elif kind == "remove":
                lines.append(f"- **removed** `{ident}` ({_md_inline(ev.get('reason', 'no reason given'))}): {content}")
            else:
                lines.append(f"- event {_md_inline(kind)!s} on `{ident}`: {content}")
        lines.append("")
    lines += ["## Every entry", "", "| id | section | added | removed (reason) | helpful | harmful | content |",
              "|---|---|---|---|---|---|---|"]
    for life in entry_lives(events):
        removed = "" if life.removed_step is None else f"{life.removed_step} ({_md_inline(life.removed_reason)})"
        added = "" if life.added_step is None else str(life.added_step)
        lines.append(
            f"| `{_md_inline(life.entry_id)}` | {_md_inline(life.section)} | {added} | {removed} | "
            f"{life.helpful} | {life.harmful} | {_md_inline(life.content)} |"
        )
    return "\n".join(lines) + "\n"


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}"
    ".add{color:#1a7f37}.remove{color:#b42318}.tag{color:#6e40c9}pre{white-space:pre-wrap;background:#f6f8fa;padding:6px}"
)


def _html_page(title: str, body: list[str]) -> str:
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def history_html(events: Sequence[Mapping[str, Any]]) -> str:
    """The playbook history as a standalone HTML page; every piece of logged text is escaped."""
    e = html.escape
    body = ["<h1>Playbook history</h1>"]
    if not events:
        return _html_page("Playbook history", body + ["<p>No playbook events were logged in this run.</p>"])
    for step, group in _by_step(events):
        body.append(f"<h2>Step {e(str(step))}</h2><ul>")
        for ev in group:
            kind = str(ev.get("event", "?"))
            ident = e(str(ev.get("entry_id", "?")))
            content = e(str(ev.get("content", "")))
            if kind == "add":
                item = f"<li><b class='add'>added</b> <code>{ident}</code> in <i>{e(str(ev.get('section', '')))}</i>: {content}"
                reflection = str(ev.get("reflection") or "").strip()
                if reflection:
                    item += f"<details><summary>reflection that caused it</summary><pre>{e(reflection)}</pre></details>"
                body.append(item + "</li>")
            elif kind == "tag":
                body.append(
                    f"<li><b class='tag'>tagged {e(str(ev.get('tag', '?')))}</b> <code>{ident}</code>"
                    f"{e(_tag_counts(ev))}: {content}</li>"
                )
            elif kind == "remove":
                body.append(
                    f"<li><b class='remove'>removed</b> <code>{ident}</code> "
                    f"({e(str(ev.get('reason', 'no reason given')))}): {content}</li>"
                )
            else:
                body.append(f"<li>event {e(kind)} on <code>{ident}</code>: {content}</li>")
        body.append("</ul>")
    body.append("<h2>Every entry</h2><table><tr><th>id</th><th>section</th><th>added</th><th>removed (reason)</th>"
                "<th>helpful</th><th>harmful</th><th>content</th></tr>")
    for life in entry_lives(events):
        removed = "" if life.removed_step is None else f"{life.removed_step} ({life.removed_reason})"
        added = "" if life.added_step is None else str(life.added_step)
        body.append(
            f"<tr><td><code>{e(life.entry_id)}</code></td><td>{e(life.section)}</td><td>{e(added)}</td>"
            f"<td>{e(removed)}</td><td>{life.helpful}</td><td>{life.harmful}</td><td>{e(life.content)}</td></tr>"
        )
    body.append("</table>")
    return _html_page("Playbook history", body)


# -- the whole report ---------------------------------------------------------------------------
@dataclass
class ReportResult:
    """Paths written and notes (e.g. unreadable lines, missing groups)."""

    out_dir: Path
    figures: list[Path]
    files: list[Path]
    notes: list[str]


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> ReportResult:
    """Write every figure and page for ``run_dir`` (see module docstring).

    Raises:
        FileNotFoundError: ``run_dir`` has neither ``metrics.jsonl`` nor ``playbook_history.jsonl``.
    """
    run = Path(run_dir)
    metrics_path = run / "metrics.jsonl"
    history_path = run / "playbook_history.jsonl"
    if not metrics_path.is_file() and not history_path.is_file():
        raise FileNotFoundError(
            f"{run} has neither metrics.jsonl nor playbook_history.jsonl; pass a run directory written by resd-learn"
        )
    out = Path(out_dir) if out_dir else run / "report"
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    if metrics_path.is_file():
        rows, bad = read_jsonl(metrics_path)
        if bad:
            notes.append(f"metrics.jsonl: skipped {len(bad)} unreadable line(s): {bad[:10]}")
    else:
        notes.append("no metrics.jsonl: no curves")
    if history_path.is_file():
        events, bad = read_jsonl(history_path)
        if bad:
            notes.append(f"playbook_history.jsonl: skipped {len(bad)} unreadable line(s): {bad[:10]}")
    else:
        notes.append("no playbook_history.jsonl: the run logged no playbook (context updater off?)")

    selection_text = ""
    best_step = None
    if any(r.get("kind") == "val" for r in rows):
        try:
            selection = select_checkpoint(rows, saved_steps=saved_checkpoints(run))
            best_step = selection.best.step
            selection_text = selection_table(selection)
        except ValueError as err:
            notes.append(f"checkpoint selection not possible: {err}")

    figures = []
    for name, (title, prefixes, kind) in FIGURES.items():
        data = series(rows, kind, prefixes)
        if name == "playbook.png":
            data = {k: v for k, v in data.items() if not k.startswith(PLAYBOOK_CURVES_HIDDEN)}
        if not _split_scales(data):
            notes.append(f"{name}: no {kind} keys starting with {', '.join(prefixes)}")
            continue
        plot_group(data, title, out / name, best_step=best_step if kind == "val" else None)
        figures.append(out / name)
    lives = entry_lives(events)
    if any(life.helpful or life.harmful for life in lives):
        plot_top_entries(lives, out / TOP_ENTRIES_FIGURE)
        figures.append(out / TOP_ENTRIES_FIGURE)
    elif events:
        notes.append(f"{TOP_ENTRIES_FIGURE}: no entry was ever tagged helpful or harmful")

    examples: list[WorkedExample] = []
    outcomes_text = ""
    try:
        examples = worked_examples(read_records(run))
        outcomes_text = outcomes_table(validation_outcomes(read_validations(run)))
    except ValueError as err:
        notes.append(f"records: {err}")
    if not examples:
        notes.append("no worked examples: the run has no records/ of a failure whose curation added an entry")
    files = [out / "playbook_history.md", out / "playbook_history.html", out / "index.md", out / "index.html"]
    files[0].write_text(history_markdown(events), encoding="utf-8")
    files[1].write_text(history_html(events), encoding="utf-8")
    files[2].write_text(_index_markdown(run, figures, selection_text, notes, examples, outcomes_text),
                        encoding="utf-8")
    files[3].write_text(_index_html(run, figures, selection_text, notes, examples, outcomes_text), encoding="utf-8")
    return ReportResult(out, figures, files, notes)


def _figure_title(fig: Path) -> str:
    return "Most-tagged playbook entries" if fig.name == TOP_ENTRIES_FIGURE else FIGURES[fig.name][0]


def _index_markdown(run: Path, figures: list[Path], selection_text: str, notes: list[str],
                    examples: Sequence[WorkedExample] = (), outcomes_text: str = "") -> str:
    lines = [f"# Run report: {run.name}", ""]
    if selection_text:
        lines += ["## Checkpoint selection (rank rule, paper §4.1)", "", "```", selection_text, "```", ""]
    if outcomes_text:
        lines += [f"## {OUTCOMES_TITLE}", "", outcomes_text, ""]
    for fig in figures:
        lines += [f"## {_figure_title(fig)}", "", f"![{fig.stem}]({fig.name})", ""]
    lines += ["## Playbook", "", "[history (Markdown)](playbook_history.md) · [history (HTML)](playbook_history.html)", ""]
    if examples:
        lines += ["## Worked examples", ""] + examples_markdown(examples)
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _index_html(run: Path, figures: list[Path], selection_text: str, notes: list[str],
                examples: Sequence[WorkedExample] = (), outcomes_text: str = "") -> str:
    e = html.escape
    body = [f"<h1>Run report: {e(run.name)}</h1>"]
    if selection_text:
        body.append(f"<h2>Checkpoint selection (rank rule, paper §4.1)</h2><pre>{e(selection_text)}</pre>")
    if outcomes_text:
        body.append(f"<h2>{e(OUTCOMES_TITLE)}</h2>" + _markdown_table_html(outcomes_text))
    for fig in figures:
        body.append(f"<h2>{e(_figure_title(fig))}</h2><img src='{e(fig.name)}' alt='{e(fig.stem)}'>")
    body.append("<h2>Playbook</h2><p><a href='playbook_history.html'>history</a></p>")
    if examples:
        body += ["<h2>Worked examples</h2>"] + examples_html(examples)
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    return _html_page(f"Run report: {run.name}", body)


def _markdown_table_html(table: str) -> str:
    """An HTML table of a Markdown table written by this module (cells escaped; the separator row dropped)."""
    rows = [line.strip().strip("|").split(" | ") for line in table.splitlines() if not line.startswith("|---")]
    head, body = rows[0], rows[1:]
    cells = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    out = [f"<table><tr>{cells}</tr>"]
    for row in body:
        out.append("<tr>" + "".join(f"<td>{html.escape(c.strip().replace(ESCAPED_PIPE, '|'))}</td>" for c in row)
                   + "</tr>")
    return "".join(out) + "</table>"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``resd-report``; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="resd-report", description="Training curves and playbook history of a run.")
    parser.add_argument("run_dir", nargs="+", help="a run directory written by resd-learn (several with --compare)")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR/report)")
    parser.add_argument("--compare", action="store_true",
                        help="draw the runs on shared axes and tabulate their summaries (resd_learner.report_compare); "
                             "needs --out")
    args = parser.parse_args(argv)
    missing = [d for d in args.run_dir if not Path(d).is_dir()]
    if missing:
        print(f"resd-report: error: {missing[0]} is not a directory", file=sys.stderr)
        return 2
    if args.compare and not args.out:
        print("resd-report: error: --compare needs --out DIR for the comparison files", file=sys.stderr)
        return 2
    if not args.compare and len(args.run_dir) > 1:
        print("resd-report: error: several run directories need --compare (and --out)", file=sys.stderr)
        return 2
    from resd_learner.report_compare import write_comparison

    try:
        if args.compare:
            written, notes = write_comparison(args.run_dir, args.out), []
        else:
            result = write_report(args.run_dir[0], args.out)
            written, notes = result.figures + result.files, result.notes
    except FileNotFoundError as err:
        print(f"resd-report: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
