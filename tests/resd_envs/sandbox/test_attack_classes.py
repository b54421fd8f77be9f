"""Attack classes beyond the classic suite, each run in every tier where it applies.

Classes: reading what the package ships or the host keeps (every interpreter layout we can build
here), host temp dirs and sockets, the rlimit opt-in and loud fallbacks, the total memory/disk
bound per submission, soft time limits (ignored timer, stopped/traced process), and forged
out-of-range numbers. Lifecycle (caller Ctrl-C/SIGKILL) is in ``test_lifecycle.py``; the
batching bound in ``test_concurrency.py``. See the threat-model table in docs/sandbox.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

import resd_envs
from resd_envs.errors import ConfigError
from resd_envs.sandbox import SandboxLimits, SandboxRun, SandboxUnavailableError, run_function_calls
from resd_envs.sandbox import selection
from resd_envs.sandbox.protocol import ProtocolViolation, Transcript, parse_line

IS_ROOT = os.geteuid() == 0
JAILED = ("bwrap", "unshare")  # the tiers that hide the host; rlimit refuses unless opted in


def _src(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


# -- reading what the package ships or the host keeps --------------------------------------------
SENTINEL = "resd-sentinel-9f3c1a"

SNOOP = _src(f"""
    import os, stat
    def f(paths):
        found = []
        for path in paths.split("\\n"):
            try:
                with open(path, "rb") as handle:
                    found.append(path)
            except OSError:
                pass
            if os.path.exists(path):
                found.append(path)
        budget = 200000
        for top, dirs, files in os.walk("/"):
            if top.startswith("/proc"):
                dirs[:] = []
                continue
            for name in dirs + files:
                budget -= 1
                full = os.path.join(top, name)
                if "{SENTINEL}" in name or name.endswith(".jsonl.gz") or name in ("resd_envs", "_assets"):
                    found.append(full)
                try:
                    if stat.S_ISSOCK(os.lstat(full).st_mode):
                        found.append(full)
                except OSError:
                    pass
            if budget < 0:
                break
        if found:
            return [float(len(found))]
        raise LookupError("nothing visible")
    """)


def _interpreter_site_dirs(python: str) -> list[str]:
    code = ("import sysconfig, site, sys; p = sysconfig.get_paths(); "
            "print('\\n'.join({p['purelib'], p['platlib'], *getattr(site, 'getsitepackages', lambda: [])()}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, check=False).stdout
    return [line for line in out.splitlines() if line.startswith("/")]


def _copied_venv(base: str) -> str | None:
    target = tempfile.mkdtemp(prefix="resd-venv-copies-", dir="/opt" if os.path.isdir("/opt") else None)
    done = subprocess.run([base, "-m", "venv", "--copies", "--without-pip", target],
                          capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        return None
    os.chmod(target, 0o755)
    return target


@pytest.fixture(params=["system", "venv-copies"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """An interpreter layout, with a sentinel 'package' in each of its package directories."""
    from resd_envs.sandbox.tiers import find_python, sandbox_uid

    base = find_python(sandbox_uid())
    if base is None:
        pytest.skip("no interpreter usable by the sandbox uid")
    venv = None
    python = base
    if request.param == "venv-copies":
        venv = _copied_venv(os.path.realpath(base))
        if venv is None:
            pytest.skip("this interpreter cannot create a venv (no venv module)")
        python = os.path.join(venv, "bin", "python3")
        monkeypatch.setenv("RESD_SANDBOX_PYTHON", python)
        monkeypatch.setattr(selection, "_RESOLVED", {})
        monkeypatch.setattr(selection, "_FAILURES", {})
    planted = []
    for site_dir in _interpreter_site_dirs(python) + ["/usr/lib/python3/dist-packages"]:
        if not IS_ROOT and not os.access(os.path.dirname(site_dir), os.W_OK):
            continue
        try:
            os.makedirs(site_dir, exist_ok=True)
            package = Path(site_dir) / SENTINEL / "_assets"
            package.mkdir(parents=True, exist_ok=True)
            (package / "answers.jsonl.gz").write_bytes(b"secret")
            planted.append(str(package / "answers.jsonl.gz"))
        except OSError:
            continue
    yield python, planted
    for path in planted:
        shutil.rmtree(Path(path).parent.parent, ignore_errors=True)
    if venv:
        shutil.rmtree(venv, ignore_errors=True)


def test_model_code_sees_only_the_interpreter(tier: str, layout, tmp_path: Path) -> None:
    if tier not in JAILED:
        pytest.skip("the rlimit tier cannot hide files; it refuses unless opted in (tested below)")
    python, planted = layout
    host_tmp = Path(tempfile.mkdtemp(prefix=f"{SENTINEL}-", dir="/tmp"))
    try:
        secret_paths = [
            *planted,
            str(Path(resd_envs.__file__).parent),
            str(Path(resd_envs.__file__).parents[1] / "physics"),
            str(host_tmp),
            "/etc/passwd",
            "/root",
            "/home",
            sys.prefix,
        ]
        run = run_function_calls(SNOOP, "f", [["\n".join(secret_paths)]], tier=tier,
                                 limits=SandboxLimits(call_timeout_s=20.0, total_timeout_s=30.0))
    finally:
        shutil.rmtree(host_tmp, ignore_errors=True)
    assert not run.outcomes[0].ok and "nothing visible" in run.outcomes[0].message, (
        f"{tier} with {python}: the program found host files: {run.outcomes[0]!r}")


def test_a_package_dir_created_after_the_tier_was_planned_is_hidden_too(tier: str) -> None:
    """The interpreter is described once per process; a dist-packages that appears later inside one of
    its bound directories (a pip install into the system Python while a job runs) must still be hidden."""
    if tier not in JAILED:
        pytest.skip("the rlimit tier cannot hide files")
    interpreter = selection.resolve(tier).interpreter  # described (and cached) before the directory exists
    writable = [d for d in interpreter.dirs if os.access(d, os.W_OK)]
    if not writable:
        pytest.skip("no directory the sandbox binds is writable here (needs root)")
    holder = Path(tempfile.mkdtemp(prefix="resd-late-package-", dir=writable[0]))  # its name gives nothing away
    try:
        holder.chmod(0o755)  # as an installed package tree is
        planted = holder / "dist-packages" / SENTINEL / "_assets" / "answers.jsonl.gz"
        planted.parent.mkdir(parents=True)
        planted.write_bytes(b"secret")
        assert str(holder / "dist-packages") not in interpreter.masked
        run = run_function_calls(SNOOP, "f", [[str(planted)]], tier=tier,
                                 limits=SandboxLimits(call_timeout_s=20.0, total_timeout_s=30.0))
    finally:
        shutil.rmtree(holder, ignore_errors=True)
    assert not run.outcomes[0].ok and "nothing visible" in run.outcomes[0].message, (
        f"{tier}: a package directory created after planning was visible: {run.outcomes[0]!r}")


WRITE_TEMPS = _src("""
    import os
    def f(name):
        wrote = []
        for directory in ("/tmp", "/var/tmp", "/dev/shm"):
            try:
                with open(os.path.join(directory, name), "w") as out:
                    out.write("x")
                wrote.append(directory)
            except OSError:
                pass
        for path in ("/", "/usr", "/dev", "/proc/sys/kernel"):
            try:
                with open(os.path.join(path, name), "w") as out:
                    out.write("x")
                return [-1.0]
            except OSError:
                pass
        return [float(len(wrote))]
    """)


def test_temp_dirs_are_private_and_the_root_is_read_only(tier: str) -> None:
    if tier not in JAILED:
        pytest.skip("the rlimit tier shares the host's temp dirs (documented; it refuses unless opted in)")
    name = f"{SENTINEL}-{os.getpid()}"
    run = run_function_calls(WRITE_TEMPS, "f", [[name]], tier=tier)
    assert run.values[0] is not None and run.values[0][0] >= 1.0, "writes to the private /tmp must work"
    for directory in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not os.path.exists(os.path.join(directory, name)), f"the program wrote the host's {directory}"


def test_rlimit_tier_refuses_without_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(selection.ALLOW_RLIMIT_VAR, raising=False)
    with pytest.raises(SandboxUnavailableError, match=selection.ALLOW_RLIMIT_VAR):
        run_function_calls("def f(t):\n    return [t]\n", "f", [[1]], tier="rlimit")
    with pytest.raises(SandboxUnavailableError, match="allow_rlimit=True"):
        run_function_calls("def f(t):\n    return [t]\n", "f", [[1]], tier="rlimit", allow_rlimit=False)


def test_fallback_from_bwrap_is_loud(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(selection, "_FAILURES", {"bwrap": "pretend bwrap is missing"})
    monkeypatch.setattr(selection, "_RESOLVED", {k: v for k, v in selection._RESOLVED.items() if k != "bwrap"})
    monkeypatch.setattr(selection, "_WARNED", set())
    monkeypatch.delenv("RESD_SANDBOX", raising=False)
    monkeypatch.delenv(selection.ALLOW_RLIMIT_VAR, raising=False)
    try:
        with pytest.warns(RuntimeWarning, match="fell back from 'bwrap'"):
            run = run_function_calls("def f(t):\n    return [t]\n", "f", [[1]])
    except SandboxUnavailableError as exc:  # unshare unusable too: then nothing runs at all
        assert selection.ALLOW_RLIMIT_VAR in str(exc)
        return
    assert run.tier == "unshare" and run.warning and "pretend bwrap is missing" in run.warning
    assert any("fell back" in r.getMessage() for r in caplog.records)
    assert selection.sandbox_info()["warning"] == run.warning


# -- a total resource bound per submission -------------------------------------------------------
BOMB = _src("""
    import os, time
    def grab():
        blocks, size = [], 64 << 20
        try:
            while size >= 1 << 20:
                try:
                    block = bytearray(size)
                    for i in range(0, size, 4096):
                        block[i] = 1
                    blocks.append(block)
                except MemoryError:
                    size //= 2
            chunk = b"x" * (1 << 20)
            for directory in ("/tmp", "/dev/shm", "/var/tmp", "/", "/dev"):
                for index in range(64):
                    try:
                        with open("%s/fill%d-%d" % (directory, os.getpid(), index), "wb") as out:
                            for _ in range(8):
                                out.write(chunk)
                                out.flush()
                    except BaseException:
                        break
        except BaseException:
            pass
        return blocks
    def f(arg):
        made = 0
        for _ in range(64):
            try:
                pid = os.fork()
            except BaseException:
                break
            if pid == 0:
                try:
                    kept = grab()
                    time.sleep(30)
                finally:
                    os._exit(0)
            made += 1
        kept = grab()
        time.sleep(2.5)
        return [float(made + 1)]
    """)


def _pinned_mb(token: str) -> float:
    """RSS of the run's processes (found by its marker) plus what its writable mounts hold."""
    rss_kb, mounts = 0, {}
    marker = f"RESD_SANDBOX_RUN={token}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if marker not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/status") as handle:
                rss_kb += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
            for inside in ("/tmp", "/dev/shm", "/var/tmp", "/", "/dev"):
                st = os.statvfs(f"/proc/{name}/root{inside}")
                key = (os.stat(f"/proc/{name}/root{inside}").st_dev)
                mounts[key] = (st.f_blocks - st.f_bfree) * st.f_frsize
        except (OSError, StopIteration):
            continue
    host_root = os.stat("/").st_dev
    disk = sum(used for dev, used in mounts.items() if dev != host_root)
    return rss_kb / 1024 + disk / (1 << 20)


