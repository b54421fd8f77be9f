"""The seeded generator: distributions and placement rules of the reference, determinism."""

from __future__ import annotations

import math

import pytest

from resd_envs.bouncingsim import generate_scene, load_scene
from resd_envs.bouncingsim.generator import FAMILIES, LEVELS, placement_ok, stable


@pytest.mark.parametrize("level,counts", [("easy", {3}), ("medium", {4, 5})])
def test_multiobj_levels(level: str, counts: set[int]) -> None:
    seen = set()
    for i in range(12):
        raw = generate_scene("G", level, i, stream="unit")
        scene = load_scene(raw)
        seen.add(scene.n_balls)
        box = scene.containers[0]
        assert box.radius == 375.0 and 3 <= box.sides <= 6 and box.center == (750.0, 750.0)
        for ball in scene.balls:
            assert ball.radius == 20.0 and 3 <= ball.sides <= 6 and not ball.rotation_affected
            speed = math.hypot(*ball.velocity)
            lo, hi = (400, 600) if level == "easy" else (600, 800)
            assert lo - 0.02 <= speed <= hi + 0.02
            assert all(float(c).is_integer() for c in ball.position)  # rounded like the reference files
        assert placement_ok(raw)
    assert seen <= counts and (level == "easy" or seen == counts)


def test_same_inputs_same_scene_and_streams_differ() -> None:
    assert generate_scene("G", "easy", 3) == generate_scene("G", "easy", 3)
    assert generate_scene("G", "easy", 3) != generate_scene("G", "easy", 4)
    assert generate_scene("G", "easy", 3, stream="train") != generate_scene("G", "easy", 3, stream="test")


def test_accepted_scenes_pass_the_stability_filter() -> None:
    assert stable(generate_scene("G", "medium", 0, stream="unit"))


def test_placement_rejects_overlaps_and_balls_near_walls() -> None:
    raw = generate_scene("G", "easy", 0, stream="unit")
    raw["balls"][1]["position"] = list(raw["balls"][0]["position"])
    assert not placement_ok(raw)
    raw = generate_scene("G", "easy", 0, stream="unit")
    raw["balls"][0]["position"] = [750 + 300, 750]
    assert not placement_ok(raw)


@pytest.mark.parametrize("letter", sorted(set(FAMILIES) - {"G"}))
def test_single_ball_families(letter: str) -> None:
    for level in ("basic", "medium", "extreme"):
        scene = load_scene(generate_scene(letter, level, 0, stream="unit"))
        assert scene.n_balls == 1 and scene.letter == letter
        assert (len(scene.containers) > 1) == (letter == "F")
        assert scene.balls[0].rotation_affected == (letter == "A")
        if letter == "D":
            assert math.hypot(*scene.gravity) > 0
        if letter == "C" and level != "basic":
            assert scene.containers[0].translation is not None
        if letter == "B":
            assert scene.containers[0].rotation_speed > 0
            assert (scene.rotation_profile is not None) == (level == "extreme")


def test_unknown_family_or_level() -> None:
    with pytest.raises(ValueError, match="family"):
        generate_scene("E", "easy", 0)
    with pytest.raises(ValueError, match="level"):
        generate_scene("G", "insane", 0)
    assert LEVELS[0] == "basic" and len(LEVELS) == 5
