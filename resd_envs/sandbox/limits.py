"""Resource and time limits for one sandboxed submission (:class:`SandboxLimits`).

Owns only the numbers and their validation; how they are enforced lives in ``child.py`` (rlimits,
per-call timer) and ``process.py`` (wall-clock budget, output caps, watchdog).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from resd_envs.errors import ConfigError


@dataclass(frozen=True)
class SandboxLimits:
    """Limits applied to one submission (one fresh child process that evaluates every call).

    Attributes:
        call_timeout_s: wall-clock limit of one function call, enforced in the child by a timer
            (SIGALRM) and backed by a parent watchdog (``call_timeout_s + timeout_grace_s``).
        total_timeout_s: wall-clock budget of the whole submission (the program's top level and
            every call), counted from the moment the child is up; the parent SIGKILLs the sandbox
            when it runs out.
        memory_mb: address-space limit (RLIMIT_AS) of each sandbox process.
        cpu_s: CPU-time limit (RLIMIT_CPU) of each sandbox process.
        max_processes: RLIMIT_NPROC: processes of the sandbox uid (default 4; honest programs
            never fork). Only meaningful when the sandbox runs under its own uid. Together with
            ``memory_mb`` and ``scratch_mb`` it bounds what one submission can pin in memory:
            see :attr:`memory_bound_mb`.
        max_open_files: RLIMIT_NOFILE.
        max_file_mb: RLIMIT_FSIZE (largest file the program may write).
        max_output_bytes: cap on captured stdout and on captured stderr (each). Exceeding it
            stops the run with ``error_type="output_limit"``.
        max_result_bytes: cap on the private JSON result channel (all returned values together).
        import_timeout_s: wall-clock limit of the program's top level (imports, definitions);
            ``None`` means the same as ``call_timeout_s``.
        max_call_timeouts: the run stops after this many per-call timeouts; remaining calls are
            reported as ``"timeout"``. The default 1 stops at the first timeout (see docs/sandbox.md).
        timeout_grace_s: slack the parent watchdog adds to a call's limit before it kills a program
            that swallowed the child's timeout signal.
        scratch_mb: size of the private tmpfs ``/tmp`` (also reached as ``/var/tmp`` and
            ``/dev/shm``), the only writable place in the bwrap and unshare tiers.
        startup_timeout_s: how long the sandbox itself may take to start (namespaces, interpreter)
            before the run is a ``sandbox_error``; ``total_timeout_s`` starts counting only once
            the child is up, so machine load does not eat the program's budget.
    """

    call_timeout_s: float = 1.0
    total_timeout_s: float = 10.0
    memory_mb: int = 512
    cpu_s: int = 10
    max_processes: int = 4
    max_open_files: int = 64
    max_file_mb: int = 8
    max_output_bytes: int = 65536
    max_result_bytes: int = 4_000_000
    import_timeout_s: float | None = None
    max_call_timeouts: int = 1
    timeout_grace_s: float = 1.0
    scratch_mb: int = 16
    startup_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        problems = [p for f in fields(self) if (p := _check_field(f.name, getattr(self, f.name)))]
        if problems:
            raise ConfigError("invalid SandboxLimits: " + "; ".join(problems))

    @property
    def effective_import_timeout_s(self) -> float:
        """The top-level time limit actually used."""
        return self.call_timeout_s if self.import_timeout_s is None else self.import_timeout_s

    @property
    def memory_bound_mb(self) -> int:
        """Most memory one submission can pin without cgroups (bwrap/unshare tiers, as root).

        Every process is capped by ``memory_mb`` of address space, there are at most
        ``max_processes`` of them, and the only writable mount is the ``scratch_mb`` tmpfs (the
        root is read-only, ``/dev`` holds bound device nodes only).
        """
        return self.max_processes * self.memory_mb + self.scratch_mb


#: Allowed ranges and why (a value outside gives a ConfigError naming the range and the reason).
_RANGES: dict[str, tuple[float, float, str]] = {
    "call_timeout_s": (0.05, 600.0, "below 50 ms even an empty call misses it on a loaded machine"),
    "total_timeout_s": (0.5, 3600.0, "starting Python and loading the program takes tenths of a second"),
    "import_timeout_s": (0.05, 600.0, "the program's top level needs time to compile"),
    "timeout_grace_s": (0.0, 60.0, "it only delays the kill of a program that blocks its timer"),
    "startup_timeout_s": (0.001, 600.0, "namespace set-up can stall for seconds under load"),
    "memory_mb": (128, 1 << 20, "the sandboxed interpreter alone maps about 30 MB and imports more"),
    "cpu_s": (1, 3600, "RLIMIT_CPU counts whole seconds"),
    "max_processes": (1, 4096, "each process may use memory_mb, so this multiplies the memory bound"),
    "max_open_files": (16, 65536, "the interpreter needs a handful of descriptors to start"),
    "max_file_mb": (1, 1 << 20, "the limit is applied in whole megabytes"),
    "max_output_bytes": (1024, 1 << 30, "feedback needs at least a short traceback"),
    "max_result_bytes": (65536, 1 << 30, "every call's value and framing must fit"),
    "max_call_timeouts": (1, 1 << 20, "at least the first timeout has to be counted"),
    "scratch_mb": (1, 1 << 20, "tmpfs sizes are given in whole megabytes"),
}
_SECONDS = ("call_timeout_s", "total_timeout_s", "import_timeout_s", "timeout_grace_s", "startup_timeout_s")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _check_field(name: str, value: object) -> str | None:
    """Return a sentence describing what is wrong with one field, or None if it is fine."""
    if name == "import_timeout_s" and value is None:
        return None
    low, high, why = _RANGES[name]
    if name in _SECONDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{name} must be a finite number of seconds in [{_num(low)}, {_num(high)}], got {value!r}"
        unit = " s"
    elif isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an int in [{_num(low)}, {_num(high)}], got {value!r}"
    else:
        unit = ""
    if not low <= value <= high:
        return f"{name} must be in [{_num(low)}, {_num(high)}]{unit}, got {value!r} ({why})"
    return None
