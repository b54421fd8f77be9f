"""Isolation tiers: how the child is launched, which tier is usable, and what it protects.

Three tiers, strongest first (``auto`` picks the first whose self-test passes, once per process):

* ``bwrap``: bubblewrap run as the sandbox uid (65534 when we are root): new user, pid, net, ipc,
  uts and cgroup namespaces, only ``/usr`` (read-only) and a private size-limited tmpfs visible.
* ``unshare``: util-linux ``unshare`` (net, pid, ipc, uts, mount namespaces; ``--kill-child``),
  a tmpfs scratch mounted inside, then ``setpriv`` to the sandbox uid with no_new_privs. Host
  files readable by the sandbox uid stay readable.
* ``rlimit``: no namespaces; the uid drop (when root) and rlimits only. Network, world-readable
  files and signals to other processes of the same uid are NOT contained; a warning is emitted.

Overrides: the ``tier`` argument, else the ``RESD_SANDBOX`` environment variable; the interpreter
with ``RESD_SANDBOX_PYTHON``; the uid with ``RESD_SANDBOX_UID``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from resd_envs.errors import ConfigError, ResdEnvError

TIERS: tuple[str, ...] = ("bwrap", "unshare", "rlimit")
DEFAULT_UID = 65534
_LOG = logging.getLogger("resd_envs.sandbox")
_LOCK = threading.Lock()
_RESOLVED: dict[str, TierPlan] = {}
_FAILURES: dict[str, str] = {}
_WARNED: set[str] = set()

_ISOLATION: dict[str, list[str]] = {
    "bwrap": ["unprivileged uid", "user namespace", "pid namespace", "network namespace (no network)",
              "ipc/uts namespaces", "filesystem: read-only /usr only", "private tmpfs scratch"],
    "unshare": ["unprivileged uid", "pid namespace", "network namespace (no network)",
                "ipc/uts/mount namespaces", "private tmpfs scratch", "no_new_privs"],
    "rlimit": ["fresh temporary scratch directory"],
}
_COMMON = ["rlimits: cpu, address space, processes, open files, file size, core=0",
           "scrubbed environment", "stdin closed", "wall-clock kill of the whole process tree"]
RLIMIT_WARNING = (
    "resd_envs sandbox is using the 'rlimit' tier: model-written code runs without namespaces, "
    "so network access, reading world-readable files and signalling other processes of the same uid "
    "are NOT contained. Install bubblewrap (Debian/Ubuntu package 'bubblewrap') or allow unprivileged "
    "user namespaces to get the 'bwrap' tier."
)


class SandboxUnavailableError(ResdEnvError, RuntimeError):
    """The requested isolation tier (or, for ``auto``, every tier) failed its self-test."""


@dataclass(frozen=True)
class TierPlan:
    """A usable tier: everything needed to build a launch command."""

    name: str
    python: str
    uid: int | None  # uid the sandbox runs as; None = our own uid (we are not root)
    bwrap_flags: tuple[str, ...] = ()
    extra_binds: tuple[str, ...] = ()
    tools: dict[str, str] = field(default_factory=dict)
    self_test_ms: float = 0.0

    @property
    def warning(self) -> str | None:
        return RLIMIT_WARNING if self.name == "rlimit" else None


def sandbox_uid() -> int | None:
    """The uid sandboxes run as when we are root (None when we are not root: no drop possible)."""
    if os.geteuid() != 0:
        return None
    raw = os.environ.get("RESD_SANDBOX_UID", str(DEFAULT_UID))
    try:
        uid = int(raw)
    except ValueError:
        raise ConfigError(f"RESD_SANDBOX_UID must be an integer uid, got {raw!r}") from None
    if uid <= 0:
        raise ConfigError(f"RESD_SANDBOX_UID must be a non-root uid (> 0), got {uid}")
    return uid


def _others_can_execute(path: str) -> bool:
    """Every directory on the way and the file itself carry the 'other' execute bit."""
    current = Path(path)
    for part in [current, *current.parents]:
        try:
            if not os.stat(part).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def find_python(uid: int | None) -> str | None:
    """An interpreter the sandbox uid can execute (``RESD_SANDBOX_PYTHON`` wins if set)."""
    override = os.environ.get("RESD_SANDBOX_PYTHON")
    candidates = [override] if override else ["/usr/bin/python3", "/usr/local/bin/python3", sys.executable]
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if not os.path.isfile(real) or not os.access(real, os.X_OK):
            continue
        if uid is not None and not _others_can_execute(real):
            continue
        return candidate
    return None


@lru_cache(maxsize=1)
def child_code() -> str:
    """Source text of ``child.py`` (passed with ``-c`` so the sandbox needs no access to our files)."""
    return Path(__file__).with_name("child.py").read_text(encoding="utf-8")


def _bwrap_flags(bwrap: str) -> tuple[str, ...]:
    """Optional bwrap flags this bwrap version supports."""
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10,
                              check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(flag for flag in ("--disable-userns", "--size") if flag in text)


def _candidate_plan(name: str) -> TierPlan:
    """Build the plan for ``name`` or raise SandboxUnavailableError saying what is missing."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailableError(f"the sandbox needs Linux (this is {sys.platform})")
    uid = sandbox_uid()
    python = find_python(uid)
    if python is None:
        who = f"uid {uid}" if uid is not None else "this user"
        raise SandboxUnavailableError(
            f"no Python interpreter executable by {who}; install Debian's python3 or set "
            "RESD_SANDBOX_PYTHON to an interpreter outside root-only directories"
        )
    search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    needed = {"bwrap": ["bwrap"], "unshare": ["unshare", "mount"], "rlimit": []}[name]
    if uid is not None and name in ("bwrap", "unshare"):
        needed.append("setpriv")
    tools = {}
    for tool in needed:
        found = shutil.which(tool, path=search)
        if found is None:
            package = "bubblewrap" if tool == "bwrap" else "util-linux"
            raise SandboxUnavailableError(f"'{tool}' not found; install the '{package}' package")
        tools[tool] = found
    if uid is not None and name == "rlimit":
        setpriv = shutil.which("setpriv", path=search)
        if setpriv:
            tools["setpriv"] = setpriv
    flags = _bwrap_flags(tools["bwrap"]) if name == "bwrap" else ()
    real = os.path.realpath(python)
    binds = () if real.startswith("/usr/") else (str(Path(real).parent.parent),)
    return TierPlan(name, python, uid, flags, binds, tools)


