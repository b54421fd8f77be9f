"""Which tier runs a submission: the request, the opt-in for ``rlimit``, and loud fallbacks.

``auto`` tries bwrap, then unshare; the rlimit tier (which cannot hide host files) is used only
when the caller opts in (``allow_rlimit=True`` or ``RESD_SANDBOX_ALLOW_RLIMIT=1``). Each tier is
self-tested once per process. Whenever the tier in use is weaker than bwrap without the caller
having asked for exactly that tier, a warning is logged once, raised once as a RuntimeWarning and
attached to every :class:`SandboxRun` (``run.warning``) and to :func:`sandbox_info`.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass

from resd_envs.errors import ConfigError
from resd_envs.sandbox.selftest import self_test_with_retry
from resd_envs.sandbox.slots import slot_count
from resd_envs.sandbox.tiers import TIERS, SandboxUnavailableError, TierPlan, candidate_plan

ALLOW_RLIMIT_VAR = "RESD_SANDBOX_ALLOW_RLIMIT"
TIER_VAR = "RESD_SANDBOX"
_LOG = logging.getLogger("resd_envs.sandbox")
_LOCK = threading.Lock()
_RESOLVED: dict[str, TierPlan] = {}
_FAILURES: dict[str, str] = {}
_WARNED: set[str] = set()

_ISOLATION: dict[str, list[str]] = {
    "bwrap": ["unprivileged uid", "user namespace", "pid namespace", "network namespace (no network)",
              "ipc/uts namespaces", "filesystem: only the interpreter's own files, read-only",
              "private size-limited /tmp (also /var/tmp, /dev/shm)", "read-only root"],
    "unshare": ["unprivileged uid", "pid namespace", "network namespace (no network)",
                "ipc/uts/mount namespaces", "filesystem: only the interpreter's own files, read-only",
                "private size-limited /tmp (also /var/tmp, /dev/shm)", "read-only root", "no_new_privs"],
    "rlimit": ["fresh temporary scratch directory", "keeper process that reaps escaped descendants"],
}
_COMMON = ["rlimits: cpu, address space, processes, open files, file size, core=0",
           "scrubbed environment", "stdin closed", "wall-clock kill of the whole process tree",
           "parent-death signal and lifeline pipe", "process-wide bound on live sandboxes"]
RLIMIT_WARNING = (
    "resd_envs sandbox is using the 'rlimit' tier (opted in): model-written code runs without "
    "namespaces, so it can read every world-readable host file (including the hidden answers this "
    "package ships), reach the network and signal other processes of the same uid. Install "
    "bubblewrap (Debian/Ubuntu package 'bubblewrap') or allow user namespaces to get the 'bwrap' tier."
)


@dataclass(frozen=True)
class Choice:
    """A resolved tier and the warning that goes with it (None when nothing is weaker than asked)."""

    plan: TierPlan
    warning: str | None


def requested_tier(tier: str = "auto") -> str:
    """Apply the ``RESD_SANDBOX`` override to ``tier`` and validate the name."""
    if tier == "auto":
        tier = os.environ.get(TIER_VAR, "auto").strip() or "auto"
    if tier != "auto" and tier not in TIERS:
        raise ConfigError(f"sandbox tier must be 'auto' or one of {TIERS}, got {tier!r} "
                          f"(from the tier argument or the {TIER_VAR} environment variable)")
    return tier


def rlimit_allowed(allow_rlimit: bool | None = None) -> bool:
    """The explicit opt-in for the rlimit tier (argument wins over the environment variable)."""
    if allow_rlimit is not None:
        return bool(allow_rlimit)
    return os.environ.get(ALLOW_RLIMIT_VAR, "").strip().lower() in ("1", "true", "yes")


def _refusal() -> str:
    return (f"the 'rlimit' tier cannot hide host files (including this package's hidden answers), so it "
            f"runs only when you opt in: pass allow_rlimit=True or set {ALLOW_RLIMIT_VAR}=1")


def _plan(name: str) -> TierPlan | None:
    """The self-tested plan for one tier (cached), or None with the reason in ``_FAILURES``."""
    if name in _RESOLVED:
        return _RESOLVED[name]
    if name in _FAILURES:
        return None
    try:
        plan = self_test_with_retry(candidate_plan(name))
    except SandboxUnavailableError as exc:
        _FAILURES[name] = str(exc)
        _LOG.info("sandbox tier %s unavailable: %s", name, exc)
        return None
    _RESOLVED[name] = plan
    return plan


def choose(tier: str = "auto", allow_rlimit: bool | None = None) -> Choice:
    """Resolve ``tier`` to a usable plan plus its warning; raise SandboxUnavailableError if none."""
    name = requested_tier(tier)
    allowed = rlimit_allowed(allow_rlimit)
    names = ("bwrap", "unshare", "rlimit") if name == "auto" else (name,)
    reasons = []
    with _LOCK:
        for candidate in names:
            if candidate == "rlimit" and not allowed:
                reasons.append(f"rlimit: {_refusal()}")
                continue
            plan = _plan(candidate)
            if plan is not None:
                break
            reasons.append(f"{candidate}: {_FAILURES[candidate]}")
        else:
            raise SandboxUnavailableError(f"no usable sandbox tier for {tier!r} ({'; '.join(reasons)})")
    warning = None
    if plan.name == "rlimit":
        warning = RLIMIT_WARNING
    elif name == "auto" and plan.name != TIERS[0]:
        warning = (f"resd_envs sandbox fell back from 'bwrap' to '{plan.name}' "
                   f"(bwrap: {_FAILURES.get('bwrap', 'unavailable')}); set {TIER_VAR}={plan.name} "
                   "to choose it explicitly, or install bubblewrap")
    if warning is not None and warning not in _WARNED:
        _WARNED.add(warning)
        _LOG.warning(warning)
        warnings.warn(warning, RuntimeWarning, stacklevel=3)
    return Choice(plan, warning)


def resolve(tier: str = "auto", allow_rlimit: bool | None = None) -> TierPlan:
    """The self-tested plan for ``tier`` (see :func:`choose`)."""
    return choose(tier, allow_rlimit).plan


def available_tiers(allow_rlimit: bool | None = None) -> list[str]:
    """Every tier whose self-test passes here, strongest first (rlimit only when allowed)."""
    usable = []
    for name in TIERS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resolve(name, allow_rlimit)
        except SandboxUnavailableError:
            continue
        usable.append(name)
    return usable


def failures() -> dict[str, str]:
    """Why each tier that failed its self-test is unusable."""
    return dict(_FAILURES)


def sandbox_info(tier: str = "auto", allow_rlimit: bool | None = None) -> dict:
    """Which tier ``tier`` resolves to here and what it isolates.

    Returns ``{"tier", "isolation", "warning", "python", "uid", "self_test_ms", "unavailable",
    "visible_host_paths", "max_live_sandboxes"}``; ``unavailable`` maps tiers that failed their
    self-test to the reason; ``warning`` is None unless the tier is weaker than bwrap without the
    caller having asked for it (or is the opted-in rlimit tier).
    """
    choice = choose(tier, allow_rlimit)
    plan = choice.plan
    visible = list(plan.interpreter.mount_points) if plan.interpreter is not None else ["/ (everything)"]
    return {
        "tier": plan.name,
        "isolation": _ISOLATION[plan.name] + _COMMON + ([] if plan.uid is None else [f"uid {plan.uid}"]),
        "warning": choice.warning,
        "python": plan.python,
        "uid": plan.uid if plan.uid is not None else os.getuid(),
        "self_test_ms": plan.self_test_ms,
        "unavailable": dict(_FAILURES),
        "visible_host_paths": visible,
        "max_live_sandboxes": slot_count(),
    }
