"""Nothing of a sandbox survives its caller: Ctrl-C, an exception, or SIGKILL of the caller.

Each case starts a caller process that runs an escaping program (setsid + double fork + execve
with an empty environment, then sleeps) under its own sandbox uid, kills or interrupts the caller,
and measures the time until no process of that uid is left and the caller's temp dir is empty.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

if os.geteuid() != 0:
    pytest.skip("needs root (a private sandbox uid identifies the run's processes)", allow_module_level=True)

ESCAPE = textwrap.dedent("""
    import os, sys, time
    def f(arg):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                try:
                    os.execve(sys.executable, [sys.executable, "-S", "-c", "import time\\ntime.sleep(120)"], {})
                finally:
                    os._exit(0)
            os._exit(0)
        time.sleep(120)
        return [1.0]
    """)

CALLER = textwrap.dedent("""
    import signal
    import sys
    from resd_envs.sandbox import SandboxLimits, run_function_calls
    # a caller started with SIGINT ignored (under nohup or as a background job, as a CI runner may start
    # pytest) inherits that and would never see the test's SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    source, tier, how = sys.argv[1], sys.argv[2], sys.argv[3]
    limits = SandboxLimits(call_timeout_s=100.0, total_timeout_s=110.0)
    try:
        run_function_calls(source, "f", [[0]], tier=tier, limits=limits, allow_rlimit=True)
    except KeyboardInterrupt:
        sys.exit(130)
    """)


def _uid_processes(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue
            found.append(int(name))
        except (OSError, IndexError):
            continue
    return found


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_caller_interrupt_or_death_leaves_nothing(tier: str, how: str, tmp_path: Path) -> None:
    uid = 61000 + (os.getpid() % 1000) + (0 if how == "sigint" else 1000) + 10 * ("bwrap", "unshare", "rlimit").index(tier)
    assert _uid_processes(uid) == []
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    scratch_root.chmod(0o755)
    env = dict(os.environ, RESD_SANDBOX_UID=str(uid), TMPDIR=str(scratch_root),
               PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    caller = subprocess.Popen([sys.executable, "-c", CALLER, ESCAPE, tier, how], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(_uid_processes(uid)) < 2:  # the program and its escapee are up
            assert caller.poll() is None, "the caller ended early"
            assert time.monotonic() < deadline, "the sandbox never started"
            time.sleep(0.05)
        time.sleep(0.3)
        sent = time.monotonic()
        caller.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
        while _uid_processes(uid) and time.monotonic() - sent < 20:
            time.sleep(0.01)
        elapsed = time.monotonic() - sent
        left = _uid_processes(uid)
        caller.wait(timeout=30)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
        for pid in _uid_processes(uid):
            os.kill(pid, signal.SIGKILL)
    print(f"\n{tier}: caller {how} -> no leftover process after {elapsed * 1000:.0f} ms")
    assert left == [], f"{tier}: processes survived the caller's {how}: {left}"
    time.sleep(0.2)
    assert list(scratch_root.iterdir()) == [], "a host scratch directory survived"


def test_exception_in_the_caller_ends_the_run(tier: str, monkeypatch: pytest.MonkeyPatch, marked_runs) -> None:
    from resd_envs.sandbox import SandboxLimits, process, run_function_calls

    original = process._Supervisor._consume_lines
    calls = []

    def explode(self) -> None:
        original(self)
        if self.transcript.current == 0:
            calls.append(1)
            raise RuntimeError("caller failure while supervising")

    monkeypatch.setattr(process._Supervisor, "_consume_lines", explode)
    with pytest.raises(RuntimeError, match="caller failure"):
        run_function_calls("import time\ndef f(x):\n    time.sleep(60)\n", "f", [[0]], tier=tier,
                           limits=SandboxLimits(call_timeout_s=50.0, total_timeout_s=60.0))
    assert calls and marked_runs() == []
