"""Scene parsing: the reference format loads, bad input gets errors that name the field."""

from __future__ import annotations

import copy
import math

import pytest

from resd_envs.bouncingsim import SceneError, load_scene
from resd_envs.bouncingsim.scene import TranslationPath


def test_every_sample_scene_loads(sample_rows: list[dict]) -> None:
    for row in sample_rows:
        scene = load_scene(row["scene"])
        assert scene.n_balls == row["n_balls"]
        assert scene.letter == row["family"]


def test_fields_are_parsed_with_reference_conventions(sample_rows: list[dict]) -> None:
    row = next(r for r in sample_rows if r["ref_id"] == "G_2_1")
    scene = load_scene(row)  # a dataset row with the scene under "scene"
    box = scene.containers[0]
    assert box.radius == 375.0 and box.sides == 4 and box.rotation == 0.0
    tri = scene.balls[0]
    assert tri.sides == 3 and not tri.rotation_affected
    assert tri.mass == pytest.approx(519.615, abs=1e-3)  # density 1: mass = area
    assert tri.local_vertices()[0] == (20.0, 0.0)  # vertex 0 on +x


def test_strings_degrees_and_profiles() -> None:
    scene = load_scene(
        {
            "physics": {"gravity_enabled": True, "gravity_x": 0, "gravity_y": -100},
            "boxes": [
                {
                    "center": [0, 0],
                    "diameter": 200,
                    "sides": 5,
                    "rotation": 90,
                    "rotation_speed": "pi/2",
                    "translation_path": {"type": "lissajous", "ax": 10, "ay": 20, "fx": 0.6, "fy": 0.9},
                }
            ],
            "balls": [{"position": [0, 0], "velocity": ["2*3", -1], "radius": 10, "sides": 4}],
            "meta": {"outer_rotation_profile": {"omega_base": 1.0, "omega_amp": 0.4}},
        }
    )
    assert scene.containers[0].rotation == pytest.approx(math.pi / 2)
    assert scene.containers[0].rotation_speed == pytest.approx(math.pi / 2)
    assert scene.balls[0].velocity == (6.0, -1.0)
    assert scene.balls[0].rotation_affected  # the reference's default
    assert scene.gravity == (0.0, -100.0)
    assert scene.rotation_profile.angle(0.0) == 0.0
    assert scene.containers[0].translation.offset(0.0) == pytest.approx(
        (0.0, 20.0)
    )  # Lissajous starts shifted


def test_sin1d_and_piecewise_paths() -> None:
    p = TranslationPath("sin1d", axis="y", amplitude=10, freq=0.25)
    assert p.offset(1.0) == pytest.approx((0.0, 10.0))
    q = TranslationPath("piecewise", segments=2, amplitude=8)
    assert q.offset(0.25) == pytest.approx((8.0, 0.0)) and q.offset(0.0) == pytest.approx((0.0, 0.0))


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        (lambda s: s.pop("boxes"), "boxes"),
        (lambda s: s["balls"].clear(), "balls"),
        (lambda s: s["boxes"][0].update(sides=2), r"boxes\[0\]\.sides"),
        (lambda s: s["boxes"][0].update(diameter=-5), "diameter"),
        (lambda s: s["balls"][0].update(velocity=[1]), r"balls\[0\]\.velocity"),
        (lambda s: s["balls"][0].update(velocity=["__import__('os')", 0]), "math expression"),
        (lambda s: s["balls"][0].update(radius=float("nan")), "finite"),
        (lambda s: s["boxes"][0].update(translation_path={"type": "spiral"}), "spiral"),
    ],
)
def test_bad_scenes_raise_clear_errors(sample_rows: list[dict], patch, match: str) -> None:
    scene = copy.deepcopy(sample_rows[0]["scene"])
    patch(scene)
    with pytest.raises(SceneError, match=match):
        load_scene(scene)


def test_non_dict_input() -> None:
    with pytest.raises(SceneError, match="dict"):
        load_scene([1, 2])
    with pytest.raises(SceneError, match="JSON"):
        load_scene("{not json")
