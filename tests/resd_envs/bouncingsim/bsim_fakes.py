"""In-process stand-ins for the sandbox's ``CallOutcome`` / ``SandboxRun`` (test helpers only)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FakeOutcome:
    ok: bool
    value: object
    error_type: str | None
    message: str


@dataclass(frozen=True)
class FakeRun:
    outcomes: tuple[FakeOutcome, ...]
    error_type: str | None = None
    message: str = ""
    stdout: str = ""
    stderr: str = ""
    tier: str = "in-process"


def run_in_process(code: str, times: list[float]) -> FakeRun:
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, "<submission>", "exec"), namespace)
        func = namespace["predict_position"]
    except Exception:
        msg = traceback.format_exc()
        return FakeRun(
            tuple(FakeOutcome(False, None, "runtime_error", msg) for _ in times), "runtime_error", msg
        )
    outs = []
    for t in times:
        try:
            outs.append(FakeOutcome(True, func(t), None, ""))
        except Exception:
            outs.append(FakeOutcome(False, None, "runtime_error", traceback.format_exc()))
    return FakeRun(tuple(outs))
