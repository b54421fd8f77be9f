"""Scoring a program's answers against the expected positions (in the parent process).

A test time passes when the returned value is a list of ``n_balls`` pairs of finite numbers and
the mean over balls of the Euclidean distance to the expected centres, rounded to 3 decimals,
is at most the tolerance (50). Nothing here runs model code: it reads the sandbox's outcomes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TOLERANCE = 50.0


@dataclass(frozen=True)
class CaseResult:
    """Outcome of one test time.

    Attributes:
        time: the test time (s).
        passed: whether the answer was within tolerance.
        errors: per-ball distances when the answer had the right shape, else None.
        returned: the positions the program returned (when well-formed), else None.
        problem: why the case failed without a distance (exception, timeout, bad shape), else None.
        error_type: an ``ERROR_TYPES`` value for a failure that is not a wrong answer, else None.
    """

    time: float
    passed: bool
    errors: tuple[float, ...] | None = None
    returned: tuple[tuple[float, float], ...] | None = None
    problem: str | None = None
    error_type: str | None = None

    @property
    def mean_error(self) -> float | None:
        return round(sum(self.errors) / len(self.errors), 3) if self.errors else None


def _describe(value: Any) -> str:
    """A short repr (ints of any size are cut before formatting: a huge int's repr is slow and capped)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value)} items"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # int repr digit limit, self-referencing containers
        return f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def check_shape(value: Any, n_balls: int) -> tuple[tuple[tuple[float, float], ...] | None, str | None]:
    """Positions from a returned value, or None and a sentence saying what is wrong with it."""
    if not isinstance(value, (list, tuple)):
        return (
            None,
            f"returned {_describe(value)} ({type(value).__name__}); "
            f"expected a list of {n_balls} [x, y] pairs",
        )
    if len(value) != n_balls:
        noun = "position" if len(value) == 1 else "positions"
        return (
            None,
            f"returned {len(value)} {noun}; the scene has {n_balls} ball{'s' if n_balls != 1 else ''}",
        )
    out = []
    for i, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            return None, f"ball {i + 1}: {_describe(pair)} is not an [x, y] pair"
        coords = []
        for c in pair:
            if isinstance(c, bool) or not isinstance(c, (int, float)):
                return None, f"ball {i + 1}: {_describe(c)} is not a number"
            try:
                value = float(c)
            except OverflowError:  # an int too large for a float (e.g. 400 digits)
                return None, f"ball {i + 1}: coordinate {_describe(c)} is too large"
            if not math.isfinite(value):
                return None, f"ball {i + 1}: coordinate {_describe(c)} is NaN or infinite"
            coords.append(value)
        out.append((coords[0], coords[1]))
    return tuple(out), None


def score_answer(
    time: float, value: Any, expected: Sequence[Sequence[float]], tolerance: float = TOLERANCE
) -> CaseResult:
    """Judge one returned value against the expected ``[[x, y], ...]`` at ``time``."""
    positions, problem = check_shape(value, len(expected))
    if positions is None:
        return CaseResult(time, False, problem=problem, error_type="format_error")
    errors = tuple(math.hypot(p[0] - e[0], p[1] - e[1]) for p, e in zip(positions, expected))
    mean = round(sum(errors) / len(errors), 3)
    return CaseResult(time, mean <= tolerance, errors=errors, returned=positions)


def failed_case(time: float, problem: str, error_type: str) -> CaseResult:
    """A case that produced no value (exception, timeout, sandbox failure, not run)."""
    return CaseResult(time, False, problem=problem, error_type=error_type)


def overall_error_type(cases: Sequence[CaseResult], run_error: str | None) -> str | None:
    """The evaluation's ``error_type``: the run's, else the first case's, else wrong_answer / None."""
    if run_error:
        return run_error
    for case in cases:
        if case.error_type:
            return case.error_type
    return None if all(c.passed for c in cases) else "wrong_answer"
