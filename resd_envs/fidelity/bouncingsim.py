"""BouncingSim fidelity: this installation's pymunk oracle against the reference's Box2D positions.

Two row layouts (see ``docs/fidelity.md``):

* **RESD / golden layout**: ``scene`` (the reference's scene JSON), ``timestamps``,
  ``expected_positions`` (``[time][ball] = [x, y]``), optional ``tolerance`` (50), ``uid``,
  ``family``, ``difficulty_name`` and ``diagnostics`` (the golden file's stability notes);
* **DELTA dataset layout**: ``scene_config`` (the scene, as an object or a JSON string) and
  ``ground_truth`` (the 15 ``assert check_distance(predict_position(T), EXPECTED) <= TOL`` strings,
  as a list or a JSON string), optional ``id`` and ``difficulty``.

One check per (scene, time): it agrees when the mean over balls of the distance between our
position and the reference's, rounded to 3 decimals, is within the tolerance (the reference's own
pass rule). Summaries are per family x difficulty: share within tolerance and the error
distribution (mean, median, p95, max).

Live mode sends, per scene, a lookup-table ``predict_position`` holding our positions, with the
reference's asserts, to DELTA's ``/test_program``; the reference's own ``check_distance`` then judges
our oracle.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from resd_envs.bouncingsim import SceneError, load_scene, simulate
from resd_envs.fidelity.http import ReferenceServerError, post_json
from resd_envs.fidelity.report import Check, FidelityReport
from resd_envs.fidelity.rows import RowFormatError, short

TOLERANCE = 50.0
#: Worst cases listed in the report and drawn in pictures.
WORST = 5
PICTURES = 4
_ASSERT = re.compile(
    r"^\s*assert\s+check_distance\(\s*predict_position\(\s*([-+0-9.eE]+)\s*\)\s*,"
    r"\s*(\[.*\])\s*\)\s*<=\s*([-+0-9.eE]+)\s*$",
    re.DOTALL,
)
FAMILY_NAMES = {"A": "ROTOBJ", "B": "ROTBOX", "C": "MOVBOX", "D": "GRAVITY", "F": "MULTIBOX", "G": "MULTIOBJ"}
LEVEL_NAMES = {0: "basic", 1: "easy", 2: "medium", 3: "hard", 4: "extreme"}


@dataclass(frozen=True)
class SceneRow:
    """One validated scene row."""

    line: int
    uid: str
    family: str
    level: str
    scene: dict[str, Any]
    times: tuple[float, ...]
    expected: np.ndarray  # (times, balls, 2)
    tolerance: float
    diagnostics: dict[str, Any]

    @property
    def group(self) -> str:
        return f"{self.family}/{self.level}"


def parse_assert(text: Any, index: int) -> tuple[float, list[list[float]], float]:
    """``(time, expected positions, tolerance)`` of one DELTA ground-truth assert string.

    Raises:
        RowFormatError: not of the form ``assert check_distance(predict_position(T), [[x, y], ...]) <= TOL``.
    """
    match = _ASSERT.match(text) if isinstance(text, str) else None
    if match is None:
        raise RowFormatError(f"ground_truth[{index}] is {short(text)}; expected "
                             "'assert check_distance(predict_position(T), [[x, y], ...]) <= TOL'")
    try:
        positions = ast.literal_eval(match.group(2))
        return float(match.group(1)), positions, float(match.group(3))
    except (ValueError, SyntaxError) as exc:
        raise RowFormatError(
            f"ground_truth[{index}]: the expected positions are not a list of [x, y] ({exc})"
        ) from exc


def _maybe_json(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowFormatError(f'"{name}" is a string that is not valid JSON ({exc.msg})') from exc
    return value


def _level(row: dict[str, Any], meta: dict[str, Any]) -> str:
    for value in (row.get("difficulty_name"), row.get("difficulty"), meta.get("difficulty"),
                  meta.get("difficulty_level")):
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value in LEVEL_NAMES:
            return LEVEL_NAMES[value]
    return "unknown"


def read_row(line: int, row: dict[str, Any], *, live: bool = False) -> SceneRow:
    """Validate one scene row (either layout).

    Raises:
        RowFormatError: missing/ill-typed fields, a scene the oracle cannot load, or positions whose
            shape does not match the times and balls.
    """
    if "scene" in row:
        scene = row["scene"]
        times = row.get("timestamps")
        expected = row.get("expected_positions")
        if expected is None:
            raise RowFormatError('missing field "expected_positions" ([time][ball] = [x, y]) next to "scene"')
        if times is None:
            raise RowFormatError('missing field "timestamps" (the times of "expected_positions")')
        tolerance = row.get("tolerance", TOLERANCE)
    elif "scene_config" in row:
        scene = _maybe_json(row["scene_config"], "scene_config")
        if "ground_truth" not in row:
            raise RowFormatError('missing field "ground_truth" (the 15 assert strings) next to "scene_config"')
        asserts = _maybe_json(row["ground_truth"], "ground_truth")
        if not isinstance(asserts, list) or not asserts:
            raise RowFormatError('"ground_truth" should be a non-empty list of assert strings')
        parsed = [parse_assert(a, i) for i, a in enumerate(asserts)]
        times = [p[0] for p in parsed]
        expected = [p[1] for p in parsed]
        tolerance = row.get("tolerance", parsed[0][2])
    else:
        raise RowFormatError('no scene: a row needs "scene" + "timestamps" + "expected_positions" (RESD layout) '
                             'or "scene_config" + "ground_truth" (DELTA dataset layout)')
    if not isinstance(scene, dict):
        raise RowFormatError(f"the scene is {type(scene).__name__}; it should be the reference's scene object")
    try:
        loaded = load_scene(scene)
    except (SceneError, ValueError, TypeError) as exc:
        raise RowFormatError(f"the scene cannot be loaded: {exc}") from exc
    if not isinstance(times, list) or not times or not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and 0 <= t <= 60
        for t in times
    ):
        raise RowFormatError(f'"timestamps" is {short(times)}; it should be a list of times in seconds (0-60)')
    try:
        array = np.asarray(expected, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise RowFormatError(f"the expected positions are not numbers ({exc})") from exc
    if array.shape != (len(times), loaded.n_balls, 2):
        raise RowFormatError(f"the expected positions have shape {array.shape}; with {len(times)} times and "
                             f"{loaded.n_balls} balls they should be ({len(times)}, {loaded.n_balls}, 2)")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise RowFormatError(f'"tolerance" is {short(tolerance)}; it should be a positive number')
    meta = scene.get("meta") if isinstance(scene.get("meta"), dict) else {}
    family = row.get("family") or meta.get("scene_type") or "?"
    uid = str(row.get("uid") or row.get("id") or row.get("ref_id") or f"line {line}")
    diagnostics = row.get("diagnostics") if isinstance(row.get("diagnostics"), dict) else {}
    return SceneRow(line, uid, str(family), _level(row, meta), scene, tuple(float(t) for t in times), array,
                    float(tolerance), diagnostics)


def mean_errors(ours: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per time: mean over balls of the Euclidean distance, rounded to 3 dp (the reference's rule)."""
    return np.round(np.linalg.norm(ours - expected, axis=2).mean(axis=1), 3)


