"""The console summary of a :class:`~resd_envs.fidelity.report.FidelityReport`."""

from __future__ import annotations

import json
from typing import Any

from resd_envs.fidelity.report import Check, FidelityReport

#: Disagreements and malformed rows printed before "... and N more".
LIST_LIMIT = 10


def _cut(value: Any, limit: int = 110) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_table(report: FidelityReport) -> str:
    """Per-group counts (and BouncingSim error statistics) as an aligned text table."""
    report.summarize()
    has_errors = any("error_mean" in g for g in report.groups.values())
    head = ["group", "checks", "agree", "known", "DISAGREE", "agreement"]
    if has_errors:
        head += ["err mean", "median", "p95", "max"]
    lines = [head]
    for name, g in sorted(report.groups.items()):
        cells = [name, str(g["checks"]), str(g["agree"]), str(g["known"]), str(g["disagree"]),
                 f"{100 * g['agreement']:.2f}%"]
        if has_errors:
            cells += [f"{g.get(k, 0.0):.2f}" for k in ("error_mean", "error_median", "error_p95", "error_max")]
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
           for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_check(check: Check) -> str:
    """A disagreement in a few lines: where, input, both outputs, reason."""
    parts = [f"  [{check.status}] line {check.line} {check.key}"]
    shown = {k: v for k, v in check.input.items() if k != "response" or len(str(v)) < 200}
    parts.append(f"      input:     {_cut(shown)}")
    parts.append(f"      resd:      {_cut(check.ours)}")
    parts.append(f"      reference: {_cut(check.reference)}")
    if check.reason or check.note:
        parts.append(f"      why:       {check.reason or check.note}")
    return "\n".join(parts)


def format_report(report: FidelityReport) -> str:
    """The full console output: header, table, worst cases, disagreements, malformed rows, verdict."""
    out = [f"fidelity of {report.env_id} against {report.source} (reference: {report.reference})", "",
           format_table(report)]
    if report.worst:
        out += ["", "worst cases (mean error over balls):"]
        for w in report.worst:
            out.append(f"  line {w['line']} {w['uid']} t={w['time']:g}: {w['mean_error']:.3f} [{w['status']}]")
    diffs = report.disagreements()
    if diffs:
        out += ["", f"disagreements ({len(diffs)}; {report.known} with a documented reason):"]
        out += [format_check(c) for c in diffs[:LIST_LIMIT]]
        if len(diffs) > LIST_LIMIT:
            out.append(f"  ... and {len(diffs) - LIST_LIMIT} more (see --json)")
    if report.row_errors:
        out += ["", f"malformed rows ({len(report.row_errors)}, skipped):"]
        out += [f"  {e}" for e in report.row_errors[:LIST_LIMIT]]
        if len(report.row_errors) > LIST_LIMIT:
            out.append(f"  ... and {len(report.row_errors) - LIST_LIMIT} more")
        if report.stopped_early:
            out.append("  stopped reading: too many malformed rows "
                       "(is this the right format? see docs/fidelity.md)")
    out += ["", report.one_line()]
    return "\n".join(out)