def test_fork_and_tmpfs_bomb_pins_at_most_the_documented_bound(tier: str, marked_runs) -> None:
    if tier not in JAILED:
        pytest.skip("the rlimit tier writes to a host directory: only each file is capped (documented)")
    if not IS_ROOT:
        pytest.skip("the process cap needs the uid drop, which needs root")
    from resd_envs.sandbox import launch

    token = launch.secrets.token_hex(8)  # the marked_runs fixture fixed it
    limits = SandboxLimits(memory_mb=256, max_processes=4, scratch_mb=16, max_file_mb=8,
                           call_timeout_s=60.0, total_timeout_s=90.0, cpu_s=60)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _pinned_mb(token))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run = run_function_calls(BOMB, "f", [[0]], tier=tier, limits=limits)
    finally:
        done.set()
        sampler.join(5)
    print(f"\n{tier}: fork+tmpfs bomb pinned at most {peak[0]:.0f} MB (bound {limits.memory_bound_mb} MB); "
          f"result {run.values[0] or run.error_type}")
    assert run.values[0] is None or run.values[0][0] <= limits.max_processes
    assert 0 < peak[0] <= limits.memory_bound_mb
    assert marked_runs() == []


# -- time limits are enforced by the parent's clock ----------------------------------------------
IGNORE_ALARM = _src("""
    import signal, time
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    def f(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
        return [seconds]
    """)


