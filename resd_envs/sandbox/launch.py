"""How one sandbox child is started, per tier: argv, environment, cwd, and the child's set-up.

Owns the description of a launch (:class:`Launch`) and the text of the child program; starting
and supervising the process is ``process.py``'s job. Imports only ``limits`` and ``tiers``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.tiers import DEVICES, TierPlan, package_dirs_now

#: Environment variable carrying the per-run marker used to find escaped processes.
MARKER_VAR = "RESD_SANDBOX_RUN"
#: Python flags: no user site, no site (so no dist-packages), no bytecode, unbuffered output.
#: ``-I``/``-E`` are not used because they make Python ignore PYTHONHASHSEED; the environment is
#: rebuilt from scratch instead (see :func:`child_env`), which gives the same isolation.
PYTHON_FLAGS = ("-s", "-S", "-B", "-u")
#: Where the scratch directory appears inside the bwrap and unshare sandboxes.
INSIDE_SCRATCH = "/tmp"
#: Inodes of the scratch tmpfs (bounds the kernel memory a file-creation bomb can pin).
SCRATCH_INODES = 4096
#: Existing host directories the unshare tier may mount its new root on. The mount happens in the
#: sandbox's private mount namespace, so the host never sees it and no host directory is created
#: (nothing is left behind even if the caller is SIGKILLed).
JAIL_MOUNTPOINTS = ("/mnt", "/media", "/srv", "/opt", "/var/empty", "/tmp")


@dataclass
class Launch:
    """How to start one child and how to clean up after it.

    Attributes:
        argv: the command (the parent appends the request, result and lifeline fds).
        env: the child's complete environment.
        cwd: working directory for the process the parent starts.
        sweep_uid: uid of the sandbox processes (used by the leftover sweep).
        own_pid_namespace: the sandbox has its own PID namespace (killing its init kills all).
        token: per-run marker placed in the environment.
        popen_user: uid for ``Popen(user=...)`` (unused when a setpriv/jail drop does it).
        setup: the child's set-up instructions, merged into the request (``jail`` / ``keeper``).
        keeper: the started process is a keeper (rlimit tier): ask it to sweep with SIGTERM first.
    """

    argv: list[str]
    env: dict[str, str]
    cwd: str
    sweep_uid: int
    own_pid_namespace: bool
    token: str
    popen_user: int | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    keeper: bool = False


@lru_cache(maxsize=1)
def child_code() -> str:
    """Source passed with ``-c``: ``jail.py`` then ``child.py`` (the sandbox reads none of our files)."""
    here = Path(__file__).parent
    return here.joinpath("jail.py").read_text(encoding="utf-8") + "\n" + \
        here.joinpath("child.py").read_text(encoding="utf-8")


def child_env(scratch: str, token: str, home: str | None = None) -> dict[str, str]:
    """The complete environment of the child: nothing inherited from the parent."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": scratch,
        "TMPDIR": scratch,
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        MARKER_VAR: token,
    }
    if home:
        env["PYTHONHOME"] = home
    return env


def _setpriv(plan: TierPlan, death_signal: str, drop: bool) -> list[str]:
    argv = [plan.tools["setpriv"], "--pdeathsig", death_signal]
    if drop and plan.uid is not None:
        argv += [f"--reuid={plan.uid}", f"--regid={plan.uid}", "--clear-groups", "--no-new-privs"]
    return argv


def _python(plan: TierPlan) -> list[str]:
    executable = plan.interpreter.executable if plan.interpreter is not None else plan.python
    return [executable, *PYTHON_FLAGS, "-c", child_code()]


def _bwrap_argv(plan: TierPlan, limits: SandboxLimits) -> list[str]:
    interp = plan.interpreter
    assert interp is not None
    argv = [plan.tools["bwrap"], "--unshare-all", "--unshare-user", "--die-with-parent",
            "--new-session", "--hostname", "sandbox"]
    if "--disable-userns" in plan.bwrap_flags:
        argv.append("--disable-userns")
    for path in interp.dirs:
        argv += ["--ro-bind", path, path]
    for path in interp.files:
        argv += ["--ro-bind", path, path]
    for path in package_dirs_now(interp):
        argv += ["--size", "4096", "--tmpfs", path, "--remount-ro", path]
    for path in DEVICES:
        argv += ["--dev-bind", path, path]
    argv += ["--proc", "/proc"]
    argv += ["--size", str(limits.scratch_mb << 20), "--perms", "0700", "--tmpfs", INSIDE_SCRATCH]
    for link, target in (*interp.symlinks, ("/var/tmp", INSIDE_SCRATCH), ("/dev/shm", INSIDE_SCRATCH)):
        argv += ["--symlink", target, link]
    argv += ["--remount-ro", "/", "--chdir", INSIDE_SCRATCH]
    return argv


