"""Sandbox for untrusted model-written Python (used by BouncingSim).

Public API::

    from resd_envs.sandbox import SandboxLimits, run_function_calls, sandbox_info

    run = run_function_calls(program_text, "predict_position", [[0.1], [0.2]])
    run.outcomes[0].value   # plain nested lists of numbers, or None
    run.warning             # None, or why the tier in use is weaker than bwrap

One fresh child process per submission; values come back as JSON over a private pipe and are
validated by the parent, which never trusts the child's stdout. See docs/sandbox.md.
"""

from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.outcome import CallOutcome, SandboxRun
from resd_envs.sandbox.process import kill_live_sandboxes
from resd_envs.sandbox.runner import run_function_calls
from resd_envs.sandbox.selection import ALLOW_RLIMIT_VAR, available_tiers, sandbox_info
from resd_envs.sandbox.tiers import TIERS, SandboxUnavailableError

__all__ = [
    "ALLOW_RLIMIT_VAR",
    "TIERS",
    "CallOutcome",
    "SandboxLimits",
    "SandboxRun",
    "SandboxUnavailableError",
    "available_tiers",
    "kill_live_sandboxes",
    "run_function_calls",
    "sandbox_info",
]
