"""An in-process stand-in for the sandbox that returns real ``SandboxRun`` objects (test helper only).

The program is trusted test code, run in this process; the result types are the sandbox's own, so
the scorer, feedback and env code paths under test are exactly the production ones.
"""

from __future__ import annotations

import traceback
from typing import Any

from resd_envs.sandbox.outcome import CallOutcome, SandboxRun


def make_run(outcomes: list[CallOutcome], error_type: str | None = None, message: str = "") -> SandboxRun:
    """A SandboxRun as the in-process tier would report it."""
    return SandboxRun(tuple(outcomes), error_type, message, "", "", "in-process")


def run_in_process(code: str, times: list[float]) -> SandboxRun:
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, "<submission>", "exec"), namespace)
        func = namespace["predict_position"]
    except Exception:
        msg = traceback.format_exc()
        return make_run([CallOutcome(False, None, "runtime_error", msg) for _ in times], "runtime_error", msg)
    outs = []
    for t in times:
        try:
            outs.append(CallOutcome(True, func(t), None, ""))
        except Exception:
            outs.append(CallOutcome(False, None, "runtime_error", traceback.format_exc()))
    return make_run(outs)
