"""Fixtures for the sandbox tests: available tiers, a known run marker, and a leftover check."""

from __future__ import annotations

import os
import time
import warnings

import pytest

from resd_envs.sandbox import available_tiers
from resd_envs.sandbox import launch as launch_module

MARKER_TOKEN = "feedc0ffee123456"


def _tiers() -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return available_tiers(allow_rlimit=True)


TIERS_HERE = _tiers()


def pytest_report_header() -> list[str]:
    from resd_envs.sandbox.selection import failures

    lines = [f"sandbox tiers available: {', '.join(TIERS_HERE) or 'none'}"]
    lines += [f"sandbox tier {name} unavailable: {reason}" for name, reason in failures().items()]
    return lines


@pytest.fixture(params=TIERS_HERE or ["none"])
def tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each usable tier in turn; the rlimit tier is opted into (it refuses otherwise)."""
    if request.param == "none":
        pytest.skip("no sandbox tier works on this machine")
    if request.param == "rlimit":
        monkeypatch.setenv("RESD_SANDBOX_ALLOW_RLIMIT", "1")
    return request.param


@pytest.fixture
def marked_runs(monkeypatch: pytest.MonkeyPatch):
    """Give every run a fixed marker token; return a function listing processes that carry it."""
    monkeypatch.setattr(launch_module.secrets, "token_hex", lambda n=8: MARKER_TOKEN)
    return live_marked_processes


def live_marked_processes(wait_s: float = 1.0) -> list[int]:
    """Non-zombie processes whose initial environment carries the test's run marker.

    Waits up to ``wait_s`` for stragglers to disappear (kernel teardown is asynchronous).
    """
    marker = f"RESD_SANDBOX_RUN={MARKER_TOKEN}".encode()
    deadline = time.monotonic() + wait_s
    while True:
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    state = handle.read().rsplit(b")", 1)[1].split()[0]
                if state in (b"Z", b"X"):
                    continue
                with open(f"/proc/{name}/environ", "rb") as handle:
                    if marker in handle.read().split(b"\0"):
                        found.append(int(name))
            except (OSError, IndexError):
                continue
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)