def known_reason(row: SceneRow) -> str | None:
    """The documented cause of a miss on this scene, if there is one."""
    n = len(row.times)
    d = row.diagnostics
    if isinstance(d.get("box2d_dt_1_8000_tests_within_tol"), int) and d["box2d_dt_1_8000_tests_within_tol"] < n:
        return ("known difference: the reference is unstable on this scene (Box2D at dt 1/8000 misses its own "
                "dt 1/4000 answer, per the row's diagnostics)")
    if row.family == "A":
        return ("known difference: spinning-ball family A is ill-conditioned; pymunk and Box2D couple spin and "
                "translation differently (pymunk matches 78-100% of A tests; Box2D disagrees with itself on some "
                "medium scenes)")
    pymunk_within = d.get("pymunk_dt_1_4000_tests_within_tol")
    if isinstance(pymunk_within, int) and pymunk_within < n:
        return ("known difference: pymunk vs Box2D contact resolution; the row's diagnostics record the same miss "
                "for a pymunk set-up")
    return None


def _lookup_program(times: tuple[float, ...], ours: np.ndarray) -> str:
    table = {f"{t:.2f}": [[float(x), float(y)] for x, y in frame] for t, frame in zip(times, ours)}
    return (
        "def predict_position(t):\n"
        f"    table = {json.dumps(table)}\n"
        "    return table['%.2f' % t]\n"
    )