def _jail_spec(plan: TierPlan, root: str, limits: SandboxLimits) -> dict[str, Any]:
    interp = plan.interpreter
    assert interp is not None
    return {
        "root": root,
        "uid": plan.uid,
        "dirs": list(interp.dirs),
        "files": list(interp.files),
        "masked": list(package_dirs_now(interp)),
        "devices": list(DEVICES),
        "symlinks": [list(pair) for pair in interp.symlinks],
        "scratch_bytes": limits.scratch_mb << 20,
        "inodes": SCRATCH_INODES,
    }


def jail_mountpoint(plan: TierPlan) -> str:
    """A host directory to mount the new root on that hides none of the paths bound into it."""
    assert plan.interpreter is not None
    needed = plan.interpreter.mount_points
    for candidate in JAIL_MOUNTPOINTS:
        if os.path.isdir(candidate) and not os.path.islink(candidate) and not any(
            path == candidate or path.startswith(candidate + os.sep) for path in needed
        ):
            return candidate
    raise OSError(f"no directory among {JAIL_MOUNTPOINTS} can hold the sandbox root")


def _unshare_argv(plan: TierPlan) -> list[str]:
    argv = [plan.tools["unshare"]]
    if plan.uid is None:
        argv += ["--user", "--map-root-user"]
    return argv + ["--net", "--pid", "--ipc", "--uts", "--mount", "--propagation", "private",
                   "--fork", "--kill-child"]


@contextmanager
def prepared_launch(plan: TierPlan, limits: SandboxLimits) -> Iterator[Launch]:
    """Yield the :class:`Launch` for one run; its host directory is removed afterwards.

    bwrap and unshare need no host directory (unshare mounts its root over an existing directory
    inside its own mount namespace). For rlimit it is the scratch directory, which the keeper also
    removes if this process dies first.
    """
    token = secrets.token_hex(8)
    host_dir = "" if plan.name != "rlimit" else tempfile.mkdtemp(prefix="resd-sandbox-",
                                                                  dir=_scratch_parent(plan))
    home = plan.interpreter.home if plan.interpreter is not None else None
    sweep_uid = plan.uid if plan.uid is not None else os.getuid()
    try:
        if plan.name == "bwrap":
            argv = _setpriv(plan, "KILL", drop=True) + _bwrap_argv(plan, limits) + _python(plan)
            yield Launch(argv, child_env(INSIDE_SCRATCH, token, home), "/", sweep_uid, True, token)
        elif plan.name == "unshare":
            argv = _setpriv(plan, "KILL", drop=False) + _unshare_argv(plan) + _python(plan)
            setup = {"jail": _jail_spec(plan, jail_mountpoint(plan), limits)}
            yield Launch(argv, child_env(INSIDE_SCRATCH, token, home), "/", sweep_uid, True, token,
                         setup=setup)
        else:
            if plan.uid is not None:
                os.chown(host_dir, plan.uid, plan.uid)
            argv = _setpriv(plan, "TERM", drop=False) + _python(plan)
            setup = {"keeper": True, "uid": plan.uid, "scratch": host_dir}
            yield Launch(argv, child_env(host_dir, token), host_dir, sweep_uid, False, token,
                         setup=setup, keeper=True)
    finally:
        if host_dir:
            shutil.rmtree(host_dir, ignore_errors=True)


def _scratch_parent(plan: TierPlan) -> str:
    """A temp root the sandbox uid can enter (the parent's TMPDIR may sit in a private home)."""
    preferred = tempfile.gettempdir()
    if plan.uid is None:
        return preferred
    for candidate in (preferred, "/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(candidate) and all(
            os.stat(p).st_mode & 0o001 for p in [candidate, *_parents(candidate)]
        ):
            return candidate
    return preferred


def _parents(path: str) -> list[str]:
    out = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return out
        out.append(parent)
        path = parent
