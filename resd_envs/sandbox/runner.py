"""``run_function_calls``: evaluate one untrusted program's function on a list of arguments.

One fresh child process per submission evaluates every call (see ``child.py``); this module
validates the caller's input, picks the tier, and turns what the parent observed
(``process.ChildReport``) into a :class:`SandboxRun`.

Timeout policy: each call has ``call_timeout_s`` (default 1 s, like the reference verifier). After
``max_call_timeouts`` timeouts (default 1) the run stops; the timed-out call gets ``"timeout"``
and so does every call after it, with the message "not run: ...". Calls are ordered by
difficulty in practice (BouncingSim asks for t = 0.1 ... 1.5 s), so a later call rarely succeeds
where an earlier one timed out, and stopping bounds a never-returning program at about
``call_timeout_s`` instead of ``n_calls * call_timeout_s``. Raise ``max_call_timeouts`` to keep
evaluating after timeouts (still bounded by ``total_timeout_s``).
"""

from __future__ import annotations

import marshal
import numbers
import signal
from collections.abc import Sequence
from typing import Any

from resd_envs.errors import ConfigError
from resd_envs.sandbox.launch import prepared_launch
from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.outcome import CallOutcome, SandboxRun
from resd_envs.sandbox.process import ChildReport, run_child
from resd_envs.sandbox.tiers import TierPlan, resolve


def run_function_calls(
    source: str,
    function_name: str,
    calls: Sequence[Sequence[float | int | str]],
    *,
    limits: SandboxLimits = SandboxLimits(),
    tier: str = "auto",
) -> SandboxRun:
    """Run ``source`` in a fresh sandboxed child and call ``function_name(*args)`` for each args.

    Args:
        source: the untrusted program text (any string; problems become error outcomes).
        function_name: a Python identifier naming the function to call.
        calls: argument lists, each a sequence of int/float/str (floats may be NaN/inf).
        limits: time, memory and size limits (:class:`SandboxLimits`).
        tier: "auto" (default; ``RESD_SANDBOX`` may override), "bwrap", "unshare" or "rlimit".

    Returns:
        A :class:`SandboxRun` with one outcome per call. Returned values are plain data (nested
        lists of int/float; NaN and +-inf are passed through as floats for the caller to judge).
        stdout/stderr are for feedback only and never influence outcomes.

    Raises:
        ConfigError: bad arguments from the caller (not from the program).
        SandboxUnavailableError: the requested tier (or every tier, for "auto") is unusable.
    """
    request_calls = _check_arguments(source, function_name, calls, limits)
    plan = resolve(tier)
    run, _ = execute(plan, source, function_name, request_calls, limits)
    return run


def execute(plan: TierPlan, source: str, function_name: str, calls: list[list[Any]],
            limits: SandboxLimits) -> tuple[SandboxRun, dict[str, Any] | None]:
    """Run with an already resolved plan; also return the child's hello message (for self-tests)."""
    request = {
        "source": source,
        "function": function_name,
        "calls": [list(args) for args in calls],
        "call_timeout": limits.call_timeout_s,
        "import_timeout": limits.effective_import_timeout_s,
        "max_timeouts": limits.max_call_timeouts,
        "result_budget": max(1024, limits.max_result_bytes - 2048 * (len(calls) + 4)),
        "limits": {
            "cpu": limits.cpu_s,
            "as": limits.memory_mb << 20,
            "nproc": limits.max_processes,
            "nofile": limits.max_open_files,
            "fsize": limits.max_file_mb << 20,
        },
    }
    data = marshal.dumps(request, 4)  # trusted direction: parent -> child; floats keep NaN/inf
    try:
        with prepared_launch(plan, limits) as launch:
            report = run_child(launch, data, limits, len(calls))
    except OSError as exc:  # e.g. no space for the scratch directory, out of file descriptors
        msg = f"the sandbox could not be prepared: {exc}"
        outcomes = tuple(CallOutcome(False, None, "sandbox_error", msg) for _ in calls)
        return SandboxRun(outcomes, "sandbox_error", msg, "", "", plan.name), None
    return interpret(report, len(calls), limits, plan.name), report.transcript.hello


def _check_arguments(source: Any, function_name: Any, calls: Any, limits: Any) -> list[list[Any]]:
    if not isinstance(source, str):
        raise ConfigError(f"source must be a str, got {type(source).__name__}")
    if not isinstance(function_name, str) or not function_name.isidentifier():
        raise ConfigError(f"function_name must be a Python identifier, got {function_name!r}")
    if not isinstance(limits, SandboxLimits):
        raise ConfigError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
    if isinstance(calls, (str, bytes)) or not isinstance(calls, Sequence):
        raise ConfigError("calls must be a sequence of argument sequences, e.g. [[0.1], [0.2]]")
    checked = []
    for index, args in enumerate(calls):
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise ConfigError(f"calls[{index}] must be a sequence of arguments, got {args!r}")
        checked.append([_plain_arg(index, arg) for arg in args])
    return checked


def _plain_arg(index: int, arg: Any) -> int | float | str:
    """The argument as a plain int/float/str (numpy scalars included) for the marshal request."""
    if isinstance(arg, bool) or not isinstance(arg, (numbers.Real, str)):
        raise ConfigError(f"calls[{index}] holds {arg!r}; only int, float and str are allowed")
    if isinstance(arg, str):
        return str(arg)
    return int(arg) if isinstance(arg, numbers.Integral) else float(arg)


def interpret(report: ChildReport, n_calls: int, limits: SandboxLimits, tier: str) -> SandboxRun:
    """Turn the observed transcript and stop reason into a :class:`SandboxRun`."""
    stdout = report.stdout.decode("utf-8", errors="replace")
    stderr = report.stderr.decode("utf-8", errors="replace")
    error_type, message, outcomes = _classify(report, n_calls, limits)
    return SandboxRun(tuple(outcomes), error_type, message, stdout, stderr, tier)


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
    if stop == "total_timeout":
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
    if report.cpu_s >= 0.9 * limits.cpu_s or (killed and report.elapsed_s >= limits.cpu_s):
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
