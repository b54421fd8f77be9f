"""The task prompt: scene facts, the physics conventions the score depends on, the answer format.

Written for resd (not the reference's wording). Unlike the reference prompt it states the ball
orientation, that balls never spin unless told, the masses (density 1, so mass = area), that
every radius is a circumradius, and that all container walls are two-sided obstacles. The test
times are not revealed.
"""

from __future__ import annotations

from resd_envs.bouncingsim.scene import Ball, Container, Scene

TOLERANCE = 50.0


def _num(x: float, digits: int = 2) -> str:
    text = f"{x:.{digits}f}"
    return "0" if float(text) == 0 else text.rstrip("0").rstrip(".")


def _container_line(i: int, box: Container, scene: Scene) -> str:
    cx, cy = _num(box.center[0]), _num(box.center[1])
    parts = [
        f"- Container {i + 1}: regular polygon with {box.sides} sides, circumradius {_num(box.radius)}, "
        f"centre ({cx}, {cy}), initial orientation {_num(box.rotation, 3)} rad."
    ]
    prof = scene.rotation_profile
    if prof is not None:
        w0, amp = _num(prof.omega_base, 3), _num(prof.omega_amp, 3)
        parts.append(
            f"  Rotation: angular velocity w(t) = {w0} + {amp}*sin(t) rad/s (t in seconds), "
            f"so its orientation is a0 + {w0}*t - {amp}*cos(t) + {amp}."
        )
    elif box.rotation_speed:
        parts.append(
            f"  Rotation: constant angular velocity {_num(box.rotation_speed, 3)} rad/s about its centre "
            "(positive = counter-clockwise)."
        )
    else:
        parts.append("  It does not rotate.")
    p = box.translation
    if p is None:
        parts.append("  It does not translate.")
    elif p.kind == "sin1d":
        wave = f"{_num(p.amplitude)}*sin(2*pi*{_num(p.freq, 3)}*t)"
        parts.append(f"  Translation: its centre moves along {p.axis}: {p.axis}_c(t) = {p.axis}_c0 + {wave}.")
    elif p.kind == "lissajous":
        wx = f"{_num(p.ax)}*sin(2*pi*{_num(p.fx, 3)}*t)"
        wy = f"{_num(p.ay)}*sin(2*pi*{_num(p.fy, 3)}*t + pi/2)"
        parts.append(
            f"  Translation: centre(t) = (cx + {wx}, cy + {wy}) where (cx, cy) is the centre above; "
            "note that at t = 0 the centre is already shifted up by the y amplitude."
        )
    else:
        parts.append(
            f"  Translation: its centre's x moves by {_num(p.amplitude)}*(1 - |2*frac({p.segments}*t) - 1|) "
            "(a triangle wave)."
        )
    return "\n".join(parts)


def _ball_line(i: int, ball: Ball) -> str:
    shape = "circle" if ball.is_circle else f"regular polygon with {ball.sides} sides"
    if ball.rotation_affected:
        spin = (
            f"it spins freely (initial angular velocity {_num(ball.angular_velocity, 3)} rad/s; "
            "uniform density, "
            "so its moment of inertia is the solid polygon's)"
        )
    else:
        spin = "it never rotates: its orientation stays 0 for all time"
    return (
        f"- Ball {i + 1}: {shape}, circumradius {_num(ball.radius)}, mass {_num(ball.mass)}, "
        f"initial centre ({_num(ball.position[0])}, {_num(ball.position[1])}), "
        f"initial velocity ({_num(ball.velocity[0])}, {_num(ball.velocity[1])}); {spin}."
    )


def build_prompt(scene: Scene) -> str:
    """The user message for ``scene`` (deterministic text)."""
    gx, gy = scene.gravity
    if scene.gravity_variation is not None:
        v = scene.gravity_variation
        gravity = (
            f"Gravity: g(t) = ({_num(gx)}, {_num(gy)} + {_num(v.amp)}*sin(2*pi*{_num(v.freq, 3)}*t)) "
            "units/s^2, acting on every ball."
        )
    elif gx or gy:
        gravity = f"Gravity: constant ({_num(gx)}, {_num(gy)}) units/s^2, acting on every ball."
    else:
        gravity = "Gravity: none (zero)."
    n = scene.n_balls
    example = ", ".join(f"[x{i + 1}, y{i + 1}]" for i in range(min(n, 3))) + (", ..." if n > 3 else "")
    walls = (
        "Every wall of every container is a two-sided obstacle: a ball bounces off a wall of another "
        "container too, from either side."
        if len(scene.containers) > 1
        else "The container walls keep the balls inside."
    )
    lines = [
        "Write a Python function that predicts where bouncing polygons are at a given time.",
        "",
        "## Scene",
        (
            "Coordinates: x to the right, y up; lengths in units, time in seconds, "
            "angles in radians (counter-clockwise positive)."
        ),
        "",
        "Containers (kinematic: they follow the prescribed motion below and are never pushed):",
        *[_container_line(i, box, scene) for i, box in enumerate(scene.containers)],
        "",
        f"Balls ({n}):",
        *[_ball_line(i, ball) for i, ball in enumerate(scene.balls)],
        "",
        gravity,
        "",
        "## Physics",
        (
            "- Regular polygons: with circumradius R, orientation a and centre c, vertex k (k = 0 .. n-1) "
            "is at c + R*(cos(a + 2*pi*k/n), sin(a + 2*pi*k/n)). Orientation 0 puts vertex 0 on the +x "
            "side of the centre. Every radius given here is a circumradius."
        ),
        (
            "- Each ball keeps its own shape: collisions happen where the polygon outlines touch, "
            "not at a circle."
        ),
        (
            "- Masses: every ball has density 1, so its mass is its area (n/2 * R^2 * sin(2*pi/n)) "
            "as listed above."
        ),
        (
            "- All contacts are perfectly elastic (restitution 1) and frictionless. Wall velocity at the "
            "contact point counts when a container moves or rotates."
        ),
        "- Balls collide with each other and with the container walls. " + walls,
        (
            "- The reference answer is a rigid-body simulation with very small time steps; your prediction "
            "is compared with it."
        ),
        "",
        "## Your answer",
        (
            "Reason step by step if you like, then give your program in one ```python fenced code block "
            "(the last ```python block of your answer is the one that is run)."
        ),
        "The program must define `predict_position(t)`:",
        "- `t` is a time in seconds (a float between 0 and a few seconds);",
        (
            f"- it returns a list of {n} pairs, one per ball in the order listed above: [{example}], "
            "the centre of each ball at time t;"
        ),
        (
            "- each call must compute its answer from the scene data and `t` alone "
            "(the calls come in any order);"
        ),
        "- use plain Python and the `math` module; no other imports, files, printing or randomness.",
        (
            "A time passes when the mean over balls of the distance between your centre and the true "
            f"centre is at most {_num(TOLERANCE)} units. Your function is called for several hidden times; "
            "each call must finish within about a second."
        ),
    ]
    return "\n".join(lines)