def test_ignoring_the_timer_buys_no_time(tier: str) -> None:
    limits = SandboxLimits(call_timeout_s=0.5, timeout_grace_s=1.0, total_timeout_s=10.0)
    run = run_function_calls(IGNORE_ALARM, "f", [[0.05], [0.8], [0.05]], tier=tier, limits=limits)
    assert run.outcomes[0].ok
    assert run.outcomes[1].error_type == "timeout" and not run.outcomes[1].ok, run.outcomes[1]
    assert run.error_type == "timeout" and not run.outcomes[2].ok


# Call 0 forks a helper that, 50 ms later, stops the child (ptrace attach, then SIGSTOP) and tries
# the same on pid 1. Call 0 then sleeps 0.3 s so the stop lands inside the run on any machine: with
# instant calls a quiet machine finished all four before the helper woke, and nothing was stopped.
STALL = _src("""
    import ctypes, os, signal, time
    def f(step, stop):
        if stop and step == 0:
            target = os.getpid()
            if os.fork() == 0:
                time.sleep(0.05)
                libc = ctypes.CDLL(None)
                for pid in (target, 1):
                    libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH stops the tracee
                    try:
                        os.kill(pid, signal.SIGSTOP)
                    except OSError:
                        pass
                time.sleep(60)
                os._exit(0)
        if step == 0:
            time.sleep(0.3)
        return [step]
    """)