def _self_test(plan: TierPlan) -> TierPlan:
    """Run a tiny program in ``plan``; check values, uid drop, namespaces and the hash seed."""
    from resd_envs.sandbox.limits import SandboxLimits
    from resd_envs.sandbox.runner import execute

    source = "import os\ndef probe(x):\n    return [x * 2, os.getuid()]\n"
    limits = SandboxLimits(total_timeout_s=30.0, call_timeout_s=10.0)
    started = time.perf_counter()
    run, hello = execute(plan, source, "probe", [[1.5]], limits)
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
            if hello.get("pidns") == _own_ns("pid"):
                problems.append("the child shares our pid namespace")
            if hello.get("netns") == _own_ns("net"):
                problems.append("the child shares our network namespace")
    if problems:
        raise SandboxUnavailableError("; ".join(problems))
    return TierPlan(plan.name, plan.python, plan.uid, plan.bwrap_flags, plan.extra_binds, plan.tools,
                    round(elapsed_ms, 1))


def _self_test_with_retry(plan: TierPlan) -> TierPlan:
    """A failed self-test is retried once: a loaded machine can stall one namespace set-up."""
    try:
        return _self_test(plan)
    except SandboxUnavailableError:
        return _self_test(plan)


def _own_ns(kind: str) -> int:
    try:
        return int(os.readlink(f"/proc/self/ns/{kind}").split("[", 1)[1].rstrip("]"))
    except (OSError, ValueError, IndexError):
        return -1


def requested_tier(tier: str = "auto") -> str:
    """Apply the ``RESD_SANDBOX`` override to ``tier`` and validate the name."""
    if tier == "auto":
        tier = os.environ.get("RESD_SANDBOX", "auto").strip() or "auto"
    if tier != "auto" and tier not in TIERS:
        raise ConfigError(f"sandbox tier must be 'auto' or one of {TIERS}, got {tier!r} "
                          "(from the tier argument or the RESD_SANDBOX environment variable)")
    return tier


def resolve(tier: str = "auto") -> TierPlan:
    """The plan for ``tier``, self-tested once per process; ``auto`` tries bwrap, unshare, rlimit."""
    name = requested_tier(tier)
    names = TIERS if name == "auto" else (name,)
    with _LOCK:
        for candidate in names:
            if candidate in _RESOLVED:
                plan = _RESOLVED[candidate]
                break
            if candidate in _FAILURES:
                continue
            try:
                plan = _self_test_with_retry(_candidate_plan(candidate))
            except SandboxUnavailableError as exc:
                _FAILURES[candidate] = str(exc)
                _LOG.info("sandbox tier %s unavailable: %s", candidate, exc)
                continue
            _RESOLVED[candidate] = plan
            break
        else:
            reasons = "; ".join(f"{n}: {_FAILURES.get(n, 'not tried')}" for n in names)
            raise SandboxUnavailableError(f"no usable sandbox tier for {tier!r} ({reasons})")
    if plan.name == "rlimit" and "rlimit" not in _WARNED:
        _WARNED.add("rlimit")
        _LOG.warning(RLIMIT_WARNING)
        warnings.warn(RLIMIT_WARNING, RuntimeWarning, stacklevel=3)
    return plan


def available_tiers() -> list[str]:
    """Every tier whose self-test passes here, strongest first."""
    usable = []
    for name in TIERS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resolve(name)
        except SandboxUnavailableError:
            continue
        usable.append(name)
    return usable


def sandbox_info(tier: str = "auto") -> dict:
    """Which tier ``tier`` resolves to here and what it isolates.

    Returns ``{"tier", "isolation", "warning", "python", "uid", "self_test_ms", "unavailable"}``;
    ``unavailable`` maps tiers that failed their self-test to the reason.
    """
    plan = resolve(tier)
    return {
        "tier": plan.name,
        "isolation": _ISOLATION[plan.name] + _COMMON + ([] if plan.uid is None else [f"uid {plan.uid}"]),
        "warning": plan.warning,
        "python": plan.python,
        "uid": plan.uid if plan.uid is not None else os.getuid(),
        "self_test_ms": plan.self_test_ms,
        "unavailable": dict(_FAILURES),
    }
