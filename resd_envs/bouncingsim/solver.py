"""The gold solver: model-style Python (``math`` only) that predicts a scene's balls.

:func:`solver_source` returns the text of a ``predict_position(t)`` program with the scene's
numbers written in; :func:`reference_response` wraps it as a model response. The program is a
small-step simulation (step 1/4000 s, like the oracle) of fixed-orientation regular polygons:
walls of the first container as moving half-planes (wall velocity at the contact point is used),
ball-ball contacts by the separating-axis test on both polygons' face normals, elastic impulses
with masses proportional to area. Stretches where no contact can happen (every gap larger than
the distance the fastest approach could close) are jumped over in one go, which keeps it fast.

Scope: one container (families A-D, G); balls that spin (family A) are treated as non-spinning,
extra containers (family F) are ignored, so those families are not solved reliably.

Variants (known-wrong programs, for tests): ``"circles"`` (balls as circles of the circumradius),
``"equal_mass"`` (every ball has mass 1), ``"no_collisions"`` (balls pass through walls and
each other).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from resd_envs.bouncingsim.scene import Scene, load_scene

VARIANTS: tuple[str, ...] = ("exact", "circles", "equal_mass", "no_collisions")

_PROGRAM = """import math

SCENE = __SCENE__


def predict_position(t):
    h = 1.0 / 4000.0
    box = SCENE["box"]
    gx, gy = SCENE["gravity"]
    cx0, cy0 = box["center"]
    R, N = box["radius"], box["sides"]
    inr = R * math.cos(math.pi / N)
    path = box["path"]
    prof = box["profile"]

    def pose(s):
        # container centre, angle, velocity and angular velocity at time s
        cx, cy, vx, vy = cx0, cy0, 0.0, 0.0
        if path:
            if path[0] == "sin1d":
                w = 2 * math.pi * path[3]
                d, dv = path[2] * math.sin(w * s), path[2] * w * math.cos(w * s)
                if path[1] == "x":
                    cx, vx = cx + d, dv
                else:
                    cy, vy = cy + d, dv
            elif path[0] == "lissajous":
                wx, wy = 2 * math.pi * path[3], 2 * math.pi * path[4]
                cx += path[1] * math.sin(wx * s)
                cy += path[2] * math.sin(wy * s + math.pi / 2)
                vx = path[1] * wx * math.cos(wx * s)
                vy = path[2] * wy * math.cos(wy * s + math.pi / 2)
            else:
                k, amp = path[1], path[2]
                ph = (s % 1.0) * k
                f = ph - int(ph)
                cx += amp * (1 - 2 * abs(f - 0.5))
                vx = (2 * amp * k) if f < 0.5 else (-2 * amp * k)
        if prof:
            ang = box["angle"] + prof[0] * s - prof[1] * math.cos(s) + prof[1]
            om = prof[0] + prof[1] * math.sin(s)
        else:
            ang = box["angle"] + box["omega"] * s
            om = box["omega"]
        return cx, cy, ang, vx, vy, om

    balls = []
    for b in SCENE["balls"]:
        n, r = b["sides"], b["radius"]
        verts = [(r * math.cos(2 * math.pi * j / n), r * math.sin(2 * math.pi * j / n)) for j in range(n)]
        norms = [(math.cos(math.pi * (2 * j + 1) / n), math.sin(math.pi * (2 * j + 1) / n)) for j in range(n)]
        # state: x, y, vx, vy, circumradius, vertices, face normals, inverse mass
        balls.append([b["x"], b["y"], b["vx"], b["vy"], r, verts, norms, 1.0 / b["mass"]])
    nb = len(balls)
    angles = [box["angle"] + math.pi * (2 * i + 1) / N for i in range(N)]
    wall_normals = [(math.cos(th), math.sin(th)) for th in angles]
    for a in balls:
        # support of each ball along each (fixed) wall normal
        a.append([max(nx * ux + ny * uy for ux, uy in a[5]) for nx, ny in wall_normals])
    wall_speed = SCENE["wall_speed"]
    g = math.hypot(gx, gy)

    def support(verts, nx, ny):
        best = -1e18
        for ux, uy in verts:
            p = nx * ux + ny * uy
            if p > best:
                best = p
                bx, by = ux, uy
        return best, bx, by

    def axis_gaps(a, b):
        # every face normal of both polygons, turned to point from a to b, with the gap between
        # the two projections on it (> 0: the axis separates them)
        for P, Q, sg in ((a, b, 1.0), (b, a, -1.0)):
            for nx, ny in P[6]:
                hi = max(nx * ux + ny * uy for ux, uy in P[5]) + nx * P[0] + ny * P[1]
                lo = min(nx * ux + ny * uy for ux, uy in Q[5]) + nx * Q[0] + ny * Q[1]
                yield lo - hi, sg * nx, sg * ny

    def sat(a, b):
        # deepest-overlap axis (normal from a to b), or None when separated
        best = None
        for gap, nx, ny in axis_gaps(a, b):
            if gap > 0:
                return None
            if best is None or gap > best[0]:
                best = (gap, nx, ny)
        return -best[0], best[1], best[2]

    def free_time(s):
        # a time span in which no contact can start (lower bound)
        cx, cy, ang, _, _, _ = pose(s)
        span = 1e9
        if SCENE["walls"]:
            fixed = not prof and box["omega"] == 0.0
            for a in balls:
                if fixed:
                    # each wall line: gap (minus the circumradius) over the approach speed
                    for (nx, ny), sup in zip(wall_normals, a[8]):
                        gap = inr - nx * (a[0] - cx) - ny * (a[1] - cy) - sup
                        if gap <= 0:
                            return 0.0  # touching or close: step normally
                        closing = nx * a[2] + ny * a[3] + wall_speed + g * 0.05
                        if closing > 0:
                            span = min(span, gap / closing)
                else:
                    gap = inr - math.hypot(a[0] - cx, a[1] - cy) - a[4]
                    if gap <= 0:
                        return 0.0
                    span = min(span, gap / (math.hypot(a[2], a[3]) + wall_speed + g * 0.05))
        if SCENE["contacts"]:
            for i in range(nb):
                a = balls[i]
                for j in range(i + 1, nb):
                    b = balls[j]
                    # relative motion is a straight line (same gravity): first time the
                    # circumcircles touch
                    dx, dy = b[0] - a[0], b[1] - a[1]
                    wx, wy = b[2] - a[2], b[3] - a[3]
                    reach = a[4] + b[4]
                    c = dx * dx + dy * dy - reach * reach
                    if c <= 0:
                        # circumcircles overlap: use the separating axes of the polygons; an
                        # axis with gap g closing at speed u keeps them apart for g / u
                        best = 0.0
                        for sep, nx, ny in axis_gaps(a, b):
                            if sep > 0:
                                u = -(nx * wx + ny * wy)
                                best = max(best, 1e9 if u <= 0 else sep / u)
                        if best <= 0:
                            return 0.0  # overlapping: step normally
                        span = min(span, best)
                        continue
                    bq = dx * wx + dy * wy
                    if bq >= 0:
                        continue  # moving apart: no contact while flying freely
                    aq = wx * wx + wy * wy
                    disc = bq * bq - aq * c
                    if disc > 0:
                        span = min(span, c / (-bq + math.sqrt(disc)))
        return min(span, 0.05)

    total = int(round(t / h))
    rest = t - total * h
    k = 0
    s = 0.0
    while k < total or rest > 1e-12:
        if k < total:
            free = free_time(s)
            jump = int(free / h) - 1
            if jump >= 2:
                jump = min(jump, total - k)
                dt = jump * h
                k += jump
            else:
                dt = h
                k += 1
        else:
            dt, rest = rest, 0.0
        for a in balls:
            a[0] += a[2] * dt + 0.5 * gx * dt * dt
            a[1] += a[3] * dt + 0.5 * gy * dt * dt
            a[2] += gx * dt
            a[3] += gy * dt
        s += dt
        if dt > h:
            continue
        if SCENE["walls"]:
            cx, cy, ang, wvx, wvy, om = pose(s)
            for i in range(N):
                th = ang + 2 * math.pi * (i + 0.5) / N
                nx, ny = math.cos(th), math.sin(th)
                for a in balls:
                    sup, ux, uy = support(a[5], nx, ny)
                    pen = nx * (a[0] - cx) + ny * (a[1] - cy) + sup - inr
                    if pen > 0:
                        qx, qy = a[0] + ux - cx, a[1] + uy - cy
                        rel = (a[2] - (wvx - om * qy)) * nx + (a[3] - (wvy + om * qx)) * ny
                        if rel > 0:
                            a[2] -= 2 * rel * nx
                            a[3] -= 2 * rel * ny
                        a[0] -= 2 * pen * nx
                        a[1] -= 2 * pen * ny
        if SCENE["contacts"]:
            for i in range(nb):
                a = balls[i]
                for j in range(i + 1, nb):
                    b = balls[j]
                    if (b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2 > (a[4] + b[4]) ** 2:
                        continue
                    hit = sat(a, b)
                    if hit is None:
                        continue
                    depth, nx, ny = hit
                    ia, ib = a[7], b[7]
                    rel = (b[2] - a[2]) * nx + (b[3] - a[3]) * ny
                    if rel < 0:
                        imp = -2.0 * rel / (ia + ib)
                        a[2] -= imp * ia * nx
                        a[3] -= imp * ia * ny
                        b[2] += imp * ib * nx
                        b[3] += imp * ib * ny
                    push = depth / (ia + ib)
                    a[0] -= push * ia * nx
                    a[1] -= push * ia * ny
                    b[0] += push * ib * nx
                    b[1] += push * ib * ny
    return [[round(a[0], 2) + 0.0, round(a[1], 2) + 0.0] for a in balls]
"""


def _path(box: Any) -> list[Any] | None:
    p = box.translation
    if p is None:
        return None
    if p.kind == "sin1d":
        return ["sin1d", p.axis, p.amplitude, p.freq]
    if p.kind == "lissajous":
        return ["lissajous", p.ax, p.ay, p.fx, p.fy]
    return ["piecewise", p.segments, p.amplitude]


def _wall_speed(sc: Scene) -> float:
    box = sc.containers[0]
    speed = 0.0
    p = box.translation
    if p is not None:
        if p.kind == "sin1d":
            speed += abs(2 * math.pi * p.freq * p.amplitude)
        elif p.kind == "lissajous":
            speed += math.hypot(2 * math.pi * p.fx * p.ax, 2 * math.pi * p.fy * p.ay)
        else:
            speed += abs(2 * p.amplitude * p.segments)
    prof = sc.rotation_profile
    omega = abs(prof.omega_base) + abs(prof.omega_amp) if prof is not None else abs(box.rotation_speed)
    return speed + omega * box.radius


def solver_source(scene: Scene | Mapping[str, Any], *, variant: str = "exact") -> str:
    """Python source of a ``predict_position(t)`` program for ``scene`` (see the module docstring)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown solver variant {variant!r}; use one of {', '.join(VARIANTS)}")
    sc = scene if isinstance(scene, Scene) else load_scene(scene)
    box = sc.containers[0]
    balls = []
    for b in sc.balls:
        sides = 32 if (variant == "circles" or b.is_circle) else b.sides
        balls.append(
            {
                "x": b.position[0],
                "y": b.position[1],
                "vx": b.velocity[0],
                "vy": b.velocity[1],
                "radius": b.radius,
                "sides": sides,
                "mass": 1.0 if variant == "equal_mass" else round(b.mass, 6),
            }
        )
    prof = sc.rotation_profile
    data = {
        "box": {
            "center": list(box.center),
            "radius": box.radius,
            "sides": box.sides,
            "angle": round(box.rotation, 12),
            "omega": box.rotation_speed,
            "path": _path(box),
            "profile": [prof.omega_base, prof.omega_amp] if prof is not None else None,
        },
        "balls": balls,
        "gravity": list(sc.gravity),
        "wall_speed": round(_wall_speed(sc), 6),
        "walls": variant != "no_collisions",
        "contacts": variant != "no_collisions",
    }
    return _PROGRAM.replace("__SCENE__", repr(data))


def reference_response(scene: Scene | Mapping[str, Any], *, variant: str = "exact") -> str:
    """A model-style response: one sentence, then the program in a fenced python block."""
    return (
        "I simulate the polygons with small time steps, reflecting velocities off the walls and "
        "exchanging momentum along the contact normal between balls.\n\n```python\n"
        + solver_source(scene, variant=variant)
        + "```\n"
    )
