"""Honest and faulty (but not hostile) programs through ``run_function_calls``."""

from __future__ import annotations

import math
import os
import re
import textwrap

import pytest

from resd_envs.errors import ConfigError
from resd_envs.sandbox import SandboxLimits, run_function_calls

FAST = SandboxLimits(call_timeout_s=0.5, total_timeout_s=5.0)
TIMES = [[round(0.1 * i, 2)] for i in range(1, 16)]


def _src(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


BALL = _src("""
    import math
    def predict_position(t):
        x = 100.0 + 20.0 * t
        y = 50.0 - 0.5 * 9.81 * t * t
        return [(x, y), [int(t * 10), math.sqrt(t)]]
    """)


def test_honest_program_returns_exact_values(tier: str) -> None:
    run = run_function_calls(BALL, "predict_position", TIMES, tier=tier)
    assert run.error_type is None and run.message == ""
    assert run.tier == tier and run.all_ok
    assert len(run.outcomes) == 15
    for (t,), outcome in zip(TIMES, run.outcomes, strict=True):
        assert outcome.ok and outcome.error_type is None
        expected = [[100.0 + 20.0 * t, 50.0 - 0.5 * 9.81 * t * t], [int(t * 10), math.sqrt(t)]]
        assert outcome.value == expected  # floats survive the JSON round trip bit for bit
        assert type(outcome.value[1][0]) is int


def test_per_call_timeout_stops_the_run(tier: str) -> None:
    source = _src("""
        def f(t):
            if t >= 0.3:
                while True:
                    pass
            return [t]
        """)
    run = run_function_calls(source, "f", TIMES[:6], limits=FAST, tier=tier)
    assert [o.ok for o in run.outcomes] == [True, True, False, False, False, False]
    assert run.outcomes[2].error_type == "timeout"
    assert "within 0.5 s" in run.outcomes[2].message
    assert all(o.error_type == "timeout" and o.message.startswith("not run") for o in run.outcomes[3:])
    assert run.error_type == "timeout" and "0.5 s" in run.message


def test_more_timeouts_allowed_keeps_evaluating() -> None:
    source = _src("""
        import time
        def f(i):
            if i % 2:
                time.sleep(10)
            return [i]
        """)
    limits = SandboxLimits(call_timeout_s=0.3, total_timeout_s=5.0, max_call_timeouts=3)
    run = run_function_calls(source, "f", [[0], [1], [2], [3], [4]], limits=limits)
    assert [o.error_type for o in run.outcomes] == [None, "timeout", None, "timeout", None]
    assert [o.value for o in run.outcomes] == [[0], None, [2], None, [4]]
    assert run.error_type is None


def test_exception_gives_trimmed_traceback_with_program_lines(tier: str) -> None:
    source = _src("""
        def helper(t):
            scale = 0
            return t / scale

        def predict_position(t):
            return [helper(t)]
        """)
    run = run_function_calls(source, "predict_position", [[1]], tier=tier)
    outcome = run.outcomes[0]
    assert not outcome.ok and outcome.error_type == "runtime_error"
    lines = outcome.message.splitlines()
    assert lines[0] == "line 3, in helper: ZeroDivisionError: division by zero"
    assert lines[1].strip() == "return t / scale"
    assert "predict_position (line 6) -> helper (line 3)" in outcome.message
    assert "child" not in outcome.message and "_run_phase" not in outcome.message
    assert run.error_type is None  # a raising call does not stop the run


def test_syntax_error_is_a_run_error_with_line_number() -> None:
    run = run_function_calls("def f(t):\n    return [t +]\n", "f", [[1], [2]])
    assert run.error_type == "runtime_error"
    assert run.message.startswith("line 2: SyntaxError")
    assert all(o.error_type == "runtime_error" and not o.ok for o in run.outcomes)


def test_top_level_exception_and_missing_function() -> None:
    run = run_function_calls("import math\nx = 1 / 0\n", "f", [[1]])
    assert run.error_type == "runtime_error"
    assert run.message.startswith("line 2, in <module>: ZeroDivisionError")
    run = run_function_calls("def g(t):\n    return [t]\n", "predict_position", [[1]])
    assert run.error_type == "runtime_error" and "predict_position" in run.message
    run = run_function_calls("predict_position = 3\n", "predict_position", [[1]])
    assert "not a function" in run.message


def test_top_level_infinite_loop_times_out() -> None:
    run = run_function_calls("while True:\n    pass\n", "f", [[1], [2]], limits=FAST)
    assert run.error_type == "timeout" and "top level" in run.message
    assert [o.error_type for o in run.outcomes] == ["timeout", "timeout"]


def test_non_finite_values_and_arguments_pass_through() -> None:
    source = "def f(x, label):\n    return [x, float('inf'), -float('inf'), float(len(label))]\n"
    run = run_function_calls(source, "f", [[float("nan"), "abc"], [2, "é😀"]])
    first, second = (o.value for o in run.outcomes)
    assert math.isnan(first[0]) and first[1] == math.inf and first[2] == -math.inf and first[3] == 3.0
    assert second == [2, math.inf, -math.inf, 2.0]


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("None", "NoneType"),
        ("{'x': 1}", "dict"),
        ("[1.0, True]", "value[1] is a bool"),
        ("'12'", "str"),
        ("[[1.0, object()]]", "value[0][1] is a object"),
        ("10 ** 30", "too large"),
    ],
)
def test_format_errors_name_the_problem(expression: str, fragment: str) -> None:
    run = run_function_calls(f"def f(t):\n    return {expression}\n", "f", [[1]])
    outcome = run.outcomes[0]
    assert not outcome.ok and outcome.error_type == "format_error"
    assert fragment in outcome.message


