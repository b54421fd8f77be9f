"""Turn what the parent observed (``process.ChildReport``) into a :class:`SandboxRun`.

Pure interpretation: no processes, no I/O. The stop reasons come from ``process.run_child``.
"""

from __future__ import annotations

import signal
from typing import Any

from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.outcome import CallOutcome, SandboxRun
from resd_envs.sandbox.process import ChildReport

#: A CPU-rlimit kill is recognised when the tree used at least this share of ``cpu_s``.
CPU_LIMIT_SHARE = 0.9


def interpret(report: ChildReport, n_calls: int, limits: SandboxLimits, tier: str,
              warning: str | None = None) -> SandboxRun:
    """Turn the observed transcript and stop reason into a :class:`SandboxRun`."""
    stdout = report.stdout.decode("utf-8", errors="replace")
    stderr = report.stderr.decode("utf-8", errors="replace")
    error_type, message, outcomes = _classify(report, n_calls, limits)
    return SandboxRun(tuple(outcomes), error_type, message, stdout, stderr, tier, warning)


def _fill(outcomes: list[CallOutcome], n_calls: int, error_type: str, message: str) -> list[CallOutcome]:
    rest = [CallOutcome(False, None, error_type, message) for _ in range(n_calls - len(outcomes))]
    return outcomes + rest


def _classify(report: ChildReport, n_calls: int,
              limits: SandboxLimits) -> tuple[str | None, str, list[CallOutcome]]:
    t = report.transcript
    stop = report.stop
    if stop == "spawn_failed":
        return "sandbox_error", report.detail, _fill([], n_calls, "sandbox_error", report.detail)
    if stop == "protocol":
        msg = f"the program tampered with the sandbox's result channel ({report.detail})"
        return "runtime_error", msg, _fill([], n_calls, "runtime_error", msg)
    if stop in ("output_limit", "result_limit"):
        return "output_limit", report.detail, _fill([], n_calls, "output_limit", report.detail)
    if t.fatal is not None or t.hello is None:
        if stop in ("startup_timeout", "total_timeout"):
            msg = report.detail
        else:
            msg = t.fatal or (f"the sandbox failed to start (exit status {report.returncode}): "
                              f"{report.stderr.decode('utf-8', 'replace')[-500:].strip()}")
        return "sandbox_error", msg, _fill([], n_calls, "sandbox_error", msg)
    outcomes = [_call_outcome(kind, payload, limits) for kind, payload in t.results]
    timeouts = sum(1 for kind, _ in t.results if kind == "timeout")
    if t.import_status is not None and t.import_status != "ok":
        return _import_failure(t.import_status, t.import_message, n_calls, limits)
    if t.current is not None:  # a phase began and never reported
        error_type, msg = _interrupted(report, limits, t.current)
        if t.current == -1:
            return error_type, msg, _fill([], n_calls, error_type, msg)
        outcomes.append(CallOutcome(False, None, error_type, msg))
        later = f"not run: {msg}"
        return error_type, msg, _fill(outcomes, n_calls, error_type, later)
    if t.results and t.results[-1][0] == "memory":
        msg = f"call {len(t.results) - 1} ran out of memory (limit {limits.memory_mb} MB)"
        outcomes[-1] = CallOutcome(False, None, "memory_limit", msg)
        return "memory_limit", msg, _fill(outcomes, n_calls, "memory_limit", f"not run: {msg}")
    if timeouts >= limits.max_call_timeouts:
        msg = (f"{timeouts} call(s) exceeded the {limits.call_timeout_s:g} s limit; "
               "the run stopped at the first timeout, so the later calls did not run"
               if limits.max_call_timeouts == 1 else
               f"{timeouts} calls exceeded the {limits.call_timeout_s:g} s limit; the run stopped")
        return "timeout", msg, _fill(outcomes, n_calls, "timeout", "not run: an earlier call timed out")
    if len(outcomes) == n_calls and t.ended:
        return None, "", outcomes
    if stop in ("total_timeout", "watchdog"):  # watchdog here: stalled between calls
        return "timeout", report.detail, _fill(outcomes, n_calls, "timeout", f"not run: {report.detail}")
    msg = f"the program ended the sandbox before all calls ran ({_status(report.returncode)})"
    if t.import_status is None:
        msg = f"the program exited while its top level ran ({_status(report.returncode)})"
    return "runtime_error", msg, _fill(outcomes, n_calls, "runtime_error", msg)


_KILL_SIGNALS = (signal.SIGKILL, signal.SIGXCPU)


def _call_outcome(kind: str, payload: Any, limits: SandboxLimits) -> CallOutcome:
    if kind == "ok":
        return CallOutcome(True, payload, None, "")
    if kind == "format":
        return CallOutcome(False, None, "format_error", f"bad return value: {payload}")
    if kind == "timeout":
        msg = f"the call did not return within {limits.call_timeout_s:g} s"
        return CallOutcome(False, None, "timeout", msg)
    if kind == "memory":
        return CallOutcome(False, None, "memory_limit", "the call ran out of memory")
    return CallOutcome(False, None, "runtime_error", payload)


def _import_failure(status: str, message: str, n_calls: int,
                    limits: SandboxLimits) -> tuple[str, str, list[CallOutcome]]:
    if status == "timeout":
        error_type = "timeout"
        msg = f"the program's top level did not finish within {limits.effective_import_timeout_s:g} s"
    elif status == "memory":
        error_type, msg = "memory_limit", f"the program's top level ran out of memory ({limits.memory_mb} MB)"
    else:
        error_type, msg = "runtime_error", message
    return error_type, msg, _fill([], n_calls, error_type, f"not run: {msg}")


def _interrupted(report: ChildReport, limits: SandboxLimits, index: int) -> tuple[str, str]:
    """Why a phase that began never reported, from the stop reason and exit status."""
    what = "the program's top level" if index == -1 else f"call {index}"
    if report.stop == "watchdog":
        limit = limits.effective_import_timeout_s if index == -1 else limits.call_timeout_s
        return "timeout", f"{what} did not finish within {limit:g} s (the program blocked the timer)"
    if report.stop == "total_timeout":
        return "timeout", f"{what} was stopped: {report.detail}"
    code = report.returncode
    # With soft = hard RLIMIT_CPU the kernel kills with SIGKILL. bwrap does not pass its child's
    # CPU time on, so a SIGKILL we did not send, after at least cpu_s of wall time, counts too.
    killed = code is not None and (-code in _KILL_SIGNALS or code - 128 in _KILL_SIGNALS)
    if report.cpu_s >= CPU_LIMIT_SHARE * limits.cpu_s or (killed and report.elapsed_s >= limits.cpu_s):
        return "timeout", f"{what} exceeded the CPU-time limit of {limits.cpu_s} s"
    return "runtime_error", f"the program ended the sandbox during {what} ({_status(code)})"


def _status(code: int | None) -> str:
    if code is None:
        return "no exit status"
    signum = -code if code < 0 else (code - 128 if code > 128 else 0)
    if signum:
        try:
            return f"killed by {signal.Signals(signum).name}"
        except ValueError:
            return f"killed by signal {signum}"
    return f"exit status {code}"
