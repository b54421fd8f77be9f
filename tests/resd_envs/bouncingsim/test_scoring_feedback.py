"""Scoring of sandbox outcomes and the feedback text (fake runs; no program is executed)."""

from __future__ import annotations

import math

import pytest
from bsim_fakes import make_run

from resd_envs.sandbox.outcome import CallOutcome

from resd_envs.bouncingsim.family import BouncingSimFamily
from resd_envs.bouncingsim.feedback import build_feedback, trim_traceback
from resd_envs.bouncingsim.scoring import check_shape, score_answer

EXPECTED = [[100.0, 100.0], [200.0, 200.0], [300.0, 300.0]]


def test_pass_rule_is_the_mean_over_balls_inclusive() -> None:
    # ball 1 is 120 off, the others exact: mean 40 <= 50 passes (as in the reference)
    assert score_answer(0.1, [[220.0, 100.0], [200, 200], [300, 300]], EXPECTED).passed
    exactly = score_answer(0.1, [[250.0, 100.0], [200, 200], [300, 300]], EXPECTED)
    assert exactly.passed and exactly.mean_error == 50.0
    assert not score_answer(0.1, [[250.1, 100.0], [200, 200], [300, 300]], EXPECTED).passed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[1, 2], [3, 4]], "returned 2 positions; the scene has 3 balls"),
        ([[1, 2]], "returned 1 position; the scene has 3 balls"),
        (None, "expected a list of 3"),
        ([[1, 2], [3, 4], [5]], "ball 3: [5] is not an [x, y] pair"),
        ([[1, 2], [3, "4"], [5, 6]], "ball 2: '4' is not a number"),
        ([[1, 2], [3, math.nan], [5, 6]], "NaN or infinite"),
        ([[1, 2], [3, 4], [math.inf, 6]], "NaN or infinite"),
        ([[True, 2], [3, 4], [5, 6]], "not a number"),
    ],
)
def test_wrong_shapes_are_explained(value, message: str) -> None:
    positions, problem = check_shape(value, 3)
    assert positions is None and message in problem
    result = score_answer(0.2, value, EXPECTED)
    assert not result.passed and result.error_type == "format_error"


def _family() -> BouncingSimFamily:
    return BouncingSimFamily("easy")


def test_score_run_with_errors_timeouts_and_missing_calls() -> None:
    times = [0.1, 0.2, 0.3, 0.4]
    expected = [EXPECTED] * 4
    run = make_run(
        [
            CallOutcome(True, EXPECTED, None, ""),
            CallOutcome(
                False,
                None,
                "runtime_error",
                "line 3, in predict_position: ZeroDivisionError: division by zero\n    return 1 / x",
            ),
            CallOutcome(False, None, "timeout", "call exceeded 1.0 s"),
        ],
        error_type="timeout",
        message="stopped after a call timed out",
    )
    cases, traceback = _family().score_run(run, times, expected)
    assert [c.passed for c in cases] == [True, False, False, False]
    assert [c.error_type for c in cases] == [None, "runtime_error", "timeout", "timeout"]
    assert "ZeroDivisionError" in cases[1].problem and "ZeroDivisionError" in traceback
    assert cases[2].problem == "call exceeded 1.0 s" and "time limit" in cases[3].problem


def test_feedback_levels_and_cap() -> None:
    cases = [
        score_answer(0.1, EXPECTED, EXPECTED),
        score_answer(0.2, [[400, 100], [200, 200], [300, 300]], EXPECTED),
    ]
    privileged = build_feedback(cases, [EXPECTED] * 2, error_type="wrong_answer", detail="privileged")
    assert "1/2 test times passed" in privileged and "per ball: 0.0, 0.0, 0.0" in privileged
    assert "expected [[100.00, 100.00]" in privileged and "returned [[400.00, 100.00]" in privileged
    full = build_feedback(cases, [EXPECTED] * 2, error_type="wrong_answer", detail="full")
    assert "t=0.20  FAIL  mean distance ~100 (limit 50); balls off by more than 50: 1" in full
    assert "returned [[400.00, 100.00]" in full and "expected" not in full and "per ball" not in full
    summary = build_feedback(cases, [EXPECTED] * 2, error_type="wrong_answer", detail="summary")
    assert "t=0.20  FAIL" in summary and "expected" not in summary
    minimal = build_feedback(cases, [EXPECTED] * 2, error_type="wrong_answer", detail="minimal")
    assert minimal.count("\n") == 0
    capped = build_feedback(cases * 50, [EXPECTED] * 100, error_type="wrong_answer", max_chars=300)
    assert len(capped) <= 300 and "truncated" in capped


