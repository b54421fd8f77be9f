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
import threading
import time
from dataclasses import dataclass

from resd_envs.sandbox.launch import MARKER_VAR, Launch
from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.protocol import ProtocolViolation, Transcript, parse_line

__all__ = ["MARKER_VAR", "ChildReport", "Launch", "find_leftovers", "kill_live_sandboxes", "run_child"]

#: Seconds to read what is left in the pipes once the child is gone.
DRAIN_S = 0.3
#: Seconds the leftover sweep keeps killing before it gives up.
SWEEP_S = 2.0
#: Seconds a keeper (rlimit tier) gets to kill its descendants after SIGTERM before SIGKILL.
KEEPERSWEEP_S = 2.0

_LIVE: dict[int, tuple[subprocess.Popen, Launch]] = {}
_LIVE_LOCK = threading.Lock()


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
    """Run one child to completion or to a limit; nothing of it survives this call.

    ``stop`` is one of: "exited" (the child ended by itself), "startup_timeout" (no hello in
    ``startup_timeout_s``), "total_timeout" (counted from the hello), "watchdog" (a phase, or the
    gap between phases, overran its limit plus grace), "call_timeout" (the parent's own clock saw
    calls exceed ``call_timeout_s`` as often as ``max_call_timeouts`` allows), "output_limit",
    "result_limit", "protocol" (the result channel was tampered with), "spawn_failed".

    Clean-up (kill of the tree, sweep, reap, closing fds) runs on every exit path, including an
    exception or KeyboardInterrupt raised while supervising. If this process is SIGKILLed instead,
    the child's parent-death signals and its lifeline pipe (closed by the kernel) end the sandbox.
    """
    transcript = Transcript(n_calls)
    start = time.monotonic()
    request_fd = os.memfd_create("resd-sandbox-request")
    result_r, result_w = os.pipe()
    life_r, life_w = os.pipe()  # we never write: the child sees EOF only once we are gone
    try:
        os.write(request_fd, request)
        os.lseek(request_fd, 0, os.SEEK_SET)
        extra = {}
        if launch.popen_user is not None:
            extra = {"user": launch.popen_user, "group": launch.popen_user, "extra_groups": []}
        try:
            proc = subprocess.Popen(
                launch.argv + [str(request_fd), str(result_w), str(life_r)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=launch.env,
                cwd=launch.cwd,
                pass_fds=(request_fd, result_w, life_r),
                start_new_session=True,
                **extra,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(result_r)
            os.close(life_w)
            return ChildReport(transcript, b"", b"", "spawn_failed", None, f"could not start: {exc}")
    finally:
        for fd in (request_fd, result_w, life_r):
            os.close(fd)
    with _LIVE_LOCK:
        _LIVE[proc.pid] = (proc, launch)
    supervisor = _Supervisor(proc, result_r, transcript, limits, start)
    stop = "interrupted"
    returncode, cpu_s = None, 0.0
    try:
        stop = supervisor.watch()
        end_tree(proc, launch, None)
        supervisor.drain(time.monotonic() + DRAIN_S)
    finally:
        try:
            pidns = transcript.hello.get("pidns") if transcript.hello else None
            end_tree(proc, launch, pidns)
            returncode, cpu_s = _reap(proc)
        finally:
            with _LIVE_LOCK:
                _LIVE.pop(proc.pid, None)
            os.close(life_w)
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


def end_tree(proc: subprocess.Popen, launch: Launch, pidns: int | None) -> None:
    """Kill the child and everything it started, then sweep leftovers (idempotent)."""
    if launch.keeper and proc.returncode is None:
        _ask_keeper(proc)
    _kill_group(proc)
    _sweep(launch, proc.pid, pidns, deadline=time.monotonic() + (SWEEP_S if pidns else 0.05))


def _ask_keeper(proc: subprocess.Popen) -> None:
    """SIGTERM the keeper and wait (bounded) for it to kill its descendants and exit."""
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + KEEPERSWEEP_S
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return
        time.sleep(0.002)


def kill_live_sandboxes() -> int:
    """SIGKILL every sandbox this process is supervising (used at interpreter shutdown).

    Their supervising threads then sweep and reap them as usual. Returns how many were signalled.
    """
    with _LIVE_LOCK:
        live = list(_LIVE.values())
    for proc, launch in live:
        if launch.keeper:
            _ask_keeper(proc)
        _kill_group(proc)
    return len(live)


def _register_shutdown_hook() -> None:
    # threading's at-exit hooks run before non-daemon threads are joined, so a Ctrl-C in the main
    # thread ends sandboxes supervised by worker threads at once instead of at their deadlines.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(kill_live_sandboxes)
            return
        except RuntimeError:  # interpreter already shutting down
            return
    import atexit

    atexit.register(kill_live_sandboxes)


_register_shutdown_hook()


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
        self.phase_started = start
        self.parent_timeouts = 0
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
                current = self.transcript.current
                what = "the program's top level" if current == -1 else (
                    f"call {current}" if current is not None else "the sandbox between calls")
                self.detail = f"{what} overran its time limit (the parent's watchdog stopped it)"
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
            now = time.monotonic()
            if not had_hello and self.transcript.hello is not None:
                self.total_deadline = now + self.limits.total_timeout_s
            current = self.transcript.current
            if before is not None and current is None and self._overran(before, now):
                return
            if current is not None and current != before:
                limit = self._limit(current)
                self.phase_started = now
                self.phase_deadline = now + limit + self.limits.timeout_grace_s
            elif current is None:
                # Between phases only our child code runs (value conversion, the next "begin",
                # the exit after "end"); a stopped or traced child must not hold the run open.
                self.phase_deadline = now + self.limits.call_timeout_s + self.limits.timeout_grace_s

    def _limit(self, index: int) -> float:
        return self.limits.effective_import_timeout_s if index == -1 else self.limits.call_timeout_s

    def _overran(self, index: int, now: float) -> bool:
        """Apply our own clock to the phase that just reported; True when the run must stop.

        Whatever the child reports, a phase that took longer than its limit on the parent's clock
        is a timeout: ignoring or blocking the timer signal buys no time.
        """
        t = self.transcript
        if now - self.phase_started <= self._limit(index):
            return False
        if index == -1:
            if t.import_status != "timeout":
                t.import_status, t.import_message = "timeout", ""
            self.protocol_stop = "call_timeout"
            return True
        if t.results[-1][0] != "timeout":
            t.results[-1] = ("timeout", "")
        self.parent_timeouts += 1
        if sum(1 for kind, _ in t.results if kind == "timeout") >= self.limits.max_call_timeouts:
            self.protocol_stop = "call_timeout"
            return True
        return False

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
