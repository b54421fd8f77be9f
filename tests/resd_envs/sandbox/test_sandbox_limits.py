"""SandboxLimits validation, tier selection and ``sandbox_info``."""

from __future__ import annotations

import os
import warnings

import pytest

from resd_envs.errors import ConfigError
from resd_envs.sandbox import SandboxLimits, available_tiers, run_function_calls, sandbox_info
from resd_envs.sandbox.selection import requested_tier
from resd_envs.sandbox.tiers import TIERS, find_python, sandbox_uid

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    TIERS_HERE = available_tiers(allow_rlimit=True)


def test_default_limits_match_the_reference() -> None:
    limits = SandboxLimits()
    assert limits.call_timeout_s == 1.0 and limits.effective_import_timeout_s == 1.0
    assert limits.max_call_timeouts == 1 and limits.memory_mb == 512
    assert SandboxLimits(import_timeout_s=3.0).effective_import_timeout_s == 3.0


def test_invalid_limits_list_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        SandboxLimits(call_timeout_s=0, memory_mb=8, max_output_bytes=True, total_timeout_s=float("nan"))
    text = str(info.value)
    for name in ("call_timeout_s", "memory_mb", "max_output_bytes", "total_timeout_s"):
        assert name in text


def test_requested_tier_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESD_SANDBOX", "rlimit")
    assert requested_tier("auto") == "rlimit"
    assert requested_tier("bwrap") == "bwrap"  # an explicit argument wins
    monkeypatch.setenv("RESD_SANDBOX", "chroot")
    with pytest.raises(ConfigError, match="RESD_SANDBOX"):
        requested_tier("auto")


@pytest.mark.skipif("rlimit" not in TIERS_HERE, reason="rlimit tier unavailable")
def test_environment_override_reaches_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESD_SANDBOX", "rlimit")
    monkeypatch.setenv("RESD_SANDBOX_ALLOW_RLIMIT", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_function_calls("def f(t):\n    return [t]\n", "f", [[1]])
    assert run.tier == "rlimit" and run.values == [[1]]


def test_sandbox_info_reports_the_strongest_tier(tier: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = sandbox_info(tier)
        auto = sandbox_info("auto") if not os.environ.get("RESD_SANDBOX") else None
    assert set(info) >= {"tier", "isolation", "warning", "python", "uid", "self_test_ms", "unavailable"}
    assert info["tier"] == tier and info["isolation"]
    assert (info["warning"] is not None) == (tier == "rlimit")
    assert os.access(info["python"], os.X_OK)
    if auto is not None:
        assert auto["tier"] == TIERS_HERE[0]
    if os.geteuid() == 0:
        assert info["uid"] == sandbox_uid() != 0


def test_interpreter_is_usable_by_the_sandbox_uid() -> None:
    python = find_python(sandbox_uid())
    assert python is not None and os.access(python, os.X_OK)
    assert TIERS == ("bwrap", "unshare", "rlimit")
