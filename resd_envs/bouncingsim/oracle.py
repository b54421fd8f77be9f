"""The reference simulation: a pymunk world built from a :class:`~resd_envs.bouncingsim.scene.Scene`.

Set-up (see ``docs/bouncingsim.md`` for how it differs from the DELTA reference's Box2D world):

* every container is a kinematic body whose walls are zero-thickness ``Segment`` shapes, so the
  walls are two-sided obstacles (a ball meets the walls of every container, as in Box2D's chains);
* every ball is a dynamic body with a regular-polygon ``Poly`` (a ``Circle`` when ``sides <= 2``)
  at orientation 0, mass = density * area; its moment is infinite (no rotation) unless the scene
  says ``rotation_affected`` (then the uniform-density polygon's moment);
* elasticity 1, friction 0 on every shape, no damping, dt = 1/4000 s, 100 solver iterations,
  collision slop 0.01;
* containers with a translation path or a rotation profile are driven each step: the clock first
  advances by dt, then the body's velocity is set to (target pose - current pose) / dt;
  containers that only spin get their constant angular velocity once;
* one forward pass; the time of a snapshot is reached when the float sum of steps first
  reaches ``t`` (the reference's loop ``while current < t: step; current += dt``).

Each call builds a fresh ``Space``: runs are independent and bit-for-bit repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from resd_envs.bouncingsim.scene import Scene, load_scene

#: Ground-truth step (s).
DT = 1.0 / 4000.0
#: Test times (s): 0.1, 0.2, ..., 1.5.
TEST_TIMES: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 16))
ITERATIONS = 100
COLLISION_SLOP = 0.01


def _pymunk() -> Any:
    try:
        import pymunk
    except ImportError:  # pragma: no cover - pymunk is a base dependency
        from resd_envs.errors import MissingDependencyError

        raise MissingDependencyError("BouncingSim's oracle needs pymunk: pip install 'pymunk>=7'") from None
    return pymunk


class _World:
    """A pymunk space plus the bookkeeping needed to drive containers and read balls."""

    def __init__(self, scene: Scene, dt: float) -> None:
        pymunk = _pymunk()
        self.scene = scene
        self.dt = dt
        self.time = 0.0
        space = pymunk.Space()
        space.iterations = ITERATIONS
        space.collision_slop = COLLISION_SLOP
        space.gravity = scene.gravity
        self.space = space
        self.boxes = []
        for box in scene.containers:
            body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
            body.position = box.center
            body.angle = box.rotation
            local = [
                (
                    box.radius * math.cos(2 * math.pi * k / box.sides),
                    box.radius * math.sin(2 * math.pi * k / box.sides),
                )
                for k in range(box.sides)
            ]
            shapes = []
            for k in range(box.sides):
                seg = pymunk.Segment(body, local[k], local[(k + 1) % box.sides], 0.0)
                seg.elasticity = 1.0
                seg.friction = 0.0
                shapes.append(seg)
            driven = box.translation is not None or scene.rotation_profile is not None
            if not driven:
                body.angular_velocity = box.rotation_speed
            space.add(body, *shapes)
            self.boxes.append((box, body, driven))
        self.balls = []
        for ball in scene.balls:
            if ball.is_circle:
                moment = (
                    pymunk.moment_for_circle(ball.mass, 0, ball.radius)
                    if ball.rotation_affected
                    else math.inf
                )
                body = pymunk.Body(ball.mass, moment)
                shape = pymunk.Circle(body, ball.radius)
            else:
                verts = ball.local_vertices()
                moment = pymunk.moment_for_poly(ball.mass, verts) if ball.rotation_affected else math.inf
                body = pymunk.Body(ball.mass, moment)
                shape = pymunk.Poly(body, verts)
            body.position = ball.position
            body.velocity = ball.velocity
            if ball.rotation_affected:
                body.angular_velocity = ball.angular_velocity
            shape.elasticity = 1.0
            shape.friction = 0.0
            space.add(body, shape)
            self.balls.append(body)

    def _target(self, box: Any, t: float) -> tuple[float, float, float]:
        cx, cy = box.center
        if box.translation is not None:
            dx, dy = box.translation.offset(t)
            cx, cy = cx + dx, cy + dy
        profile = self.scene.rotation_profile
        angle = box.rotation + (profile.angle(t) if profile is not None else box.rotation_speed * t)
        return cx, cy, angle

    def step(self) -> None:
        self.time += self.dt
        variation = self.scene.gravity_variation
        if variation is not None:
            gx, gy = self.scene.gravity
            self.space.gravity = (gx, gy + variation.amp * math.sin(2 * math.pi * variation.freq * self.time))
        for box, body, driven in self.boxes:
            if driven:
                cx, cy, angle = self._target(box, self.time)
                px, py = body.position
                body.velocity = ((cx - px) / self.dt, (cy - py) / self.dt)
                body.angular_velocity = (angle - body.angle) / self.dt
        self.space.step(self.dt)

    def positions(self) -> list[tuple[float, float]]:
        return [(b.position.x, b.position.y) for b in self.balls]

    def container_poses(self) -> list[tuple[float, float, float]]:
        return [(body.position.x, body.position.y, body.angle) for _, body, _ in self.boxes]


def _as_scene(scene: Scene | Mapping[str, Any]) -> Scene:
    return scene if isinstance(scene, Scene) else load_scene(scene)


def _checked_times(times: Sequence[float]) -> list[float]:
    out = []
    for t in times:
        value = float(t)
        if not math.isfinite(value) or value < 0 or value > 60:
            raise ValueError(f"simulation time {t!r} must be a finite number of seconds in [0, 60]")
        out.append(value)
    return out


def simulate(
    scene: Scene | Mapping[str, Any],
    times: Sequence[float] = TEST_TIMES,
    *,
    dt: float = DT,
    decimals: int | None = 2,
) -> np.ndarray:
    """Ball centre positions at each of ``times``.

    Args:
        scene: a :class:`Scene` or a scene dict (parsed with :func:`load_scene`).
        times: seconds, any order, each in [0, 60].
        dt: step size (the ground truth uses 1/4000 s).
        decimals: round the result like the reference (2), or None for raw floats.

    Returns:
        float64 array of shape ``(len(times), n_balls, 2)`` holding ``[x, y]``.
    """
    sc = _as_scene(scene)
    ts = _checked_times(times)
    out = np.zeros((len(ts), sc.n_balls, 2), dtype=np.float64)
    world = _World(sc, dt)
    current = 0.0
    for index in sorted(range(len(ts)), key=lambda i: ts[i]):
        while current < ts[index]:
            world.step()
            current += dt
        out[index] = world.positions()
    return np.round(out, decimals) if decimals is not None else out


def trajectory(
    scene: Scene | Mapping[str, Any], duration: float = 1.5, frames: int = 61, *, dt: float = DT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evenly spaced frames for drawing.

    Returns:
        ``(times (F,), ball positions (F, n_balls, 2), container poses (F, n_containers, 3))``
        where a pose is ``(cx, cy, angle_rad)``.
    """
    sc = _as_scene(scene)
    times = np.linspace(0.0, float(duration), int(frames))
    balls = np.zeros((len(times), sc.n_balls, 2))
    boxes = np.zeros((len(times), len(sc.containers), 3))
    world = _World(sc, dt)
    current = 0.0
    for i, t in enumerate(times):
        while current < t:
            world.step()
            current += dt
        balls[i] = world.positions()
        boxes[i] = world.container_poses()
    return times, balls, boxes
