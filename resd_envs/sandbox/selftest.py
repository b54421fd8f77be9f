"""The self-test a tier must pass before it is used: a probe program run in that tier.

Checks the returned value, the uid drop, the namespaces, the hash seed and, for the tiers that
hide the host, that the probe sees no host file beyond the interpreter's own.
"""

from __future__ import annotations

import os
import time

from resd_envs.sandbox.execute import execute
from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.tiers import SandboxUnavailableError, TierPlan

#: Generous limits: the self-test may run while the machine is loaded.
SELF_TEST_LIMITS = SandboxLimits(total_timeout_s=30.0, call_timeout_s=10.0)
_PROBE = (
    "import os\n"
    "def probe(x):\n"
    "    top = sorted(os.listdir('/'))\n"
    "    return [x * 2, os.getuid(), float(len(top)), float('etc' in top and os.path.exists('/etc/passwd'))]\n"
)


def own_namespace(kind: str) -> int:
    """Inode number of this process's ``kind`` namespace (-1 if unreadable)."""
    try:
        return int(os.readlink(f"/proc/self/ns/{kind}").split("[", 1)[1].rstrip("]"))
    except (OSError, ValueError, IndexError):
        return -1


def self_test(plan: TierPlan) -> TierPlan:
    """Run the probe in ``plan``; return the plan with its timing, or raise SandboxUnavailableError."""
    started = time.perf_counter()
    run, hello = execute(plan, _PROBE, "probe", [[1.5]], SELF_TEST_LIMITS)
    elapsed_ms = (time.perf_counter() - started) * 1000
    problems = []
    if not run.all_ok or run.outcomes[0].value[0] != 3.0:
        problems.append(f"probe failed ({run.error_type}: {run.message or run.outcomes[0].message}; "
                        f"stderr: {run.stderr[-300:]!r})")
    elif hello is not None:
        if plan.uid is not None and hello.get("uid") == 0:
            problems.append("the child still runs as root")
        if hello.get("hashseed") != 0:
            problems.append("PYTHONHASHSEED was not applied")
        if plan.name != "rlimit":
            if hello.get("pidns") == own_namespace("pid"):
                problems.append("the child shares our pid namespace")
            if hello.get("netns") == own_namespace("net"):
                problems.append("the child shares our network namespace")
            if run.outcomes[0].value[3]:
                problems.append("the child can read the host's /etc/passwd")
    if problems:
        raise SandboxUnavailableError("; ".join(problems))
    return TierPlan(plan.name, plan.python, plan.uid, plan.bwrap_flags, plan.interpreter, plan.tools,
                    round(elapsed_ms, 1))


def self_test_with_retry(plan: TierPlan) -> TierPlan:
    """A failed self-test is retried once: a loaded machine can stall one namespace set-up."""
    try:
        return self_test(plan)
    except SandboxUnavailableError:
        return self_test(plan)
