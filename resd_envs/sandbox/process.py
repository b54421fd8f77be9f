"""Start one sandbox child, supervise it, and make sure nothing of it survives.

Owns the parent side of the process: the request handed over on a memfd, the private result
pipe, capped non-blocking reads of stdout/stderr, the total wall-clock budget, the per-phase
watchdog, the SIGKILL of the process group, and the sweep of leftover processes (in the sandbox's
PID namespace, or, for the rlimit tier, in its group/session or carrying the run's marker).
It does not decide what the transcript means; ``runner.py`` does.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.protocol import ProtocolViolation, Transcript, parse_line

#: Environment variable carrying the per-run marker used to find escaped processes.
MARKER_VAR = "RESD_SANDBOX_RUN"
_DRAIN_S = 0.3
_SWEEP_S = 2.0


@dataclass
class Launch:
    """How to start one child: argv, environment, cwd, and the uid/pid namespace to sweep."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    sweep_uid: int
    own_pid_namespace: bool
    token: str
    popen_user: int | None = None


@dataclass
class ChildReport:
    """What supervision observed. ``stop`` is why supervision ended (see :func:`run_child`)."""

    transcript: Transcript
    stdout: bytes
    stderr: bytes
    stop: str
    returncode: int | None
    detail: str = ""
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of the child and every descendant it reaped


