"""Isolation tiers: what each one needs on this machine and what it exposes (:class:`TierPlan`).

Three tiers, strongest first (``auto`` picks the first whose self-test passes; see ``selection.py``):

* ``bwrap``: bubblewrap run as the sandbox uid (65534 when we are root): new user, pid, net, ipc,
  uts and cgroup namespaces; the root is an empty read-only tmpfs holding only the interpreter's
  own files (:class:`Interpreter`), a few device nodes, ``/proc`` and a size-limited ``/tmp``.
* ``unshare``: util-linux ``unshare`` (net, pid, ipc, uts, mount namespaces; ``--kill-child``);
  inside, the child (still root) builds the same minimal root itself, switches into it and drops
  to the sandbox uid with no_new_privs before any model code runs (``jail.py``).
* ``rlimit``: no namespaces; the uid drop (when root), rlimits and a keeper process that reaps
  escaped descendants. It cannot hide files, so it runs only when the caller opts in.

This module only discovers and describes; it never runs model code and never imports the runner
(the self-test lives in ``selftest.py``, tier choice in ``selection.py``).
Overrides: ``RESD_SANDBOX_PYTHON`` (interpreter), ``RESD_SANDBOX_UID`` (uid).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from resd_envs.errors import ConfigError, ResdEnvError

TIERS: tuple[str, ...] = ("bwrap", "unshare", "rlimit")
DEFAULT_UID = 65534
#: Directory names that hold installed packages; hidden wherever they sit inside a bound directory.
PACKAGE_DIRS: tuple[str, ...] = ("site-packages", "dist-packages")
#: Device nodes the sandbox gets (bound read-write from the host; nothing else under /dev).
DEVICES: tuple[str, ...] = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../resd_envs


class SandboxUnavailableError(ResdEnvError, RuntimeError):
    """The requested isolation tier (or, for ``auto``, every tier) is not usable here."""


@dataclass(frozen=True)
class Interpreter:
    """Exactly what one Python interpreter needs to run its standard library, nothing more.

    Attributes:
        executable: real path of the binary (what the jailed tiers execute).
        home: ``PYTHONHOME`` for the child (``prefix`` or ``prefix:exec_prefix``), so a copied
            venv binary finds its standard library without its ``pyvenv.cfg``.
        files: files bound read-only: the binary, its program loader and the loader cache.
        dirs: directories bound read-only: the standard library, ``lib-dynload`` and the
            directories of the shared libraries the binary and its extension modules load.
        masked: package directories (``site-packages``/``dist-packages``, up to two levels
            inside ``dirs``) when the interpreter was described; each launch hides those found
            then (:func:`package_dirs_now`) under an empty read-only tmpfs.
        symlinks: ``(link, target)`` pairs recreated so the loader's paths resolve (e.g.
            ``/lib64 -> usr/lib64`` on merged-/usr systems).
    """

    executable: str
    home: str
    files: tuple[str, ...]
    dirs: tuple[str, ...]
    masked: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...] = ()

    @property
    def mount_points(self) -> tuple[str, ...]:
        """Every path the sandbox sees from the host (for checks and docs)."""
        return (*self.files, *self.dirs)


@dataclass(frozen=True)
class TierPlan:
    """A usable tier: everything needed to build a launch command."""

    name: str
    python: str
    uid: int | None  # uid the sandbox runs as; None = our own uid (we are not root)
    bwrap_flags: tuple[str, ...] = ()
    interpreter: Interpreter | None = None  # None for the rlimit tier (nothing is hidden there)
    tools: dict[str, str] = field(default_factory=dict)
    self_test_ms: float = 0.0


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


def others_can_reach(path: str, *, need: int = 0o001) -> bool:
    """Every directory on the way carries the 'other' execute bit and ``path`` itself ``need``."""
    current = Path(path)
    for index, part in enumerate([current, *current.parents]):
        try:
            mode = os.stat(part).st_mode
        except OSError:
            return False
        bit = need if index == 0 and not stat.S_ISDIR(mode) else 0o001
        if not mode & bit:
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
        if uid is not None and not others_can_reach(real):
            continue
        return candidate
    return None


# Run by the interpreter itself (as us, once per process): where its stdlib lives and which shared
# objects it maps after importing every extension module of its lib-dynload directory.
_PROBE = r"""
import json, os, sys
dynload = [p for p in sys.path if p.endswith("lib-dynload")]
for d in dynload:
    for name in sorted(os.listdir(d)):
        if name.endswith(".so"):
            try:
                __import__(name.split(".")[0])
            except BaseException:
                pass
