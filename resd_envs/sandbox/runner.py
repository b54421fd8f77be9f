"""``run_function_calls``: evaluate one untrusted program's function on a list of arguments.

One fresh child process per submission evaluates every call (see ``child.py``); this module
validates the caller's input, picks the tier (``selection.py``) and runs it (``execute.py``).

Timeout policy: each call has ``call_timeout_s`` (default 1 s, like the reference verifier),
enforced by a timer in the child and by the parent's own clock. After ``max_call_timeouts``
timeouts (default 1) the run stops; the timed-out call gets ``"timeout"`` and so does every call
after it, with the message "not run: ...". Calls are ordered by difficulty in practice
(BouncingSim asks for t = 0.1 ... 1.5 s), so a later call rarely succeeds where an earlier one
timed out, and stopping bounds a never-returning program at about ``call_timeout_s`` instead of
``n_calls * call_timeout_s``. Raise ``max_call_timeouts`` to keep evaluating after timeouts
(still bounded by ``total_timeout_s``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from resd_envs.errors import ConfigError
from resd_envs.sandbox.execute import execute
from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.outcome import SandboxRun
from resd_envs.sandbox.selection import choose


def run_function_calls(
    source: str,
    function_name: str,
    calls: Sequence[Sequence[float | int | str]],
    *,
    limits: SandboxLimits = SandboxLimits(),
    tier: str = "auto",
    allow_rlimit: bool | None = None,
) -> SandboxRun:
    """Run ``source`` in a fresh sandboxed child and call ``function_name(*args)`` for each args.

    Args:
        source: the untrusted program text (any string; problems become error outcomes).
        function_name: a Python identifier naming the function to call.
        calls: argument lists, each a sequence of int/float/str (floats may be NaN/inf).
        limits: time, memory and size limits (:class:`SandboxLimits`).
        tier: "auto" (default; ``RESD_SANDBOX`` may override), "bwrap", "unshare" or "rlimit".
        allow_rlimit: opt in to the rlimit tier, which cannot hide host files; None (default)
            reads ``RESD_SANDBOX_ALLOW_RLIMIT``.

    Returns:
        A :class:`SandboxRun` with one outcome per call. Returned values are plain data (nested
        lists of int/float; NaN and +-inf are passed through as floats for the caller to judge).
        stdout/stderr are for feedback only and never influence outcomes. ``run.warning`` says
        when the tier is weaker than bwrap.

    Raises:
        ConfigError: bad arguments from the caller (not from the program).
        SandboxUnavailableError: the requested tier (or every tier, for "auto") is unusable, or
            only the rlimit tier is and the caller did not opt in.
    """
    request_calls = _check_arguments(source, function_name, calls, limits)
    choice = choose(tier, allow_rlimit)
    run, _ = execute(choice.plan, source, function_name, request_calls, limits, choice.warning)
    return run


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
