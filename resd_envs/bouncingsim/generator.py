"""Seeded scene generator for the BouncingSim families A-G and levels basic-extreme.

It follows the reference generator's distributions and placement rules (see
``docs/bouncingsim.md``), not its random stream: scene ``index`` of a (family, level, stream)
comes from its own ``random.Random`` seeded with a string, so any single scene can be rebuilt
without building the ones before it.

Per attempt: sample the scene, round it as the reference's files are rounded (positions and
container centres/diameters to integers; velocities, radii, angular speeds, gravity to 2
decimals), check placement (balls pairwise >= r1 + r2 + 5 apart; each ball centre within
inradius - r - 5 of its nearest container's centre) and the numerical-stability filter (the
oracle at dt = 1/3000 and 1/4000 must agree within 15 units for every ball at t = 0.5, 1.0,
1.5 s). The first accepted attempt (at most 500) is the scene.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from resd_envs.bouncingsim.oracle import simulate
from resd_envs.bouncingsim.scene import load_scene

FAMILIES: dict[str, str] = {
    "A": "ROTOBJ",
    "B": "ROTBOX",
    "C": "MOVBOX",
    "D": "GRAVITY",
    "F": "MULTIBOX",
    "G": "MULTIOBJ",
}
LEVELS: tuple[str, ...] = ("basic", "easy", "medium", "hard", "extreme")
MAX_ATTEMPTS = 500
CENTER = (750, 750)
BASE_DIAMETER = 300.0
MARGIN = 5.0
STABILITY_TIMES = (0.5, 1.0, 1.5)
STABILITY_TOLERANCE = 15.0
STABILITY_DT = 1.0 / 3000.0


@dataclass(frozen=True)
class LevelSpec:
    """Ranges of one level for the single-ball families (inclusive)."""

    ball_sides: tuple[int, int]
    ball_radius: float
    speed: tuple[float, float]
    factor: float
    box_sides: tuple[int, int]


_LEVEL = {
    "basic": LevelSpec((3, 4), 40.0, (200, 400), 1.5, (3, 4)),
    "easy": LevelSpec((5, 6), 35.0, (400, 600), 1.4, (5, 6)),
    "medium": LevelSpec((6, 7), 30.0, (600, 800), 1.3, (6, 7)),
    "hard": LevelSpec((7, 8), 25.0, (800, 1000), 1.2, (7, 8)),
    "extreme": LevelSpec((8, 10), 20.0, (1000, 1200), 1.0, (8, 10)),
}
_A_OVERRIDES = {  # ball sides, radius, speed, container sides
    "easy": {"box_sides": (3, 5)},
    "medium": {"box_sides": (3, 6)},
    "hard": {"ball_radius": 30.0, "speed": (600, 800), "box_sides": (3, 7)},
    "extreme": {"ball_sides": (8, 8), "ball_radius": 30.0, "speed": (600, 800), "box_sides": (3, 7)},
}
_A_SPIN = {
    "basic": (0.1, 0.2),
    "easy": (0.2, 0.5),
    "medium": (0.5, 1.0),
    "hard": (1.0, 2.0),
    "extreme": (2.0, 2.5),
}
_B_SPIN = {
    "basic": (0.1, 0.2),
    "easy": (0.2, 0.5),
    "medium": (0.5, 1.0),
    "hard": (1.0, 1.5),
    "extreme": (2.0, 3.0),
}
_D_GRAVITY = {"basic": 100.0, "easy": 1000.0, "medium": 10000.0, "hard": 10000.0, "extreme": 10000.0}
_F_COUNT = {"basic": 2, "easy": 2, "medium": 3, "hard": 4, "extreme": 6}
_G_COUNT = {"basic": (2, 2), "easy": (3, 3), "medium": (4, 5), "hard": (5, 6), "extreme": (7, 9)}
_COLORS = {
    "A": [255, 100, 50],
    "B": [60, 160, 255],
    "C": [120, 220, 80],
    "D": [240, 180, 60],
    "F": [100, 255, 200],
}


class GenerationError(RuntimeError):
    """No acceptable scene within the attempt budget."""


def level_spec(letter: str, level: str) -> LevelSpec:
    """The ranges used for ``letter`` at ``level`` (family overrides applied)."""
    base = _LEVEL[level]
    if letter == "A" and level in _A_OVERRIDES:
        return LevelSpec(**{**base.__dict__, **_A_OVERRIDES[level]})
    if letter == "B" and level == "extreme":
        return LevelSpec(**{**base.__dict__, "ball_radius": 25.0, "factor": 0.8})
    return base


def _r2(x: float) -> float:
    return round(float(x), 2)


def _velocity(rng: random.Random, speed: tuple[float, float]) -> list[float]:
    v = _r2(rng.uniform(*speed))
    theta = rng.uniform(0, 2 * math.pi)
    return [_r2(v * math.cos(theta)), _r2(v * math.sin(theta))]


def _box(center: tuple[float, float], diameter: float, sides: int, speed: float = 0.0) -> dict[str, Any]:
    return {
        "center": [int(round(center[0])), int(round(center[1]))],
        "diameter": int(round(diameter)),
        "sides": int(sides),
        "rotation": 0.0,
        "friction": 0.0,
        "restitution": 1.0,
        "rotation_speed": _r2(speed),
    }


def _ball(
    pos: tuple[float, float],
    vel: list[float],
    radius: float,
    sides: int,
    color: list[int],
    spin: float | None = None,
) -> dict[str, Any]:
    out = {
        "position": [int(round(pos[0])), int(round(pos[1]))],
        "velocity": vel,
        "radius": _r2(radius),
        "density": 1.0,
        "restitution": 1.0,
        "color": color,
        "sides": int(sides),
        "rotation_affected": spin is not None,
    }
    if spin is not None:
        out.update(
            {"inner_rotation_enabled": True, "angular_velocity": _r2(spin), "angular_time_variation": False}
        )
    return out


def _single_ball(rng: random.Random, letter: str, level: str) -> dict[str, Any]:
    spec = level_spec(letter, level)
    sides = rng.randint(*spec.ball_sides)
    meta: dict[str, Any] = {}
    physics = {"gravity_enabled": False, "gravity_x": 0.0, "gravity_y": 0.0}
    spin = _r2(rng.uniform(*_A_SPIN[level])) if letter == "A" else None
    box_speed = 0.0
    path = None
    if letter == "B":
        box_speed = _r2(rng.uniform(*_B_SPIN[level]))
        if level in ("hard", "extreme"):
            meta["outer_rotation_profile"] = {"omega_base": box_speed, "omega_amp": _r2(0.4 * box_speed)}
    elif letter == "C":
        if level == "basic":
            amp = rng.randint(0, 10)
            path = {"type": "sin1d", "amplitude": amp, "axis": "x", "freq": 0.1} if amp else None
        elif level in ("easy", "medium"):
            lo, hi, freq = (20, 40, 0.5) if level == "easy" else (40, 60, 1.0)
            path = {"type": "sin1d", "amplitude": rng.randint(lo, hi), "axis": "x", "freq": freq}
        else:
            lo, hi = (60, 90) if level == "hard" else (90, 120)
            amp = rng.randint(lo, hi)
            path = {"type": "lissajous", "ax": amp, "ay": amp, "fx": 0.6, "fy": 0.9}
    elif letter == "D":
        g = _D_GRAVITY[level]
        if level in ("hard", "extreme"):
            a = rng.uniform(-math.radians(120), math.radians(120))
            gx, gy = g * math.sin(a), -g * math.cos(a)
            meta["gravity_profile"] = {"tilt_angle_deg": round(math.degrees(a), 2)}
        else:
            gx, gy = 0.0, -g
        physics = {"gravity_enabled": True, "gravity_x": _r2(gx), "gravity_y": _r2(gy)}
    vel = _velocity(rng, spec.speed)
    diameter = BASE_DIAMETER * spec.factor
    box_sides = rng.randint(*(spec.ball_sides if letter == "B" else spec.box_sides))
    boxes = [_box(CENTER, diameter, box_sides, box_speed)]
    if path is not None:
        boxes[0]["translation_path"] = path
    if letter == "F":
        for _ in range(_F_COUNT[level] - 1):
            dist = rng.uniform(250, 280)
            ang = rng.uniform(0, 2 * math.pi)
            boxes.append(
                _box(
                    (CENTER[0] + dist * math.cos(ang), CENTER[1] + dist * math.sin(ang)), diameter, box_sides
                )
            )
        meta["multiple_containers"] = {"container_count": len(boxes)}
    r = spec.ball_radius
    pos = (CENTER[0] + rng.uniform(-2 * r, 2 * r), CENTER[1] + rng.uniform(-2 * r, 2 * r))
    balls = [_ball(pos, vel, r, sides, _COLORS[letter], spin)]
    return {"physics": physics, "boxes": boxes, "balls": balls, "meta": meta}


def _multi_ball(rng: random.Random, level: str) -> dict[str, Any]:
    spec = _LEVEL[level]
    count = rng.randint(*_G_COUNT[level])
    box_sides = rng.randint(3, 6)
    diameter, r = 750.0, 20.0
    allowed = (diameter / 2) * math.cos(math.pi / box_sides) - r - MARGIN
    points: list[tuple[float, float]] = []
    for _ in range(count):
        for _try in range(100):
            rad, ang = rng.uniform(0, allowed), rng.uniform(0, 2 * math.pi)
            x, y = CENTER[0] + rad * math.cos(ang), CENTER[1] + rad * math.sin(ang)
            if all((x - px) ** 2 + (y - py) ** 2 >= (2 * r + 4) ** 2 for px, py in points):
                points.append((x, y))
                break
        else:
            raise GenerationError("could not place the balls")
    balls = []
    for x, y in points:
        x, y = x + rng.uniform(-2 * r, 2 * r), y + rng.uniform(-2 * r, 2 * r)
        vel = _velocity(rng, spec.speed)
        sides = rng.randint(3, 6)
        color = [rng.randint(50, 255) for _ in range(3)]
        balls.append(_ball((x, y), vel, r, sides, color))
    return {
        "physics": {"gravity_enabled": False, "gravity_x": 0.0, "gravity_y": 0.0},
        "boxes": [_box(CENTER, diameter, box_sides)],
        "balls": balls,
        "meta": {"multi_object_count": count},
    }


def placement_ok(scene: dict[str, Any]) -> bool:
    """The reference's placement checks on a rounded scene dict."""
    sc = load_scene(scene)
    for i, a in enumerate(sc.balls):
        for b in sc.balls[i + 1 :]:
            if math.dist(a.position, b.position) < a.radius + b.radius + MARGIN:
                return False
        nearest = min(sc.containers, key=lambda c: math.dist(c.center, a.position))
        if math.dist(nearest.center, a.position) > nearest.inradius - a.radius - MARGIN:
            return False
    return True


