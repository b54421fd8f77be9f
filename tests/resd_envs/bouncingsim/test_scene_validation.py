"""Malformed ``scenes=`` rows fail at construction with a SceneError naming the row and the field."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from resd_envs.bouncingsim.family import BouncingSimFamily
from resd_envs.bouncingsim.scene import MAX_BALLS, SceneError

SCENE = {
    "boxes": [{"center": [750, 750], "diameter": 600, "sides": 6}],
    "balls": [{"position": [700, 700], "velocity": [100, 50], "radius": 20, "sides": 4}],
}
ANSWERS = {"timestamps": [0.1], "expected_positions": [[[710.0, 705.0]]]}


def _row(**changes):
    row = {"task_id": "r", "scene": copy.deepcopy(SCENE), **copy.deepcopy(ANSWERS)}
    row.update(changes)
    return row


def _ball(**changes):
    scene = copy.deepcopy(SCENE)
    scene["balls"][0].update(changes)
    return _row(scene=scene)


@pytest.mark.parametrize(
    ("row", "names"),
    [
        (_row(tolerance=float("inf")), "tolerance"),
        (_row(tolerance=-1), "tolerance"),
        (_row(tolerance="x"), "tolerance"),
        (_row(timestamps=[0.1, 0.2]), "same length"),
        (_row(expected_positions=[[[1.0, 2.0], [3.0, 4.0]]]), "expected_positions[0]"),
        (_row(expected_positions=[[[1.0, float("nan")]]]), "expected_positions[0][0][1]"),
        (_row(expected_positions=[[["a", 1]]]), "expected_positions[0][0][0]"),
        (_row(timestamps=[float("inf")]), "timestamps[0]"),
        (_row(timestamps=["1e999"]), "timestamps[0]"),
        (_ball(position=[10**400, 0]), "balls[0].position[0]"),
        (_ball(position="(" * 5000 + "1" + ")" * 5000), "balls[0].position"),
        (_ball(velocity=["(" * 90 + "1" + ")" * 90, 0]), "balls[0].velocity[0]"),
        (_ball(velocity=["9**9**9", 0]), "balls[0].velocity[0]"),
        (_ball(radius="-" * 5000 + "1"), "balls[0].radius"),
        (_ball(sides=2.5), "balls[0].sides"),
        (_ball(color=["red", 0, 0]), "balls[0].color"),
        (_ball(position=[1e300, 0]), "balls[0].position[0]"),
        ({"task_id": "r", "scene": {"scene": {"scene": SCENE}}}, "wrapped"),
        ({"task_id": "r", "ground_truth": ["assert nothing"], "scene": SCENE}, "ground_truth[0]"),
        ({"task_id": "r", "ground_truth": "[" * 5000, "scene": SCENE}, "ground_truth[0]"),
    ],
)
def test_malformed_rows_raise_scene_error_naming_row_and_field(row, names: str) -> None:
    with pytest.raises(SceneError) as info:
        BouncingSimFamily("easy", scenes=[_row(task_id="ok"), row])
    assert "scenes[1]" in str(info.value) and names in str(info.value)


def test_too_many_balls_is_refused_fast() -> None:
    scene = copy.deepcopy(SCENE)
    scene["balls"] = [copy.deepcopy(SCENE["balls"][0]) for _ in range(500)]
    start = time.perf_counter()
    with pytest.raises(SceneError, match=f"at most .* {MAX_BALLS} balls"):
        BouncingSimFamily("easy", scenes=[{"scene": scene}])
    assert time.perf_counter() - start < 1.0


def test_unreadable_scenes_file(tmp_path: Path) -> None:
    binary = tmp_path / "x.jsonl"
    binary.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SceneError, match="UTF-8"):
        BouncingSimFamily("easy", scenes=str(binary))
    nested = tmp_path / "n.jsonl"
    nested.write_text("[" * 100000 + "\n")
    with pytest.raises(SceneError, match="n.jsonl:1"):
        BouncingSimFamily("easy", scenes=str(nested))


def test_valid_row_with_own_answers_loads() -> None:
    fam = BouncingSimFamily("easy", scenes=[_row(tolerance=30)])
    task = fam.tasks("test")[0]
    assert task["tolerance"] == 30.0 and task["expected_positions"] == [[[710.0, 705.0]]]
    assert json.loads(json.dumps(task))["timestamps"] == [0.1]
