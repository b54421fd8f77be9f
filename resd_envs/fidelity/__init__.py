"""Fidelity testing: does this installation score like the original benchmarks?

Compares resd's answers with the reference implementations' answers, recorded in a JSONL file in
the reference's own format (or given live by a running reference server), and reports agreement,
known differences (with their documented cause) and unexplained disagreements::

    from resd_envs.fidelity import run_fidelity, format_report
    report = run_fidelity("resd/Manufactoria-Has-v0")            # the shipped golden sample
    report = run_fidelity("resd/BouncingSim-Easy-v0", "rows.jsonl")
    report = run_fidelity("resd/Manufactoria-Has-v0", "rows.jsonl", reference_url="http://127.0.0.1:1235")
    print(format_report(report)); report.ok; report.as_dict()

Command line: ``resd-envs fidelity ENV_ID [--against FILE] [--reference-url URL] [--json OUT]
[--html OUT] [--png OUT]``. Formats: ``docs/fidelity.md``. Never imports torch or resd_learner.
"""

from resd_envs.fidelity.console import format_report, format_table
from resd_envs.fidelity.http import ReferenceServerError
from resd_envs.fidelity.report import Check, FidelityReport, RowError
from resd_envs.fidelity.rows import RowFormatError
from resd_envs.fidelity.runner import CHECKERS, run_fidelity, sample_path
from resd_envs.fidelity.visual import render_html, write_html, write_png

__all__ = [
    "CHECKERS",
    "Check",
    "FidelityReport",
    "ReferenceServerError",
    "RowError",
    "RowFormatError",
    "format_report",
    "format_table",
    "render_html",
    "run_fidelity",
    "sample_path",
    "write_html",
    "write_png",
]