def stable(scene: dict[str, Any]) -> bool:
    """The numerical-stability filter: dt 1/3000 and 1/4000 agree within 15 units."""
    fine = simulate(scene, STABILITY_TIMES, decimals=None)
    coarse = simulate(scene, STABILITY_TIMES, dt=STABILITY_DT, decimals=None)
    return bool(np.all(np.linalg.norm(fine - coarse, axis=2) <= STABILITY_TOLERANCE))


def generate_scene(
    letter: str, level: str, index: int, *, stream: str = "main", seed: int = 0
) -> dict[str, Any]:
    """Scene number ``index`` of ``(letter, level, stream, seed)``, in the reference's JSON format.

    Raises:
        ValueError: unknown family letter or level.
        GenerationError: no scene passed the checks within 500 attempts.
    """
    if letter not in FAMILIES:
        raise ValueError(f"unknown family {letter!r}; use one of {', '.join(FAMILIES)} (E is not generated)")
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    rng = random.Random(f"resd-bouncingsim/{seed}/{stream}/{letter}/{level}/{index}")
    for attempt in range(MAX_ATTEMPTS):
        try:
            scene = _multi_ball(rng, level) if letter == "G" else _single_ball(rng, letter, level)
        except GenerationError:
            continue
        if not placement_ok(scene) or not stable(scene):
            continue
        scene["meta"] = {
            "scene_type": letter,
            "difficulty": level,
            "difficulty_level": LEVELS.index(level),
            "index": index,
            "stream": stream,
            "seed": seed,
            "attempt": attempt,
            "generator": "resd_envs.bouncingsim.generator",
            **scene["meta"],
        }
        return scene
    raise GenerationError(f"no acceptable {letter} {level} scene #{index} in {MAX_ATTEMPTS} attempts")