def test_float_subclasses_and_namedtuples_become_plain_data() -> None:
    source = _src("""
        from collections import namedtuple
        Point = namedtuple("Point", "x y")
        class Sneaky(float):
            def __eq__(self, other):
                return True
            def __repr__(self):
                return "not a number"
        def f(t):
            return [Point(Sneaky(1.5), 2)]
        """)
    value = run_function_calls(source, "f", [[0]]).outcomes[0].value
    assert value == [[1.5, 2]] and type(value[0][0]) is float


def test_oversized_result_is_a_format_error() -> None:
    limits = SandboxLimits(max_result_bytes=65536)
    run = run_function_calls("def f(t):\n    return [0.123456789] * 50000\n", "f", [[1]], limits=limits)
    assert run.outcomes[0].error_type == "format_error" and "too large" in run.outcomes[0].message


def test_stdout_and_stderr_are_captured_but_never_trusted() -> None:
    source = _src("""
        import sys
        print("hello from the top level")
        def f(t):
            print("PASSED", t)
            print("oops", file=sys.stderr)
            return [t]
        """)
    run = run_function_calls(source, "f", [[1], [2]])
    assert run.stdout == "hello from the top level\nPASSED 1\nPASSED 2\n"
    assert run.stderr == "oops\noops\n"
    assert run.values == [[1], [2]]


def test_output_is_capped() -> None:
    limits = SandboxLimits(max_output_bytes=1024)
    run = run_function_calls("print('x' * 5000)\ndef f(t):\n    return [t]\n", "f", [[1]], limits=limits)
    assert run.error_type == "output_limit" and len(run.stdout) == 1024
    assert run.outcomes[0].error_type == "output_limit"


def test_hash_seed_is_fixed_and_main_guard_does_not_run() -> None:
    source = _src("""
        ran_main = 0.0
        if __name__ == "__main__":
            ran_main = 1.0
        def f(t):
            return [float(hash("resd") % 100003), float(ord(next(iter({"a", "b", "c", "d"})))), ran_main]
        """)
    first = run_function_calls(source, "f", [[0]]).outcomes[0].value
    second = run_function_calls(source, "f", [[0]]).outcomes[0].value
    assert first == second and first[2] == 0.0


def test_scratch_directory_is_private_and_removed(tier: str) -> None:
    source = _src("""
        import os
        def f(t):
            with open("notes.txt", "w") as out:
                out.write("scratch")
            return [float(ord(c)) for c in os.getcwd()]
        """)
    run = run_function_calls(source, "f", [[0]], tier=tier)
    cwd = "".join(chr(int(c)) for c in run.outcomes[0].value)
    if tier in ("bwrap", "unshare"):
        assert cwd == "/tmp"  # a tmpfs that exists only inside the sandbox
    else:
        assert cwd.startswith("/") and not os.path.exists(cwd)


def test_no_calls_still_runs_the_top_level() -> None:
    run = run_function_calls("def f(t):\n    return [t]\n", "f", [])
    assert run.outcomes == () and run.error_type is None
    run = run_function_calls("raise ValueError('bad')\n", "f", [])
    assert run.error_type == "runtime_error" and "ValueError: bad" in run.message


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"function_name": "1abc"}, "identifier"),
        ({"calls": "abc"}, "sequence of argument sequences"),
        ({"calls": [[object()]]}, "only int, float and str"),
        ({"calls": [5]}, "calls[0]"),
        ({"source": b"def f(): pass"}, "source must be a str"),
        ({"tier": "docker"}, "sandbox tier must be"),
    ],
)
def test_bad_caller_arguments_raise_config_error(kwargs: dict, fragment: str) -> None:
    arguments = {"source": "def f(t):\n    return [t]\n", "function_name": "f", "calls": [[1]]}
    arguments.update(kwargs)
    tier = arguments.pop("tier", "auto")
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        run_function_calls(arguments.pop("source"), arguments.pop("function_name"), arguments.pop("calls"),
                           tier=tier)


def test_sandbox_that_cannot_start_is_a_sandbox_error() -> None:
    run = run_function_calls("def f(t):\n    return [t]\n", "f", [[1], [2]],
                             limits=SandboxLimits(startup_timeout_s=0.001))
    assert run.error_type == "sandbox_error" and "did not start" in run.message
    assert [o.error_type for o in run.outcomes] == ["sandbox_error", "sandbox_error"]


def test_missing_interpreter_is_a_sandbox_error(tier: str) -> None:
    from dataclasses import replace

    from resd_envs.sandbox.execute import execute
    from resd_envs.sandbox.selection import resolve

    plan = resolve(tier)
    interpreter = plan.interpreter and replace(plan.interpreter, executable="/nonexistent/python3")
    plan = replace(plan, python="/nonexistent/python3", interpreter=interpreter)
    run, hello = execute(plan, "def f(t):\n    return [t]\n", "f", [[1]], SandboxLimits())
    assert hello is None and run.error_type == "sandbox_error"
    assert "failed to start" in run.message or "could not start" in run.message


def test_cpu_limit_is_reported_as_timeout(tier: str) -> None:
    limits = SandboxLimits(cpu_s=1, call_timeout_s=8.0, total_timeout_s=8.0, timeout_grace_s=0.0)
    source = "def f(t):\n    while True:\n        pass\n"
    run = run_function_calls(source, "f", [[1], [2]], limits=limits, tier=tier)
    assert run.error_type == "timeout" and "CPU-time limit of 1 s" in run.message
    assert [o.error_type for o in run.outcomes] == ["timeout", "timeout"]
