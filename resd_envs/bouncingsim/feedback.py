"""Feedback text for a scored BouncingSim submission.

Policy-safe levels (never an expected position, nor anything it can be solved from in a few
attempts, such as exact per-ball distances): ``minimal`` (verdict and error), ``summary`` (+ one line
per test time: pass/FAIL, the mean distance rounded to a whole unit, which balls are off by more than
the tolerance, or the failure), ``full`` (+ the positions the program returned and the trimmed
traceback of the first exception). ``privileged`` (for a teacher or a human) adds the exact per-ball
distances and the expected positions. Every text is capped with :func:`cap_text`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from resd_envs.bouncingsim.scoring import TOLERANCE, CaseResult
from resd_envs.core.results import cap_text

_INTERNAL = re.compile(r'File "(?:[^"]*/(?:resd_envs|site-packages|lib/python3[^/"]*)/[^"]*|<frozen [^"]*>)"')
_ERROR_WORDS = {
    "no_code": "no program found",
    "runtime_error": "the program raised an exception",
    "timeout": "the program ran out of time",
    "memory_limit": "the program used too much memory",
    "output_limit": "the program printed too much output",
    "format_error": "the program returned values of the wrong shape or type",
    "sandbox_error": "the sandbox failed to run the program (not your fault)",
    "wrong_answer": "some predictions are too far from the true positions",
}


def trim_traceback(text: str, max_lines: int = 12) -> str:
    """Keep the traceback's frames in the submitted program and the final error line(s).

    Frames inside the package, the standard library or site-packages are dropped, with their
    source line.
    """
    lines = text.rstrip().splitlines()
    out: list[str] = []
    skip_source = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("File "):
            skip_source = bool(_INTERNAL.search(stripped))
            if not skip_source:
                out.append(line)
            continue
        if skip_source and line.startswith("    ") and not stripped.startswith("File "):
            continue
        skip_source = False
        out.append(line)
    if len(out) > max_lines:
        out = out[:2] + ["  ..."] + out[-(max_lines - 3) :]
    return "\n".join(out)


def _fmt_pairs(pairs: Sequence[Sequence[float]]) -> str:
    return "[" + ", ".join(f"[{p[0]:.2f}, {p[1]:.2f}]" for p in pairs) + "]"


def _case_line(case: CaseResult, tolerance: float, privileged: bool) -> str:
    head = f"t={case.time:.2f}  {'pass' if case.passed else 'FAIL'}"
    if case.errors is None:
        return f"{head}  {case.problem}"
    if privileged:
        per_ball = ", ".join(f"{e:.1f}" for e in case.errors)
        return f"{head}  mean distance {case.mean_error:.2f} (limit {tolerance:g}); per ball: {per_ball}"
    far = [str(i + 1) for i, e in enumerate(case.errors) if e > tolerance]
    where = f"; balls off by more than {tolerance:g}: {', '.join(far)}" if far else ""
    return f"{head}  mean distance ~{case.mean_error:.0f} (limit {tolerance:g}){where}"


def build_feedback(
    cases: Sequence[CaseResult],
    expected: Sequence[Sequence[Sequence[float]]],
    *,
    error_type: str | None,
    message: str = "",
    traceback: str = "",
    detail: str = "full",
    max_chars: int = 4000,
    tolerance: float = TOLERANCE,
) -> str:
    """The feedback text at ``detail`` (see the module docstring: only ``privileged`` shows ``expected``)."""
    passed = sum(1 for c in cases if c.passed)
    total = len(cases)
    lines = [
        f"{passed}/{total} test times passed "
        f"(a time passes when the mean distance over balls is <= {tolerance:g})."
    ]
    if error_type == "no_code":
        lines = [
            "No program found: put your code in a ```python fenced block that defines predict_position(t). "
            f"0/{total} test times passed."
        ]
    elif error_type and error_type != "wrong_answer":
        why = _ERROR_WORDS.get(error_type, error_type)
        first = message.strip().splitlines()[0] if message.strip() else ""
        lines.append(f"Error ({error_type}): {why}" + (f": {first}" if first else "."))
    elif passed == total and total:
        lines.append("All predictions are within tolerance.")
    privileged = detail == "privileged"
    if detail != "minimal" and error_type != "no_code":
        for case, exp in zip(cases, expected):
            lines.append(_case_line(case, tolerance, privileged))
            if privileged and (case.errors is None or not case.passed):
                lines.append(f"    expected {_fmt_pairs(exp)}")
            if detail in ("full", "privileged") and case.errors is not None and not case.passed:
                lines.append(f"    returned {_fmt_pairs(case.returned or ())}")
        if detail in ("full", "privileged") and traceback.strip():
            lines.append("First exception (your code):")
            lines.append(trim_traceback(traceback))
    return cap_text("\n".join(lines), max_chars)
