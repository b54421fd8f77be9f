"""Run one submission with an already resolved tier: request, launch, supervision, verdict.

Holds a live-sandbox slot (``slots.py``) around everything that has processes, so the bound
applies whoever calls. Used by ``runner.run_function_calls`` and by the tier self-test.
"""

from __future__ import annotations

import marshal
from typing import Any

from resd_envs.sandbox.classify import interpret
from resd_envs.sandbox.launch import prepared_launch
from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.outcome import CallOutcome, SandboxRun
from resd_envs.sandbox.process import run_child
from resd_envs.sandbox.slots import sandbox_slot
from resd_envs.sandbox.tiers import TierPlan

#: Bytes of the result channel kept back per call (and for the hello/end lines) for the framing
#: around values, so the values themselves get ``max_result_bytes`` minus this overhead.
RESULT_FRAMING_BYTES = 2048
#: The smallest value budget the child is ever given.
MIN_VALUE_BUDGET = 1024


def build_request(source: str, function_name: str, calls: list[list[Any]], limits: SandboxLimits,
                  setup: dict[str, Any]) -> bytes:
    """The marshal request read by the child (trusted direction: floats keep NaN/inf)."""
    request = {
        "source": source,
        "function": function_name,
        "calls": [list(args) for args in calls],
        "call_timeout": limits.call_timeout_s,
        "import_timeout": limits.effective_import_timeout_s,
        "max_timeouts": limits.max_call_timeouts,
        "result_budget": max(MIN_VALUE_BUDGET,
                             limits.max_result_bytes - RESULT_FRAMING_BYTES * (len(calls) + 4)),
        "limits": {
            "cpu": limits.cpu_s,
            "as": limits.memory_mb << 20,
            "nproc": limits.max_processes,
            "nofile": limits.max_open_files,
            "fsize": limits.max_file_mb << 20,
        },
        "setup": setup,
    }
    return marshal.dumps(request, 4)


def execute(plan: TierPlan, source: str, function_name: str, calls: list[list[Any]],
            limits: SandboxLimits, warning: str | None = None) -> tuple[SandboxRun, dict[str, Any] | None]:
    """Run with a resolved plan; also return the child's hello message (for self-tests)."""
    try:
        with sandbox_slot(), prepared_launch(plan, limits) as launch:
            data = build_request(source, function_name, calls, limits, launch.setup)
            report = run_child(launch, data, limits, len(calls))
    except OSError as exc:  # e.g. no space for the host directory, out of file descriptors
        msg = f"the sandbox could not be prepared: {exc}"
        outcomes = tuple(CallOutcome(False, None, "sandbox_error", msg) for _ in calls)
        return SandboxRun(outcomes, "sandbox_error", msg, "", "", plan.name, warning), None
    return interpret(report, len(calls), limits, plan.name, warning), report.transcript.hello