def test_a_stopped_or_traced_child_cannot_hold_the_run_open(tier: str) -> None:
    limits = SandboxLimits(call_timeout_s=0.5, timeout_grace_s=0.5, total_timeout_s=30.0)

    def timed(stop: bool) -> tuple[SandboxRun, float]:
        started = time.monotonic()
        run = run_function_calls(STALL, "f", [[i, int(stop)] for i in range(4)], tier=tier, limits=limits)
        return run, time.monotonic() - started

    # The same program without the helper, in this process, sets what "not held open" means on
    # this machine right now (sandbox start-up and the calls, slower under load); a stop
    # that held the run open would cost the 30 s budget or the helper's 60 s sleep.
    plain, baseline = timed(stop=False)
    assert plain.all_ok, plain
    run, elapsed = timed(stop=True)
    assert elapsed < baseline + 4.0, f"{tier}: held open {elapsed:.1f} s (unstopped: {baseline:.1f} s)"
    if tier == "unshare":
        # The child is pid 1 of its own pid namespace (unshare --fork): the kernel drops SIGSTOP
        # sent to a namespace's init from inside it, and ptrace is refused, so nothing stops.
        assert run.all_ok, run
    else:
        assert run.error_type == "timeout", run


# -- forged numbers never raise out of scoring ---------------------------------------------------
FORGE_NUMBERS = _src("""
    import os
    def f(kind):
        value = {"big": "1" * 401, "inf": "1e999", "neg": "-" + "9" * 30}[kind]
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                os.write(fd, ('{"k":"ok","i":0,"v":[[%s,1.0]]}\\n{"k":"end"}\\n' % value).encode())
            except OSError:
                pass
        return [1.0]
    """)


@pytest.mark.parametrize("kind", ["big", "inf", "neg"])
def test_forged_out_of_range_numbers_are_the_submissions_failure(tier: str, kind: str) -> None:
    run = run_function_calls(FORGE_NUMBERS, "f", [[kind], [kind]], tier=tier)
    assert not run.outcomes[0].ok and run.error_type == "runtime_error"
    assert "tampered" in run.message


@pytest.mark.parametrize("value", ["1" * 401, "1e999", "-1e400", str(2 ** 63), str(-(2 ** 63)), "1" * 5000])
def test_protocol_rejects_out_of_range_numbers(value: str) -> None:
    t = Transcript(1)
    for line in ('{"k":"hello","pid":2,"uid":1,"pidns":1,"netns":2,"hashseed":0}', '{"k":"begin","i":-1}',
                 '{"k":"ok","i":-1}', '{"k":"begin","i":0}'):
        t.add(parse_line(line.encode()))
    with pytest.raises(ProtocolViolation):
        t.add(parse_line(('{"k":"ok","i":0,"v":[%s]}' % value).encode()))


@pytest.mark.parametrize("line", [b"[" * 100000, b'{"k":' * 50000, b"\xff\xfe", b'{"k":"ok","i":1e999}', b""])
def test_protocol_rejects_malformed_messages(line: bytes) -> None:
    t = Transcript(1)
    with pytest.raises(ProtocolViolation):
        t.add(parse_line(line))


# -- limits are validated when constructed -------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"memory_mb": 32}, "memory_mb must be in [128,"),
    ({"total_timeout_s": 0.005}, "total_timeout_s must be in [0.5, 3600] s"),
    ({"call_timeout_s": 0.001}, "call_timeout_s must be in [0.05,"),
    ({"max_processes": 0}, "max_processes must be in [1,"),
    ({"scratch_mb": 1.5}, "scratch_mb must be an int"),
])
def test_limits_outside_their_range_are_refused_with_the_reason(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        SandboxLimits(**kwargs)
    assert fragment in str(info.value)
    if "in [" in fragment and "must be an int" not in fragment:
        assert "(" in str(info.value).split("got", 1)[1]  # the reason follows the value


def test_gold_like_program_passes_at_the_smallest_limits(tier: str) -> None:
    limits = SandboxLimits(memory_mb=128, total_timeout_s=0.5, call_timeout_s=0.05, max_processes=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_function_calls("import math\ndef f(t):\n    return [math.sqrt(t)]\n", "f", [[4.0]],
                                 tier=tier, limits=limits)
    assert run.all_ok and run.values == [[2.0]], run
