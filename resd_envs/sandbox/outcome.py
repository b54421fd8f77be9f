"""Result containers of a sandboxed run: :class:`CallOutcome` per call and :class:`SandboxRun`.

Plain frozen dataclasses (picklable). Values are already validated plain data: nested lists of
``int``/``float`` (floats may be NaN or infinite; the caller decides what those mean).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Error types a single call can carry (a call never reached carries the run's error type).
CALL_ERROR_TYPES: tuple[str, ...] = ("runtime_error", "timeout", "format_error")
#: Error types of a whole run (``None`` when the child finished normally).
RUN_ERROR_TYPES: tuple[str, ...] = (
    "runtime_error",
    "timeout",
    "memory_limit",
    "output_limit",
    "sandbox_error",
)


@dataclass(frozen=True)
class CallOutcome:
    """What one function call produced.

    Attributes:
        ok: the call returned a value that converted to plain numbers.
        value: that value as nested lists of int/float (tuples become lists); None if not ok.
        error_type: None, "runtime_error", "timeout", "format_error", or the run's error type
            for calls that were never reached.
        message: one or a few short lines, e.g. ``"line 12, in predict_position:
            ZeroDivisionError: division by zero"``; empty when ok.
    """

    ok: bool
    value: object
    error_type: str | None
    message: str


@dataclass(frozen=True)
class SandboxRun:
    """Everything a caller learns about one submission.

    Attributes:
        outcomes: one :class:`CallOutcome` per requested call, in order.
        error_type: whole-run failure ("runtime_error", "timeout", "memory_limit", "output_limit",
            "sandbox_error") or None if the child finished every call by itself.
        message: human-readable reason for ``error_type`` ("" when None).
        stdout: the program's standard output, capped at ``max_output_bytes`` (never trusted).
        stderr: the program's standard error, capped likewise.
        tier: the isolation tier that ran it: "bwrap", "unshare" or "rlimit".
        warning: None, or why this run is less isolated than it should be (``auto`` fell back
            from bwrap, or the caller opted into the rlimit tier). Callers should copy it into
            their ``info`` so a weaker sandbox is never silent.
    """

    outcomes: tuple[CallOutcome, ...]
    error_type: str | None
    message: str
    stdout: str
    stderr: str
    tier: str
    warning: str | None = None

    @property
    def values(self) -> list[object]:
        """The returned values, None where a call did not return a valid value."""
        return [o.value if o.ok else None for o in self.outcomes]

    @property
    def all_ok(self) -> bool:
        """True when the run had no error and every call returned a valid value."""
        return self.error_type is None and all(o.ok for o in self.outcomes)