def run_child(launch: Launch, request: bytes, limits: SandboxLimits, n_calls: int) -> ChildReport:
    """Run one child to completion or to a limit.

    ``stop`` is one of: "exited" (the child ended by itself), "startup_timeout" (no hello in
    ``startup_timeout_s``), "total_timeout" (counted from the hello), "watchdog" (a phase
    overran its limit plus grace), "output_limit", "result_limit", "protocol" (the result channel
    was tampered with), "spawn_failed".
    """
    transcript = Transcript(n_calls)
    start = time.monotonic()
    request_fd = os.memfd_create("resd-sandbox-request")
    result_r, result_w = os.pipe()
    try:
        os.write(request_fd, request)
        os.lseek(request_fd, 0, os.SEEK_SET)
        extra = {}
        if launch.popen_user is not None:
            extra = {"user": launch.popen_user, "group": launch.popen_user, "extra_groups": []}
        try:
            proc = subprocess.Popen(
                launch.argv + [str(request_fd), str(result_w)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=launch.env,
                cwd=launch.cwd,
                pass_fds=(request_fd, result_w),
                start_new_session=True,
                **extra,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(result_r)
            return ChildReport(transcript, b"", b"", "spawn_failed", None, f"could not start: {exc}")
    finally:
        os.close(request_fd)
        os.close(result_w)
    supervisor = _Supervisor(proc, result_r, transcript, limits, start)
    try:
        stop = supervisor.watch()
        _kill_group(proc)
        _sweep(launch, proc.pid, None, deadline=time.monotonic() + 0.05)
        supervisor.drain(time.monotonic() + _DRAIN_S)
        pidns = transcript.hello.get("pidns") if transcript.hello else None
        _sweep(launch, proc.pid, pidns, deadline=time.monotonic() + _SWEEP_S)
        returncode, cpu_s = _reap(proc)
    finally:
        supervisor.close()
    stop = supervisor.protocol_stop or stop
    return ChildReport(
        transcript,
        bytes(supervisor.out),
        bytes(supervisor.err),
        stop,
        returncode,
        supervisor.detail,
        time.monotonic() - start,
        cpu_s,
    )


def _reap(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for the child; return its exit code (negative = signal) and the tree's CPU seconds.

    The CPU time tells a CPU-rlimit kill (SIGKILL when soft = hard) apart from other deaths, since
    bwrap and unshare report a killed child only as an exit status of their own.
    """
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        return proc.wait(), 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


class _Supervisor:
    """The read loop: feeds result lines to the transcript and enforces time and size limits."""

    def __init__(self, proc: subprocess.Popen, result_fd: int, transcript: Transcript,
                 limits: SandboxLimits, start: float) -> None:
        self.proc, self.transcript, self.limits = proc, transcript, limits
        self.total_deadline = start + limits.startup_timeout_s  # moved on once the child says hello
        self.phase_deadline: float | None = None
        self.out, self.err, self.res = bytearray(), bytearray(), bytearray()
        self.detail = ""
        self.protocol_stop: str | None = None
        self.selector = selectors.DefaultSelector()
        self.buffers = {proc.stdout.fileno(): self.out, proc.stderr.fileno(): self.err, result_fd: self.res}
        self.caps = {proc.stdout.fileno(): limits.max_output_bytes,
                     proc.stderr.fileno(): limits.max_output_bytes,
                     result_fd: limits.max_result_bytes}
        self.result_fd = result_fd
        self.owned = [result_fd]
        for fd in self.buffers:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ)
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)
            self.owned.append(self.pidfd)
            self.selector.register(self.pidfd, selectors.EVENT_READ)
        except (AttributeError, OSError):
            self.pidfd = None

    def watch(self) -> str:
        """Loop until the child exits or a limit is hit; return the stop reason."""
        while True:
            now = time.monotonic()
            if now >= self.total_deadline:
                if self.transcript.hello is None:
                    self.detail = f"the sandbox did not start within {self.limits.startup_timeout_s:g} s"
                    return "startup_timeout"
                self.detail = f"the submission used its whole {self.limits.total_timeout_s:g} s budget"
                return "total_timeout"
            if self.phase_deadline is not None and now >= self.phase_deadline:
                return "watchdog"
            deadline = min(self.total_deadline, self.phase_deadline or self.total_deadline)
            wait = deadline - now if self.pidfd is not None else min(deadline - now, 0.01)
            for key, _ in self.selector.select(wait):
                if key.fd == self.pidfd:
                    return "exited"
                over = self._read(key.fd)
                if over:
                    return over
                if self.protocol_stop:
                    return self.protocol_stop
            if self.pidfd is None and self.proc.poll() is not None:
                return "exited"

    def _read(self, fd: int) -> str | None:
        """Read what is available on ``fd``; return a stop reason if a cap was exceeded."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        except OSError:
            chunk = b""
        if not chunk:
            self.selector.unregister(fd)
            return None
        buffer = self.buffers[fd]
        buffer += chunk
        if len(buffer) > self.caps[fd]:
            del buffer[self.caps[fd]:]
            if fd == self.result_fd:
                self.detail = f"the result channel exceeded {self.limits.max_result_bytes} bytes"
                return "result_limit"
            name = "stdout" if fd == self.proc.stdout.fileno() else "stderr"
            self.detail = f"the program wrote more than {self.limits.max_output_bytes} bytes to {name}"
            return "output_limit"
        if fd == self.result_fd:
            self._consume_lines()
        return None

    def _consume_lines(self) -> None:
        while self.protocol_stop is None:
            end = self.res.find(b"\n")
            if end < 0:
                return
            line = bytes(self.res[:end])
            del self.res[: end + 1]
            before = self.transcript.current
            had_hello = self.transcript.hello is not None
            try:
                self.transcript.add(parse_line(line))
            except ProtocolViolation as exc:
                self.protocol_stop = "protocol"
                self.detail = str(exc)
                return
            if not had_hello and self.transcript.hello is not None:
                self.total_deadline = time.monotonic() + self.limits.total_timeout_s
            current = self.transcript.current
            if current is None:
                self.phase_deadline = None
            elif current != before:
                limits = self.limits
                limit = limits.effective_import_timeout_s if current == -1 else limits.call_timeout_s
                self.phase_deadline = time.monotonic() + limit + self.limits.timeout_grace_s

    def drain(self, deadline: float) -> None:
        """After the child is gone, read what is left in the pipes (bounded by ``deadline``)."""
        if self.pidfd is not None:
            self.selector.unregister(self.pidfd)
        while self.selector.get_map() and time.monotonic() < deadline:
            events = self.selector.select(max(0.0, deadline - time.monotonic()))
            for key, _ in events:
                if self._read(key.fd):
                    return

    def close(self) -> None:
        self.selector.close()
        for fd in self.owned:
            try:
                os.close(fd)
            except OSError:
                pass
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's process group (its session leader is the child itself) and the child.

    ``os.kill`` rather than ``Popen.kill``: the latter polls and would reap the child before
    :func:`_reap` can read its resource usage. The unreaped child keeps its pid, so no pid reuse.
    """
    for action in (os.killpg, os.kill):
        try:
            action(proc.pid, signal.SIGKILL)
        except OSError:
            pass


def _sweep(launch: Launch, leader: int, pidns: int | None, *, deadline: float) -> None:
    """SIGKILL leftover sandbox processes until none remain or ``deadline`` passes."""
    while True:
        targets = find_leftovers(launch, leader, pidns)
        if not targets:
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return
        time.sleep(0.002)


def find_leftovers(launch: Launch, leader: int, pidns: int | None) -> list[int]:
    """Live (non-zombie) processes that belong to this run.

    Namespaced tiers: processes of the sandbox uid inside the run's PID namespace (known from the
    child's hello). rlimit tier: processes of the sandbox uid in the leader's process group or
    session, or whose initial environment carries this run's marker.
    """
    own = os.getpid()
    marker = f"{MARKER_VAR}={launch.token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == own:
            continue
        pid = int(name)
        try:
            if os.stat(f"/proc/{name}").st_uid != launch.sweep_uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if fields[0] in (b"Z", b"X"):
                continue
            if launch.own_pid_namespace:
                if pidns and os.readlink(f"/proc/{name}/ns/pid") == f"pid:[{pidns}]":
                    found.append(pid)
                continue
            if int(fields[2]) == leader or int(fields[3]) == leader:
                found.append(pid)
                continue
            with open(f"/proc/{name}/environ", "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    found.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found
