"""``resd-envs fidelity ENV_ID [--against FILE] [--reference-url URL] [--json OUT] [--html OUT] [--png OUT]``.

:func:`add_parser` registers the subcommand on ``resd-envs``'s subparsers. Exit status: 0 when every
check agrees or differs for a documented reason and every row was read; 1 otherwise (unexplained
disagreements or malformed rows); 2 for usage errors (unknown env, missing file, unreachable server).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from resd_envs.fidelity.console import format_report
from resd_envs.fidelity.rows import MAX_ERRORS
from resd_envs.fidelity.runner import run_fidelity
from resd_envs.fidelity.visual import write_html, write_png

DESCRIPTION = (
    "Compare this installation with the original benchmark (DELTA for Manufactoria and BouncingSim, ACE for "
    "Finer) on a JSONL file in the reference's format, on a live reference server, or, with no --against, "
    "on the golden sample shipped with the package. See docs/fidelity.md for the file formats."
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``fidelity`` subcommand to an ``argparse`` subparsers object and return its parser."""
    p = sub.add_parser("fidelity", help="agreement with the original benchmark (golden sample or your file)",
                       description=DESCRIPTION)
    p.set_defaults(handler=command)
    p.add_argument("env", metavar="ENV_ID", help="e.g. resd/Manufactoria-Has-v0")
    p.add_argument("--against", metavar="FILE",
                   help="JSONL in the env's reference format (default: the shipped sample)")
    p.add_argument("--reference-url", metavar="URL",
                   help="base URL of a running DELTA reference server; its answers replace those in the file")
    p.add_argument("--json", metavar="OUT", help="write the JSON report here")
    p.add_argument("--html", metavar="OUT", help="write an HTML report here (no extra dependencies)")
    p.add_argument("--png", metavar="OUT", help="write a PNG here (needs matplotlib or pillow)")
    p.add_argument("--max-errors", type=int, default=MAX_ERRORS,
                   help=f"stop reading after this many malformed rows (default {MAX_ERRORS})")
    return p


def command(args: argparse.Namespace) -> int:
    """Run the check, print the summary, write the requested reports; return the exit status."""
    report = run_fidelity(args.env, args.against, reference_url=args.reference_url, max_errors=args.max_errors)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
        print(f"JSON report: {args.json}")
    if args.html:
        print(f"HTML report: {write_html(report, args.html)}")
    if args.png:
        print(f"PNG report: {write_png(report, args.png)}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m resd_envs.fidelity ENV_ID ...``)."""
    from resd_envs.errors import ResdEnvError

    parser = argparse.ArgumentParser(prog="resd-envs")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fidelity", *(sys.argv[1:] if argv is None else argv)])
    try:
        return command(args)
    except ResdEnvError as exc:
        print(f"resd-envs: error: {exc}", file=sys.stderr)
        return 2