def test_traceback_keeps_only_the_program_frames() -> None:
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3.11/site-packages/resd_envs/sandbox/child.py", line 80, in main\n'
        "    value = func(*args)\n"
        '  File "<submission>", line 4, in predict_position\n'
        "    return helper(0)\n"
        '  File "<submission>", line 2, in helper\n'
        "    return 1 / x\n"
        "ZeroDivisionError: division by zero\n"
    )
    out = trim_traceback(tb)
    assert "child.py" not in out and "value = func" not in out
    assert '"<submission>", line 2, in helper' in out and out.endswith("ZeroDivisionError: division by zero")


def test_evaluate_without_code_runs_nothing() -> None:
    fam = _family()
    task = fam.tasks("test")[0]
    ev = fam.evaluate(task, "I think the balls go left.")
    assert ev.error_type == "no_code" and ev.score == 0.0 and ev.num_tests == 15
    assert "No program found" in ev.feedback


def test_internal_errors_are_raised_not_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scorer that cannot run the program raises: a silent 0 would poison a training batch."""

    def broken(self, code, times):
        raise OSError("cannot start the child")

    monkeypatch.setattr(BouncingSimFamily, "run_program", broken)
    fam = _family()
    with pytest.raises(OSError, match="cannot start the child"):
        fam.evaluate(fam.tasks("test")[0], "```python\ndef predict_position(t):\n    return []\n```")


def test_sandbox_reported_failure_is_flagged_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    def failed(self, code, times):
        return make_run([], "sandbox_error", "the sandbox failed to start (exit status 1)")

    monkeypatch.setattr(BouncingSimFamily, "run_program", failed)
    fam = _family()
    ev = fam.evaluate(fam.tasks("test")[0], "```python\ndef predict_position(t):\n    return []\n```")
    assert ev.error_type == "sandbox_error" and "not your fault" in ev.feedback
    assert ev.extra["internal_error"] == "the sandbox failed to start (exit status 1)"



def test_sandbox_fallback_warning_reaches_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from bsim_fakes import run_in_process

    def weaker(self, code, times):
        run = run_in_process(code, list(times))
        return dataclasses.replace(run, warning="bwrap is unavailable; fell back to unshare")

    monkeypatch.setattr(BouncingSimFamily, "run_program", weaker)
    fam = _family()
    ev = fam.evaluate(fam.tasks("test")[0], "```python\ndef predict_position(t):\n    return []\n```")
    assert ev.extra["sandbox_warning"] == "bwrap is unavailable; fell back to unshare"
    monkeypatch.setattr(BouncingSimFamily, "run_program", lambda self, code, times: run_in_process(code, list(times)))
    quiet = fam.evaluate(fam.tasks("test")[0], "```python\ndef predict_position(t):\n    return []\n```")
    assert "sandbox_warning" not in quiet.extra  # without a fallback the key is absent

@pytest.mark.parametrize(
    "value",
    [
        [[10**400, 1.0], [2.0, 2.0], [3.0, 3.0]],
        [[-(10**4000), 1.0], [2.0, 2.0], [3.0, 3.0]],
        [[float("inf"), 1.0], [2.0, 2.0], [3.0, 3.0]],
        [10**400] * 50,
        10**400,
    ],
)
def test_huge_numbers_are_the_submissions_format_error(value) -> None:
    case = score_answer(0.1, value, EXPECTED)
    assert not case.passed and case.error_type == "format_error" and len(case.problem) < 200


def test_invalid_limits_fail_at_construction() -> None:
    from resd_envs.errors import ConfigError

    with pytest.raises(ConfigError):
        BouncingSimFamily("easy", memory_mb="lots")
    with pytest.raises(ConfigError):
        BouncingSimFamily("easy", call_timeout_s=0)
