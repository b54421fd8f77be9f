"""``BouncingSimFamily``: task rows, sandboxed scoring, reference responses and pictures.

Task sources (constructor):

* default: the shipped multi-ball (G) sets of ``level`` "easy" (640 train / 100 test) or
  "medium" (320 / 100), loaded from ``physics/bouncingsim/`` with checksum checks;
* ``family="A".."G"`` / another level: generated on first use with the seeded generator
  (``num_train`` / ``num_test`` scenes, answers from the oracle);
* ``scenes=``: user-supplied scenes (a list of scene dicts or dataset rows, or a JSONL path).
  A row may carry its own answers (``timestamps`` + ``expected_positions``, or the published
  dataset's ``ground_truth`` asserts); otherwise the oracle provides them. The same rows serve
  both splits.

Scoring runs the extracted program once per submission in the sandbox (one child for all test
times); expected positions never enter the child. A time passes when the mean distance over
balls is <= 50 (``tolerance``).

Feedback: ``full``/``summary``/``minimal`` never show expected positions (nor exact per-ball
distances); ``privileged`` and ``Evaluation.privileged_feedback`` do. Errors of the scorer itself
(sandbox unavailable, invalid limits) are raised, never scored; a run the sandbox reports as failed
(``error_type="sandbox_error"``) carries ``extra["internal_error"]`` so trainers can drop it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from resd_envs.bouncingsim import tasks as shipped
from resd_envs.bouncingsim.extract import extract_program
from resd_envs.bouncingsim.feedback import build_feedback
from resd_envs.bouncingsim.generator import FAMILIES, LEVELS, generate_scene
from resd_envs.bouncingsim.oracle import TEST_TIMES, simulate
from resd_envs.bouncingsim.prompt import build_prompt
from resd_envs.bouncingsim.scene import SceneError, load_scene
from resd_envs.bouncingsim.scoring import (
    TOLERANCE,
    CaseResult,
    check_shape,
    failed_case,
    overall_error_type,
    score_answer,
)
from resd_envs.bouncingsim.solver import reference_response as solver_response
from resd_envs.core.family import Task, TaskFamily
from resd_envs.core.results import ERROR_TYPES, PRIVILEGED, Evaluation, TestResult, check_detail
from resd_envs.errors import ConfigError, DataNotFoundError
from resd_envs.sandbox.limits import SandboxLimits
from resd_envs.sandbox.outcome import SandboxRun
from resd_envs.sandbox.tiers import TIERS

SANDBOX_TIERS = ("auto", *TIERS)
#: Default whole-run budget: TOTAL_BUDGET_SHARE of every call's limit, at least TOTAL_BUDGET_MIN_S,
#: plus TOTAL_BUDGET_SLACK_S for the child's start-up. A never-returning program stops at its first
#: timeout (about one call limit), so the budget only bounds programs that are slow on every call.
TOTAL_BUDGET_MIN_S = 5.0
TOTAL_BUDGET_SHARE = 0.5
TOTAL_BUDGET_SLACK_S = 1.0
#: Test times a user row may ask for (the shipped sets use 15).
MAX_TIMES = 200


def env_id_for(level: str) -> str:
    """The registered id of a BouncingSim level (levels other than "medium" register as Easy)."""
    return "resd/BouncingSim-Medium-v0" if level == "medium" else "resd/BouncingSim-Easy-v0"
_ASSERT = re.compile(
    r"predict_position\(\s*([-+0-9.eE]+)\s*\)\s*,\s*(\[.*\])\s*\)\s*<=\s*([0-9.eE+-]+)", re.DOTALL
)


@cache
def _prompt_for(scene_json: str) -> str:
    return build_prompt(load_scene(json.loads(scene_json)))


def _with_prompt(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["prompt"] = _prompt_for(json.dumps(row["scene"], sort_keys=True))
    return out


@cache
def _shipped_rows(level: str, split: str) -> tuple[dict[str, Any], ...]:
    return tuple(_with_prompt(r) for r in shipped.load_rows(level, split))


@cache
def _generated_rows(letter: str, level: str, split: str, count: int, seed: int) -> tuple[dict[str, Any], ...]:
    rows = []
    for i in range(count):
        scene = generate_scene(letter, level, i, stream=split, seed=seed)
        rows.append(
            _with_prompt(
                {
                    "task_id": shipped.task_id(level, split, i, family=letter, seed=seed),
                    "family": letter,
                    "level": level,
                    "split": split,
                    "index": i,
                    "n_balls": len(scene["balls"]),
                    "scene": scene,
                    "timestamps": list(TEST_TIMES),
                    "expected_positions": simulate(scene).tolist(),
                }
            )
        )
    return tuple(rows)


def _finite(value: Any, where: str, *, positive: bool = False) -> float:
    """A finite float (positive when asked) from a JSON number; SceneError naming ``where`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SceneError(f"{where} = {str(value)[:40]!r} is not a number")
    try:
        out = float(value)
    except (ValueError, OverflowError):
        raise SceneError(f"{where} = {str(value)[:40]!r} is not a finite number") from None
    if not math.isfinite(out) or (positive and out <= 0):
        raise SceneError(f"{where} = {str(value)[:40]!r} must be a finite{' positive' if positive else ''} number")
    return out


def _positions(value: Any, n_balls: int, where: str) -> list[list[float]]:
    """Expected positions at one time: ``n_balls`` pairs of finite numbers."""
    if not isinstance(value, list) or len(value) != n_balls:
        raise SceneError(f"{where} must be a list of {n_balls} [x, y] pairs (one per ball)")
    out = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise SceneError(f"{where}[{i}] must be an [x, y] pair")
        out.append([_finite(pair[0], f"{where}[{i}][0]"), _finite(pair[1], f"{where}[{i}][1]")])
    return out


def _answers_from_row(row: Mapping[str, Any], n_balls: int) -> tuple[list[float], list[Any], float] | None:
    """The row's own test times, expected positions and tolerance, validated; None when it has none.

    Raises:
        SceneError: naming the field that is malformed (times, positions, tolerance, assert text).
    """
    tol = _finite(row.get("tolerance", TOLERANCE), "tolerance", positive=True)
    if "timestamps" in row and "expected_positions" in row:
        times, expected = row["timestamps"], row["expected_positions"]
        if not isinstance(times, list) or not isinstance(expected, list) or len(times) != len(expected):
            raise SceneError("'timestamps' and 'expected_positions' must be lists of the same length")
        pairs = zip(times, expected)
    else:
        truth = row.get("ground_truth")
        if isinstance(truth, str):
            try:
                truth = json.loads(truth)
            except (ValueError, RecursionError):
                truth = [truth]
        if not isinstance(truth, list) or not truth:
            return None
        parsed = []
        for k, line in enumerate(truth):
            m = _ASSERT.search(str(line)[:10_000])
            if m is None:
                raise SceneError(f"ground_truth[{k}]: cannot read the assert {str(line)[:80]!r}")
            try:
                positions = json.loads(m.group(2))
            except (ValueError, RecursionError):
                raise SceneError(f"ground_truth[{k}]: the expected positions are not a JSON list") from None
            parsed.append((m.group(1), positions))
            tol = _finite(m.group(3), f"ground_truth[{k}] tolerance", positive=True)
        pairs = iter(parsed)
    out_times, out_expected = [], []
    for k, (t, positions) in enumerate(pairs):
        if k >= MAX_TIMES:
            raise SceneError(f"the row asks for more than {MAX_TIMES} test times")
        out_times.append(_finite(t, f"timestamps[{k}]", positive=True))
        out_expected.append(_positions(positions, n_balls, f"expected_positions[{k}]"))
    if not out_times:
        raise SceneError("the row has no test times; give 'timestamps' + 'expected_positions' or neither")
    return out_times, out_expected, tol


def user_rows(scenes: Any) -> tuple[dict[str, Any], ...]:
    """Task rows from user scenes: a list of scene dicts / dataset rows, or a JSONL path."""
    if isinstance(scenes, (str, Path)):
        path = Path(scenes)
        if not path.is_file():
            raise DataNotFoundError(
                f"scenes file {path} does not exist; pass a JSONL file with one scene or row per line"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as exc:
            raise SceneError(f"scenes file {path} cannot be read as UTF-8 text ({type(exc).__name__}); give a JSONL file") from None
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except (ValueError, RecursionError) as exc:
                    raise SceneError(f"{path}:{n} is not valid JSON ({exc})") from None
    elif isinstance(scenes, Mapping):
        items = [scenes]
    elif isinstance(scenes, Sequence):
        items = list(scenes)
    else:
        raise ConfigError(f"scenes={type(scenes).__name__}: pass a list of scene dicts or a JSONL path")
    if not items:
        raise ConfigError("scenes= is empty; give at least one scene")
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise SceneError(f"scenes[{i}] is {type(item).__name__}, expected a scene dict or a dataset row")
        try:
            scene_obj = load_scene(item)
            scene = dict(scene_obj.source)
            answers = _answers_from_row(item, scene_obj.n_balls) if "boxes" not in item else None
        except SceneError as exc:
            raise SceneError(f"scenes[{i}]: {exc}") from None
        if answers is None:
            times, expected, tol = list(TEST_TIMES), simulate(scene_obj).tolist(), TOLERANCE
        else:
            times, expected, tol = answers
        task_id = str(item.get("task_id") or item.get("uid") or item.get("id") or f"user-{i:04d}")
        rows.append(
            _with_prompt(
                {
                    "task_id": task_id,
                    "family": scene_obj.letter or "?",
                    "level": "user",
                    "split": "user",
                    "index": i,
                    "n_balls": scene_obj.n_balls,
                    "scene": scene,
                    "timestamps": times,
                    "expected_positions": expected,
                    "tolerance": tol,
                }
            )
        )
    if len({r["task_id"] for r in rows}) != len(rows):
        raise ConfigError("scenes= has duplicate task ids; give each row a unique 'task_id'")
    return tuple(rows)


class BouncingSimFamily(TaskFamily):
    """BouncingSim: write ``predict_position(t)`` for polygons bouncing in a polygon container."""

    env_id = env_id_for("easy")
    version = "v0"
    splits = ("train", "test")
    runs_code = True

    def __init__(
        self,
        level: str = "easy",
        *,
        family: str = "G",
        sandbox: str = "auto",
        call_timeout_s: float = 1.0,
        total_timeout_s: float | None = None,
        scenes: Any = None,
        num_train: int = 64,
        num_test: int = 16,
        seed: int = 0,
        memory_mb: int | None = None,
    ) -> None:
        super().__init__()
        problems = []
        if level not in LEVELS:
            problems.append(f"level={level!r}: use one of {', '.join(LEVELS)}")
        if family not in FAMILIES:
            problems.append(f"family={family!r}: use one of {', '.join(FAMILIES)}")
        if sandbox not in SANDBOX_TIERS:
            problems.append(f"sandbox={sandbox!r}: use one of {', '.join(SANDBOX_TIERS)}")
        if not isinstance(call_timeout_s, (int, float)) or not 0 < call_timeout_s <= 60:
            problems.append(f"call_timeout_s={call_timeout_s!r}: use a number of seconds in (0, 60]")
        if total_timeout_s is not None and (
            not isinstance(total_timeout_s, (int, float)) or not 0 < total_timeout_s <= 600
        ):
            problems.append(
                f"total_timeout_s={total_timeout_s!r}: use a number of seconds in (0, 600] or None"
            )
        for name, value in (("num_train", num_train), ("num_test", num_test)):
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name}={value!r}: use an integer >= 1")
        if memory_mb is not None and (isinstance(memory_mb, bool) or not isinstance(memory_mb, int)):
            problems.append(f"memory_mb={memory_mb!r}: use an integer number of MB or None")
        if problems:
            raise ConfigError("invalid BouncingSim options:\n  - " + "\n  - ".join(problems))
        limit_kwargs: dict[str, Any] = {"call_timeout_s": float(call_timeout_s)}
        if memory_mb is not None:
            limit_kwargs["memory_mb"] = memory_mb
        if total_timeout_s is not None:
            limit_kwargs["total_timeout_s"] = float(total_timeout_s)
        #: Limits checked now (SandboxLimits raises ConfigError for bad values); the whole-run budget
        #: is set per task from its number of test times when total_timeout_s is None.
        self.limits = SandboxLimits(**limit_kwargs)
        self.level = level
        self.letter = family
        self.sandbox = sandbox
        self.call_timeout_s = float(call_timeout_s)
        self.total_timeout_s = float(total_timeout_s) if total_timeout_s is not None else None
        self.memory_mb = memory_mb
        self.num_train, self.num_test, self.seed = num_train, num_test, seed
        self.user_rows = user_rows(scenes) if scenes is not None else None
        self.shipped = scenes is None and family == "G" and level in shipped.TASK_SETS and seed == 0
        self.env_id = env_id_for(level)
        self._predictions: dict[tuple[str, int], Any] = {}

    # -- tasks --------------------------------------------------------------------------------
    def load_split(self, split: str) -> Sequence[Task]:
        if self.user_rows is not None:
            return self.user_rows
        if self.shipped:
            return _shipped_rows(self.level, split)
        count = self.num_train if split == "train" else self.num_test
        return _generated_rows(self.letter, self.level, split, count, self.seed)

    # -- scoring ------------------------------------------------------------------------------
    def _total_timeout(self, n_calls: int) -> float:
        if self.total_timeout_s is not None:
            return self.total_timeout_s
        return max(TOTAL_BUDGET_MIN_S, TOTAL_BUDGET_SHARE * n_calls * self.call_timeout_s) + TOTAL_BUDGET_SLACK_S

    def run_program(self, code: str, times: Sequence[float]) -> SandboxRun:
        """Run ``predict_position`` at every time in one sandboxed child.

        Raises:
            SandboxUnavailableError: the configured tier cannot run here (an internal error, not the
                submission's: it is raised, never scored).
        """
        from resd_envs.sandbox import run_function_calls

        limits = dataclasses.replace(self.limits, total_timeout_s=self._total_timeout(len(times)))
        return run_function_calls(
            code, "predict_position", [(float(t),) for t in times], limits=limits, tier=self.sandbox
        )

    def evaluate(
        self, task: Task, response: str, *, detail: str = "full", max_chars: int = 4000
    ) -> Evaluation:
        check_detail(detail)
        times = [float(t) for t in task["timestamps"]]
        expected = task["expected_positions"]
        tolerance = float(task.get("tolerance", TOLERANCE))
        code = extract_program(response)
        if code is None:
            cases = [failed_case(t, "not run: no program found", "no_code") for t in times]
            return self._evaluation(cases, expected, "no_code", "", "", detail, max_chars, tolerance, None)
        run = self.run_program(code, times)  # errors of the scorer itself propagate: never a scored 0
        cases, traceback = self.score_run(run, times, expected, tolerance)
        run_error = run.error_type if run.error_type in ERROR_TYPES else ("sandbox_error" if run.error_type else None)
        error_type = overall_error_type(cases, run_error)
        message = run.message or next(
            (c.problem or "" for c in cases if c.error_type and c.error_type == error_type), ""
        )
        evaluation = self._evaluation(
            cases, expected, error_type, message, traceback, detail, max_chars, tolerance, run.tier
        )
        if run.warning:  # a weaker sandbox than configured is never silent
            evaluation.extra["sandbox_warning"] = run.warning
        return evaluation

    @staticmethod
    def score_run(
        run: SandboxRun, times: Sequence[float], expected: Sequence[Any], tolerance: float = TOLERANCE
    ) -> tuple[list[CaseResult], str]:
        """Per-time results from a sandbox run (missing outcomes fail with the run's error)."""
        outcomes = list(run.outcomes)
        run_error = run.error_type or "sandbox_error"
        cases: list[CaseResult] = []
        traceback = ""
        for k, t in enumerate(times):
            if k >= len(outcomes):
                why = {
                    "timeout": "not run: the time limit was reached earlier",
                    "memory_limit": "not run: the memory limit was reached earlier",
                    "output_limit": "not run: the output limit was reached earlier",
                }.get(run_error, "not run")
                cases.append(failed_case(t, why, run_error if run_error in ERROR_TYPES else "sandbox_error"))
                continue
            out = outcomes[k]
            if out.ok:
                cases.append(score_answer(t, out.value, expected[k], tolerance))
                continue
            kind = out.error_type if out.error_type in ERROR_TYPES else "runtime_error"
            msg = (out.message or "").strip()
            problem = (
                msg.splitlines()[0] if msg else {"timeout": "timed out"}.get(kind, kind.replace("_", " "))
            )
            if kind == "runtime_error" and not traceback and "\n" in msg:
                traceback = msg
            cases.append(failed_case(t, problem, kind))
        return cases, traceback

    def _evaluation(
        self,
        cases: list[CaseResult],
        expected: Sequence[Any],
        error_type: str | None,
        message: str,
        traceback: str,
        detail: str,
        max_chars: int,
        tolerance: float,
        tier: str | None,
    ) -> Evaluation:
        results = tuple(
            TestResult(
                id=f"t={c.time:.2f}",
                passed=c.passed,
                message=(f"mean distance {c.mean_error:.2f}" if c.errors is not None else (c.problem or "")),
                score=1.0 if c.passed else 0.0,
            )
            for c in cases
        )
        texts = {
            level: build_feedback(
                cases,
                expected,
                error_type=error_type,
                message=message if error_type else "",
                traceback=traceback,
                detail=level,
                max_chars=max_chars,
                tolerance=tolerance,
            )
            for level in dict.fromkeys((detail, PRIVILEGED))
        }
        extra: dict[str, Any] = {"mean_errors": [c.mean_error for c in cases], "sandbox_tier": tier}
        if error_type == "sandbox_error":
            extra["internal_error"] = message or "the sandbox failed to run the program"
        return Evaluation(
            results,
            error_type,
            texts[detail],
            num_tests=len(cases),
            extra=extra,
            privileged_feedback=texts[PRIVILEGED],
        )

    # -- optional hooks -----------------------------------------------------------------------
    def reference_response(self, task: Task) -> str | None:
        return solver_response(task["scene"])

    def predictions(self, task: Task, response: str | None, times: Sequence[float]) -> list[Any] | None:
        """The program's answers at ``times`` (None entries where it failed); None without code."""
        code = extract_program(response) if response else None
        if code is None:
            return None
        key = (str(task["task_id"]), hash((code, tuple(times))))
        if key not in self._predictions:
            outs = list(self.run_program(code, times).outcomes)
            values: list[Any] = []
            for k in range(len(times)):
                value = outs[k].value if k < len(outs) and outs[k].ok else None
                positions, _ = check_shape(value, int(task["n_balls"]))
                values.append([list(p) for p in positions] if positions is not None else None)
            self._predictions = {key: values}  # keep only the latest
        return self._predictions[key]

    def render_rgb(self, task: Task, response: str | None = None) -> Any:
        from resd_envs.bouncingsim.render import render_frame

        preds = self.predictions(task, response, task["timestamps"])
        return render_frame(task, preds)

    def render_files(
        self,
        task: Task,
        response: str | None = None,
        *,
        png: str | Path = "scene.png",
        gif: str | Path | None = None,
    ) -> list[str]:
        """Write a PNG (and an animated GIF when ``gif`` is given); returns the written paths."""
        from resd_envs.bouncingsim.render import write_files

        preds = self.predictions(task, response, task["timestamps"])
        return write_files(task, preds, png=png, gif=gif)

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "level": self.level,
            "family": self.letter,
            "source": (
                "user scenes" if self.user_rows is not None else "shipped" if self.shipped else "generated"
            ),
        }
        try:
            from resd_envs.sandbox import sandbox_info

            facts["sandbox"] = sandbox_info()
        except Exception as exc:  # describe never fails
            facts["sandbox"] = f"unavailable ({type(exc).__name__}: {exc})"
        return facts