libs = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
            libs.add(parts[5].strip())
print(json.dumps({"executable": os.path.realpath(sys.executable), "prefix": sys.prefix,
                  "exec_prefix": sys.exec_prefix, "base_prefix": sys.base_prefix,
                  "base_exec_prefix": sys.base_exec_prefix,
                  "path": [p for p in sys.path if p], "libs": sorted(libs)}))
"""


def describe_interpreter(python: str) -> Interpreter:
    """Probe ``python`` and list what must be visible for it to run (and nothing else).

    Raises SandboxUnavailableError when the probe fails or when a directory that would have to be
    bound contains this package outside a hidden package directory.
    """
    try:
        done = subprocess.run([python, "-S", "-s", "-B", "-c", _PROBE], capture_output=True, text=True,
                              timeout=60, check=False, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})
        facts = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxUnavailableError(f"could not probe the sandbox interpreter {python}: {exc}") from None
    home = facts["base_prefix"]
    if facts["base_exec_prefix"] != home:
        home = f"{home}:{facts['base_exec_prefix']}"
    stdlib = [os.path.realpath(p) for p in facts["path"] if os.path.isdir(p)]
    libs = [os.path.realpath(p) for p in facts["libs"] if os.path.isfile(p)]
    lib_dirs = [os.path.dirname(p) for p in libs if not any(p.startswith(d + os.sep) for d in stdlib)]
    dirs = tuple(dict.fromkeys(stdlib + lib_dirs))
    masked = tuple(dict.fromkeys(m for d in dirs for m in _package_dirs(d)))
    files = [facts["executable"]]
    symlinks = [(f"/{e.name}", os.readlink(e.path)) for e in os.scandir("/") if e.is_symlink()]
    loader = _elf_interpreter(facts["executable"])
    if loader:
        symlinks += _symlink_chain(loader)
        files.append(os.path.realpath(loader))
    if os.path.isfile("/etc/ld.so.cache"):
        files.append("/etc/ld.so.cache")
    package = str(_PACKAGE_ROOT)
    for d in dirs:
        inside = package == d or package.startswith(d + os.sep)
        if inside and not any(package == m or package.startswith(m + os.sep) for m in masked):
            raise SandboxUnavailableError(
                f"the interpreter needs {d}, which contains resd_envs itself ({package}); use an "
                "interpreter installed elsewhere (RESD_SANDBOX_PYTHON)"
            )
    files = [f for f in dict.fromkeys(files) if not any(f.startswith(d + os.sep) for d in dirs)]
    return Interpreter(facts["executable"], home, tuple(files), dirs, masked,
                       tuple(dict.fromkeys(symlinks)))


def package_dirs_now(interpreter: Interpreter) -> tuple[str, ...]:
    """The package directories inside ``interpreter.dirs`` as they are at this moment.

    A launch hides these, not only :attr:`Interpreter.masked` (the ones that existed when the
    interpreter was described, once per process): a ``dist-packages`` created later inside a bound
    directory (a ``pip install`` into the system Python while a trainer runs; the test suite
    planting one) would otherwise be visible to model code. Costs a few ``scandir`` calls.
    """
    return tuple(dict.fromkeys(m for d in interpreter.dirs for m in _package_dirs(d)))


def _package_dirs(directory: str) -> list[str]:
    """``site-packages``/``dist-packages`` directories at most two levels inside ``directory``."""
    found = []
    try:
        level1 = [e for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return found
    for entry in level1:
        if entry.name in PACKAGE_DIRS:
            found.append(entry.path)
            continue
        try:
            found += [e.path for e in os.scandir(entry.path)
                      if e.name in PACKAGE_DIRS and e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
    return found


def _elf_interpreter(path: str) -> str | None:
    """The program loader (ELF ``PT_INTERP``) named by the binary at ``path``, if any."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] != b"\x7fELF":
                return None
            wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
            if wide:
                phoff, = struct.unpack_from(order + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
            else:
                phoff, = struct.unpack_from(order + "I", head, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
            for index in range(phnum):
                handle.seek(phoff + index * phentsize)
                header = handle.read(phentsize)
                if struct.unpack_from(order + "I", header, 0)[0] != 3:  # PT_INTERP
                    continue
                if wide:  # Elf64_Phdr: p_offset at 8, p_filesz at 32
                    offset, size = struct.unpack_from(order + "Q", header, 8)[0], struct.unpack_from(order + "Q", header, 32)[0]
                else:  # Elf32_Phdr: p_offset at 4, p_filesz at 16
                    offset, size = struct.unpack_from(order + "I", header, 4)[0], struct.unpack_from(order + "I", header, 16)[0]
                handle.seek(offset)
                return handle.read(size).rstrip(b"\0").decode("utf-8", "replace")
    except (OSError, struct.error):
        return None
    return None


def _symlink_chain(path: str) -> list[tuple[str, str]]:
    """Every ``(link, target)`` met while resolving ``path`` component by component."""
    links: list[tuple[str, str]] = []
    current, pending = "/", [p for p in path.split("/") if p]
    while pending and len(links) < 40:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            target = os.readlink(candidate)
            links.append((candidate, target))
            if target.startswith("/"):
                current = "/"
            pending = [p for p in target.split("/") if p] + pending
        else:
            current = candidate
    return links


def _bwrap_flags(bwrap: str) -> tuple[str, ...]:
    """Optional bwrap flags this bwrap version supports."""
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10,
                              check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(flag for flag in ("--disable-userns", "--size", "--remount-ro") if flag in text)


def _setpriv_has_pdeathsig(setpriv: str) -> bool:
    try:
        text = subprocess.run([setpriv, "--help"], capture_output=True, text=True, timeout=10,
                              check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "--pdeathsig" in text


def candidate_plan(name: str) -> TierPlan:
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
    needed = {"bwrap": ["bwrap", "setpriv"], "unshare": ["unshare", "setpriv"], "rlimit": ["setpriv"]}[name]
    tools = {}
    for tool in needed:
        found = shutil.which(tool, path=_SEARCH_PATH)
        if found is None:
            package = "bubblewrap" if tool == "bwrap" else "util-linux"
            raise SandboxUnavailableError(f"'{tool}' not found; install the '{package}' package")
        tools[tool] = found
    if not _setpriv_has_pdeathsig(tools["setpriv"]):
        raise SandboxUnavailableError("setpriv lacks --pdeathsig (util-linux >= 2.33 is needed)")
    flags: tuple[str, ...] = ()
    if name == "bwrap":
        flags = _bwrap_flags(tools["bwrap"])
        missing = {"--size", "--remount-ro"} - set(flags)
        if missing:
            raise SandboxUnavailableError(f"bwrap is too old: it lacks {sorted(missing)} (0.5 or newer needed)")
    interpreter = describe_interpreter(python) if name != "rlimit" else None
    if name == "bwrap" and uid is not None and interpreter is not None:
        hidden = [p for p in interpreter.mount_points if not others_can_reach(p, need=0o004)]
        if hidden:
            raise SandboxUnavailableError(f"uid {uid} cannot reach {hidden[0]}, which bwrap must bind")
    return TierPlan(name, python, uid, flags, interpreter, tools)
