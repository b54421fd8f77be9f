"""Build the command line, environment and scratch directory of one sandbox child per tier.

Owns argv construction only; starting and supervising the process is ``process.py``'s job.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.process import MARKER_VAR, Launch
from resd_envs.sandbox.tiers import TierPlan, child_code

#: Python flags: no user site, no site (so no dist-packages), no bytecode, unbuffered output.
#: ``-I``/``-E`` are not used because they make Python ignore PYTHONHASHSEED; the environment is
#: rebuilt from scratch instead (see :func:`child_env`), which gives the same isolation.
PYTHON_FLAGS = ("-s", "-S", "-B", "-u")
_INSIDE_SCRATCH = "/tmp"
_MOUNT_SCRIPT = (
    'dir=$0; opts=$1; mnt=$2; shift 2; '
    '"$mnt" -t tmpfs -o "$opts" resd-scratch "$dir" && cd "$dir" && exec "$@"'
)


def child_env(scratch: str, token: str) -> dict[str, str]:
    """The complete environment of the child: nothing inherited from the parent."""
    return {
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


def _drop(plan: TierPlan) -> list[str]:
    if plan.uid is None or "setpriv" not in plan.tools:
        return []
    return [plan.tools["setpriv"], f"--reuid={plan.uid}", f"--regid={plan.uid}", "--clear-groups",
            "--no-new-privs"]


def _python(plan: TierPlan) -> list[str]:
    return [plan.python, *PYTHON_FLAGS, "-c", child_code()]


def _bwrap_argv(plan: TierPlan, limits: SandboxLimits) -> list[str]:
    argv = [plan.tools["bwrap"], "--unshare-all", "--unshare-user", "--die-with-parent",
            "--new-session", "--hostname", "sandbox"]
    if "--disable-userns" in plan.bwrap_flags:
        argv.append("--disable-userns")
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for prefix in plan.extra_binds:
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if "--size" in plan.bwrap_flags:
        argv += ["--size", str(limits.scratch_mb << 20)]
    argv += ["--perms", "0700", "--tmpfs", _INSIDE_SCRATCH, "--chdir", _INSIDE_SCRATCH]
    return argv


def _unshare_argv(plan: TierPlan, scratch: str, limits: SandboxLimits) -> list[str]:
    argv = [plan.tools["unshare"]]
    if plan.uid is None:
        argv += ["--user", "--map-root-user"]
    argv += ["--net", "--pid", "--ipc", "--uts", "--mount", "--fork", "--kill-child", "--mount-proc"]
    owner = 0 if plan.uid is None else plan.uid
    opts = f"size={limits.scratch_mb}m,mode=0700,uid={owner},gid={owner},nosuid,nodev"
    return argv + ["/bin/sh", "-c", _MOUNT_SCRIPT, scratch, opts, plan.tools["mount"]]


@contextmanager
def prepared_launch(plan: TierPlan, limits: SandboxLimits) -> Iterator[Launch]:
    """Yield the :class:`Launch` for one run; its host scratch directory is removed afterwards."""
    token = secrets.token_hex(8)
    # bwrap's scratch is a tmpfs that exists only inside the sandbox; the others need a host dir.
    scratch = ""
    if plan.name != "bwrap":
        scratch = tempfile.mkdtemp(prefix="resd-sandbox-", dir=_scratch_parent(plan))
    try:
        sweep_uid = plan.uid if plan.uid is not None else os.getuid()
        if plan.name == "bwrap":
            argv = _drop(plan) + _bwrap_argv(plan, limits) + _python(plan)
            env, cwd = child_env(_INSIDE_SCRATCH, token), "/"
        elif plan.name == "unshare":
            argv = _unshare_argv(plan, scratch, limits) + _drop(plan) + _python(plan)
            env, cwd = child_env(scratch, token), scratch
        else:
            if plan.uid is not None:
                os.chown(scratch, plan.uid, plan.uid)
            argv = _drop(plan) + _python(plan)
            env, cwd = child_env(scratch, token), scratch
        popen_user = plan.uid if plan.uid is not None and "setpriv" not in plan.tools else None
        yield Launch(argv, env, cwd, sweep_uid, plan.name != "rlimit", token, popen_user)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


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