def _assert_text(t: float, expected: np.ndarray, tolerance: float) -> str:
    return f"assert check_distance(predict_position({t:.2f}), {json.dumps(expected.tolist())}) <= {tolerance}"


def live_verdicts(base: str, row: SceneRow, ours: np.ndarray) -> list[int]:
    """The reference server's 0/1 verdict on our positions at each time of ``row``.

    Raises:
        ReferenceServerError: unreachable, or a reply that is not ``{"results": [0/1, ...]}``.
    """
    payload = {"program": _lookup_program(row.times, ours),
               "tests": [_assert_text(t, e, row.tolerance) for t, e in zip(row.times, row.expected)],
               "max_execution_time": 1.0}
    reply = post_json(base, "/test_program", payload)
    results = reply.get("results") if isinstance(reply, dict) else None
    if not isinstance(results, list) or len(results) != len(row.times):
        raise ReferenceServerError(f"/test_program replied {short(reply, 120)}; expected DELTA's "
                                   f'{{"results": [0/1 x {len(row.times)}], "runtimes": [...]}}')
    return [int(r) for r in results]


def check_rows(rows: list[SceneRow], report: FidelityReport, base: str | None = None) -> None:
    """Simulate every scene, compare each time with the reference, and fill the group summaries."""
    errors_by_group: dict[str, list[float]] = {}
    within_by_group: dict[str, list[bool]] = {}
    scenes: list[dict[str, Any]] = []
    for row in rows:
        ours = simulate(row.scene, row.times)
        errs = mean_errors(ours, row.expected)
        verdicts = live_verdicts(base, row, ours) if base else None
        reason = known_reason(row)
        for k, t in enumerate(row.times):
            within = bool(errs[k] <= row.tolerance)
            agree = within
            ref: dict[str, Any] = {"positions": row.expected[k].tolist()}
            note = None
            if verdicts is not None:
                ref["server_verdict"] = verdicts[k]
                agree = within and verdicts[k] == 1
                if (verdicts[k] == 1) != within:
                    note = (f"the server's check_distance says {'pass' if verdicts[k] else 'fail'} where resd's "
                            f"scorer says {'pass' if within else 'fail'} (error {errs[k]})")
            report.checks.append(Check(
                line=row.line, key=f"{row.uid} t={t:g}", group=row.group, agree=agree,
                ours={"positions": ours[k].tolist(), "mean_error": float(errs[k])}, reference=ref,
                input={"uid": row.uid, "time": t, "n_balls": int(ours.shape[1]), "tolerance": row.tolerance},
                reason=None if agree or note else reason, note=note, value=float(errs[k]),
            ))
        errors_by_group.setdefault(row.group, []).extend(float(e) for e in errs)
        within_by_group.setdefault(row.group, []).extend(bool(e <= row.tolerance) for e in errs)
        scenes.append({"row": row, "ours": ours, "errors": errs})
    for group, values in errors_by_group.items():
        arr = np.asarray(values)
        report.groups.setdefault(group, {}).update(
            scenes=sum(1 for s in scenes if s["row"].group == group),
            within_tolerance=float(np.mean(within_by_group[group])),
            error_mean=float(arr.mean()), error_median=float(np.median(arr)),
            error_p95=float(np.percentile(arr, 95)), error_max=float(arr.max()),
        )
    worst = sorted(report.checks, key=lambda c: -(c.value or 0.0))[:WORST]
    report.worst = [{"uid": c.input["uid"], "line": c.line, "group": c.group, "time": c.input["time"],
                     "mean_error": c.value, "status": c.status, "reason": c.reason} for c in worst]
    ranked = sorted(scenes, key=lambda s: -float(s["errors"].max()))[:PICTURES]
    report.extras["scenes"] = [
        {"uid": s["row"].uid, "group": s["row"].group, "scene": s["row"].scene, "times": list(s["row"].times),
         "expected": s["row"].expected.tolist(), "ours": s["ours"].tolist(), "errors": s["errors"].tolist(),
         "tolerance": s["row"].tolerance}
        for s in ranked
    ]
