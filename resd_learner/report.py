"""``resd-report RUN_DIR``: training-curve PNGs and a readable playbook history for one run.

Reads ``RUN_DIR/metrics.jsonl`` (rows ``{"step", "kind": "train"|"val", ...}``) and
``RUN_DIR/playbook_history.jsonl`` (events ``add``/``tag``/``remove``) and writes, into
``RUN_DIR/report/`` (or ``--out``):

- ``val_metrics.png``, ``reward.png``, ``loss.png``, ``playbook.png``, ``timings.png``: one figure
  per metric group, drawn only when the log has keys of that group;
- ``playbook_history.md`` and ``playbook_history.html``: per step, the entries added (with the
  reflection that caused each), tagged helpful/harmful (with the new counts) and removed (with the
  reason), then a table of every entry's life;
- ``index.md`` and ``index.html``: the figures, the rank-based checkpoint selection (when the run
  has validation rows) and links to the history.

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

from resd_learner.selection import format_selection, read_jsonl, saved_checkpoints, select_checkpoint

#: Figure file -> (title, key prefixes, row kind). Keys are the flat names L3's trainer logs.
FIGURES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "val_metrics.png": ("Validation accuracy", ("val/",), "val"),
    "reward.png": ("Rollout reward", ("rollout/",), "train"),
    "loss.png": ("Loss", ("loss/",), "train"),
    "playbook.png": ("Playbook and context updates", ("context/",), "train"),
    "timings.png": ("Phase timings (seconds per step)", ("time/",), "train"),
}

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
    """Put series whose magnitudes differ by >20x on separate panels, so small curves stay visible."""
    if len(data) <= 1:
        return [data]
    peaks = {k: max((abs(v) for v in vals), default=0.0) for k, (_, vals) in data.items()}
    top = max(peaks.values()) or 1.0
    big = {k: v for k, v in data.items() if peaks[k] * 20 >= top}
    small = {k: v for k, v in data.items() if k not in big}
    return [big, small] if small else [big]


def plot_group(data: dict[str, tuple[list[int], list[float]]], title: str, path: Path, *, best_step: int | None = None) -> None:
    """One PNG with a line per series (matplotlib Agg); panels split by scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = _split_scales(data)
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
            selection_text = format_selection(selection)
        except ValueError as err:
            notes.append(f"checkpoint selection not possible: {err}")

    figures = []
    for name, (title, prefixes, kind) in FIGURES.items():
        data = series(rows, kind, prefixes)
        if not data:
            notes.append(f"{name}: no {kind} keys starting with {', '.join(prefixes)}")
            continue
        plot_group(data, title, out / name, best_step=best_step if kind == "val" else None)
        figures.append(out / name)

    files = [out / "playbook_history.md", out / "playbook_history.html", out / "index.md", out / "index.html"]
    files[0].write_text(history_markdown(events), encoding="utf-8")
    files[1].write_text(history_html(events), encoding="utf-8")
    files[2].write_text(_index_markdown(run, figures, selection_text, notes), encoding="utf-8")
    files[3].write_text(_index_html(run, figures, selection_text, notes), encoding="utf-8")
    return ReportResult(out, figures, files, notes)


def _index_markdown(run: Path, figures: list[Path], selection_text: str, notes: list[str]) -> str:
    lines = [f"# Run report: {run.name}", ""]
    if selection_text:
        lines += ["## Checkpoint selection (rank rule, paper §4.1)", "", "```", selection_text, "```", ""]
    for fig in figures:
        lines += [f"## {FIGURES[fig.name][0]}", "", f"![{fig.stem}]({fig.name})", ""]
    lines += ["## Playbook", "", "[history (Markdown)](playbook_history.md) · [history (HTML)](playbook_history.html)", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _index_html(run: Path, figures: list[Path], selection_text: str, notes: list[str]) -> str:
    e = html.escape
    body = [f"<h1>Run report: {e(run.name)}</h1>"]
    if selection_text:
        body.append(f"<h2>Checkpoint selection (rank rule, paper §4.1)</h2><pre>{e(selection_text)}</pre>")
    for fig in figures:
        body.append(f"<h2>{e(FIGURES[fig.name][0])}</h2><img src='{e(fig.name)}' alt='{e(fig.stem)}'>")
    body.append("<h2>Playbook</h2><p><a href='playbook_history.html'>history</a></p>")
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    return _html_page(f"Run report: {run.name}", body)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``resd-report``; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="resd-report", description="Training curves and playbook history of a run.")
    parser.add_argument("run_dir", help="a run directory written by resd-learn")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR/report)")
    args = parser.parse_args(argv)
    if not Path(args.run_dir).is_dir():
        print(f"resd-report: error: {args.run_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        result = write_report(args.run_dir, args.out)
    except FileNotFoundError as err:
        print(f"resd-report: error: {err}", file=sys.stderr)
        return 2
    for path in result.figures + result.files:
        print(f"wrote {path}")
    for note in result.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
