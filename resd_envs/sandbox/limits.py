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
        max_processes: RLIMIT_NPROC; only meaningful when the sandbox runs under its own uid.
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
        scratch_mb: size of the private tmpfs scratch directory (bwrap and unshare tiers).
        startup_timeout_s: how long the sandbox itself may take to start (namespaces, interpreter)
            before the run is a ``sandbox_error``; ``total_timeout_s`` starts counting only once
            the child is up, so machine load does not eat the program's budget.
    """

    call_timeout_s: float = 1.0
    total_timeout_s: float = 10.0
    memory_mb: int = 512
    cpu_s: int = 10
    max_processes: int = 32
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


_MINIMUMS: dict[str, float] = {
    "memory_mb": 64,
    "cpu_s": 1,
    "max_processes": 1,
    "max_open_files": 16,
    "max_file_mb": 1,
    "max_output_bytes": 1024,
    "max_result_bytes": 65536,
    "max_call_timeouts": 1,
    "scratch_mb": 1,
}


def _check_field(name: str, value: object) -> str | None:
    """Return a sentence describing what is wrong with one field, or None if it is fine."""
    if name == "import_timeout_s" and value is None:
        return None
    if name in ("call_timeout_s", "total_timeout_s", "import_timeout_s", "timeout_grace_s",
                "startup_timeout_s"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{name} must be a finite number of seconds, got {value!r}"
        low = {"timeout_grace_s": 0.0, "startup_timeout_s": 0.001}.get(name, 0.01)
        if value < low:
            return f"{name} must be at least {low} s, got {value!r}"
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an int, got {value!r}"
    minimum = _MINIMUMS[name]
    if value < minimum:
        return f"{name} must be at least {minimum:g}, got {value!r}"
    return None
