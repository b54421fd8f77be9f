"""BouncingSim scenes: a documented JSON format, frozen dataclasses, validation.

The JSON format is the one of the DELTA reference's scene files (``scene_config`` in the published
dataset rows), so those rows load unchanged. All lengths are world units ("m"), times seconds.

```
{
  "physics": {"gravity_enabled": bool, "gravity_x": float, "gravity_y": float},
  "boxes": [                                   # containers, kinematic regular polygons
    {"center": [x, y], "diameter": D,          # circumradius = D / 2
     "sides": n,                               # >= 3
     "rotation": deg,                          # initial orientation, DEGREES (0: vertex 0 on +x)
     "rotation_speed": w,                      # constant angular velocity, rad/s (number or "2*pi/3")
     "translation_path": {...}                 # optional, see below
     "friction": 0.0, "restitution": 1.0}      # accepted, the oracle always uses 0 / 1
  ],
  "balls": [                                   # dynamic bodies
    {"position": [x, y], "velocity": [vx, vy], # velocity components may be math strings
     "radius": r,                              # circumradius of the polygon (circle if sides <= 2)
     "sides": n, "density": 1.0,               # mass = density * polygon area
     "rotation_affected": bool,                # False: orientation stays 0 forever (default True)
     "angular_velocity": w,                    # rad/s, only used when rotation_affected
     "color": [r, g, b]}                       # drawing only
  ],
  "meta": {                                    # optional; free-form except these keys:
    "outer_rotation_profile": {"omega_base": w0, "omega_amp": a},  # every container: w(t) = w0 + a sin(t)
    "gravity_profile": {"time_variation": {"amp": A, "freq": f}}   # g_y(t) = g_y + A sin(2 pi f t)
  }
}
```

Translation paths (centre ``(cx, cy)`` from ``center``):
``{"type": "sin1d", "axis": "x"|"y", "amplitude": A, "freq": f}``: ``c + A sin(2 pi f t)`` on the axis;
``{"type": "lissajous", "ax": A, "ay": B, "fx": f, "fy": g}``:
``(cx + A sin(2 pi f t), cy + B sin(2 pi g t + pi/2))``;
``{"type": "piecewise", "segments": k, "amplitude": A}``: x follows a triangle wave of period ``1/k`` s.

This module does not import pymunk.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resd_envs.errors import ResdEnvError

__all__ = [
    "Ball",
    "Container",
    "GravityVariation",
    "RotationProfile",
    "Scene",
    "SceneError",
    "TranslationPath",
    "load_scene",
]


class SceneError(ResdEnvError, ValueError):
    """A scene dict that does not follow the documented format; the message names the field."""


#: Size bounds of a scene (the shipped sets use 1 container and 3-5 balls): they keep the oracle's
#: cost per scene to about a second and bound what a malformed row can ask for.
MAX_BALLS = 16
MAX_CONTAINERS = 8
#: Largest magnitude of any number in a scene (positions, velocities, sizes, rates).
MAX_MAGNITUDE = 1e6
#: Longest math-expression string accepted for a number (e.g. ``"2*pi/3"``).
MAX_EXPRESSION_CHARS = 100


@dataclass(frozen=True)
class TranslationPath:
    """Prescribed container translation; see the module docstring for the formulas."""

    kind: str  # "sin1d" | "lissajous" | "piecewise"
    axis: str = "x"
    amplitude: float = 0.0
    freq: float = 1.0
    ax: float = 0.0
    ay: float = 0.0
    fx: float = 1.0
    fy: float = 1.0
    segments: int = 4

    def offset(self, t: float) -> tuple[float, float]:
        """Displacement of the container centre from its stated centre at time ``t``."""
        if self.kind == "sin1d":
            d = self.amplitude * math.sin(2 * math.pi * self.freq * t)
            return (d, 0.0) if self.axis == "x" else (0.0, d)
        if self.kind == "lissajous":
            return (
                self.ax * math.sin(2 * math.pi * self.fx * t),
                self.ay * math.sin(2 * math.pi * self.fy * t + math.pi / 2),
            )
        phase = (t % 1.0) * self.segments
        tri = 2 * abs((phase - int(phase)) - 0.5)
        return (self.amplitude * (1 - tri), 0.0)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "sin1d":
            return {"type": "sin1d", "amplitude": self.amplitude, "axis": self.axis, "freq": self.freq}
        if self.kind == "lissajous":
            return {"type": "lissajous", "ax": self.ax, "ay": self.ay, "fx": self.fx, "fy": self.fy}
        return {"type": "piecewise", "segments": self.segments, "amplitude": self.amplitude}


@dataclass(frozen=True)
class RotationProfile:
    """Time-varying container spin ``w(t) = omega_base + omega_amp * sin(t)`` (t in seconds)."""

    omega_base: float
    omega_amp: float

    def angle(self, t: float) -> float:
        """Angle turned since t = 0: the integral of w."""
        return self.omega_base * t - self.omega_amp * math.cos(t) + self.omega_amp


@dataclass(frozen=True)
class GravityVariation:
    """Oscillating vertical gravity ``g_y(t) = g_y + amp * sin(2 pi freq t)``."""

    amp: float
    freq: float


@dataclass(frozen=True)
class Container:
    """A kinematic regular-polygon container (its walls are two-sided obstacles)."""

    center: tuple[float, float]
    radius: float  # circumradius
    sides: int
    rotation: float  # initial orientation in radians
    rotation_speed: float = 0.0  # rad/s
    translation: TranslationPath | None = None

    @property
    def inradius(self) -> float:
        return self.radius * math.cos(math.pi / self.sides)

    def vertices(
        self, center: tuple[float, float] | None = None, angle: float | None = None
    ) -> list[tuple[float, float]]:
        """World vertices at the given pose (default: the initial pose)."""
        cx, cy = self.center if center is None else center
        a0 = self.rotation if angle is None else angle
        return [
            (
                cx + self.radius * math.cos(a0 + 2 * math.pi * k / self.sides),
                cy + self.radius * math.sin(a0 + 2 * math.pi * k / self.sides),
            )
            for k in range(self.sides)
        ]


@dataclass(frozen=True)
class Ball:
    """A dynamic regular-polygon ball (a circle when ``sides <= 2``)."""

    position: tuple[float, float]
    velocity: tuple[float, float]
    radius: float  # circumradius
    sides: int
    density: float = 1.0
    rotation_affected: bool = True
    angular_velocity: float = 0.0
    color: tuple[int, int, int] = (255, 100, 50)

    @property
    def is_circle(self) -> bool:
        return self.sides <= 2

    @property
    def area(self) -> float:
        if self.is_circle:
            return math.pi * self.radius**2
        return 0.5 * self.sides * self.radius**2 * math.sin(2 * math.pi / self.sides)

    @property
    def mass(self) -> float:
        return self.density * self.area

    def local_vertices(self) -> list[tuple[float, float]]:
        """Polygon vertices relative to the centre at orientation 0 (vertex 0 on +x)."""
        n = self.sides
        return [
            (self.radius * math.cos(2 * math.pi * k / n), self.radius * math.sin(2 * math.pi * k / n))
            for k in range(n)
        ]


@dataclass(frozen=True)
class Scene:
    """A parsed scene. ``source`` keeps the dict it came from (used for hashing and prompts)."""

    containers: tuple[Container, ...]
    balls: tuple[Ball, ...]
    gravity: tuple[float, float] = (0.0, 0.0)
    gravity_variation: GravityVariation | None = None
    rotation_profile: RotationProfile | None = None
    letter: str = ""
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_balls(self) -> int:
        return len(self.balls)


# -- parsing ------------------------------------------------------------------------------------
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_NAMES = {"pi": math.pi, "e": math.e, "tau": math.tau}
_FUNCS = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "exp": math.exp,
    "log": math.log,
    "abs": abs,
}


def _eval_expr(node: ast.AST) -> float:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval_expr(node.left), _eval_expr(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval_expr(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        return float(_FUNCS[node.func.id](*[_eval_expr(a) for a in node.args]))
    raise ValueError(f"unsupported element {ast.dump(node)[:60]}")


def _number(value: Any, where: str, default: float | None = None) -> float:
    """A finite float from a number or a small math expression string such as ``"2*pi/3"``."""
    if value is None:
        if default is None:
            raise SceneError(f"{where} is missing; give a number")
        return float(default)
    if isinstance(value, bool):
        raise SceneError(f"{where} is a boolean ({value}); give a number")
    if isinstance(value, (int, float)):
        try:
            out = float(value)
        except OverflowError:
            raise SceneError(f"{where} is an integer too large for a number") from None
    elif isinstance(value, str):
        if len(value) > MAX_EXPRESSION_CHARS:
            raise SceneError(f"{where} is a {len(value)}-character string; give a number or a short math expression")
        try:
            out = _eval_expr(ast.parse(value, mode="eval").body)
        except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError, MemoryError) as exc:
            raise SceneError(f"{where} = {value!r} is not a number or a math expression ({exc})") from None
    else:
        raise SceneError(f"{where} = {str(value)[:60]!r} ({type(value).__name__}) is not a number")
    if not math.isfinite(out) or abs(out) > MAX_MAGNITUDE:
        raise SceneError(f"{where} = {str(value)[:60]!r} must be finite and at most {MAX_MAGNITUDE:g} in size")
    return out


def _pair(value: Any, where: str, default: tuple[float, float] | None = None) -> tuple[float, float]:
    if value is None and default is not None:
        return default
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SceneError(f"{where} = {value!r} must be a list of two numbers [x, y]")
    return (_number(value[0], f"{where}[0]"), _number(value[1], f"{where}[1]"))


def _sides(value: Any, where: str, minimum: int) -> int:
    n = _number(value, where)
    if n != int(n) or n < minimum or n > 64:
        raise SceneError(f"{where} = {value!r} must be an integer between {minimum} and 64")
    return int(n)


def _path(spec: Any, where: str) -> TranslationPath | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise SceneError(f"{where} must be an object with a 'type' key, got {spec!r}")
    kind = spec.get("type")
    if kind == "sin1d":
        axis = spec.get("axis", "x")
        if axis not in ("x", "y"):
            raise SceneError(f"{where}.axis = {axis!r} must be 'x' or 'y'")
        return TranslationPath(
            "sin1d",
            axis=axis,
            amplitude=_number(spec.get("amplitude"), f"{where}.amplitude", 0.0),
            freq=_number(spec.get("freq"), f"{where}.freq", 1.0),
        )
    if kind == "lissajous":
        return TranslationPath(
            "lissajous",
            ax=_number(spec.get("ax"), f"{where}.ax", 0.0),
            ay=_number(spec.get("ay"), f"{where}.ay", 0.0),
            fx=_number(spec.get("fx"), f"{where}.fx", 1.0),
            fy=_number(spec.get("fy"), f"{where}.fy", 1.0),
        )
    if kind == "piecewise":
        return TranslationPath(
            "piecewise",
            segments=_sides(spec.get("segments", 4), f"{where}.segments", 1),
            amplitude=_number(spec.get("amplitude"), f"{where}.amplitude", 0.0),
        )
    raise SceneError(f"{where}.type = {kind!r} is not supported; use 'sin1d', 'lissajous' or 'piecewise'")


def load_scene(data: Mapping[str, Any]) -> Scene:
    """Parse and validate a scene dict (the reference's ``scene_config`` format).

    Also accepts a dataset row holding the scene under ``"scene"`` or ``"scene_config"``
    (the latter may be a JSON string).

    Raises:
        SceneError: naming the offending field and what it should be.
    """
    if isinstance(data, str):
        import json

        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise SceneError(f"scene text is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise SceneError(f"a scene must be a dict with 'boxes' and 'balls', got {type(data).__name__}")
    for key in ("scene", "scene_config"):
        if "boxes" not in data and key in data:
            inner = data[key]
            if isinstance(inner, Mapping) and "boxes" not in inner and ("scene" in inner or "scene_config" in inner):
                raise SceneError(f"{key} holds another wrapped scene; give the scene dict itself")
            return load_scene(inner)
    if not isinstance(data.get("boxes"), list) or not data["boxes"]:
        raise SceneError("scene['boxes'] must be a non-empty list of containers")
    if not isinstance(data.get("balls"), list) or not data["balls"]:
        raise SceneError("scene['balls'] must be a non-empty list of balls")
    if len(data["boxes"]) > MAX_CONTAINERS or len(data["balls"]) > MAX_BALLS:
        raise SceneError(
            f"scene has {len(data['boxes'])} containers and {len(data['balls'])} balls; at most "
            f"{MAX_CONTAINERS} containers and {MAX_BALLS} balls are supported"
        )
    physics = data.get("physics") or {}
    meta = data.get("meta") or {}
    if not isinstance(physics, Mapping) or not isinstance(meta, Mapping):
        raise SceneError("scene['physics'] and scene['meta'] must be objects when given")
    containers = []
    for i, box in enumerate(data["boxes"]):
        w = f"boxes[{i}]"
        if not isinstance(box, Mapping):
            raise SceneError(f"{w} must be an object, got {box!r}")
        diameter = _number(box.get("diameter"), f"{w}.diameter")
        if diameter <= 0:
            raise SceneError(f"{w}.diameter = {diameter} must be positive")
        containers.append(
            Container(
                center=_pair(box.get("center"), f"{w}.center"),
                radius=diameter / 2.0,
                sides=_sides(box.get("sides"), f"{w}.sides", 3),
                rotation=math.radians(_number(box.get("rotation"), f"{w}.rotation", 0.0)),
                rotation_speed=_number(box.get("rotation_speed"), f"{w}.rotation_speed", 0.0),
                translation=_path(box.get("translation_path"), f"{w}.translation_path"),
            )
        )
    balls = []
    for i, b in enumerate(data["balls"]):
        w = f"balls[{i}]"
        if not isinstance(b, Mapping):
            raise SceneError(f"{w} must be an object, got {b!r}")
        radius = _number(b.get("radius"), f"{w}.radius", 20.0)
        density = _number(b.get("density"), f"{w}.density", 1.0)
        if radius <= 0 or density <= 0:
            raise SceneError(f"{w}: radius ({radius}) and density ({density}) must be positive")
        sides_value = _number(b.get("sides"), f"{w}.sides", 0)
        if sides_value != int(sides_value) or not 0 <= sides_value <= 64:
            raise SceneError(f"{w}.sides = {b.get('sides')!r} must be an integer 0-2 (circle) or 3-64 (polygon)")
        sides = int(sides_value)
        color = b.get("color") or (255, 100, 50)
        if isinstance(color, (list, tuple)) and not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 255 for c in list(color)[:3]
        ):
            raise SceneError(f"{w}.color = {str(color)[:60]} must be [r, g, b] with values 0-255")
        balls.append(
            Ball(
                position=_pair(b.get("position"), f"{w}.position"),
                velocity=_pair(b.get("velocity"), f"{w}.velocity", (0.0, 0.0)),
                radius=radius,
                sides=sides,
                density=density,
                rotation_affected=bool(b.get("rotation_affected", True)),
                angular_velocity=_number(b.get("angular_velocity"), f"{w}.angular_velocity", 0.0),
                color=tuple(int(c) for c in list(color)[:3])
                if isinstance(color, (list, tuple))
                else (255, 100, 50),
            )
        )
    gx = _number(physics.get("gravity_x"), "physics.gravity_x", 0.0)
    gy = _number(physics.get("gravity_y"), "physics.gravity_y", 0.0)
    enabled = bool(physics.get("gravity_enabled", gx != 0.0 or gy != 0.0))
    variation = None
    gp = meta.get("gravity_profile")
    if isinstance(gp, Mapping) and isinstance(gp.get("time_variation"), Mapping):
        tv = gp["time_variation"]
        variation = GravityVariation(
            _number(tv.get("amp"), "meta.gravity_profile.time_variation.amp", 0.0),
            _number(tv.get("freq"), "meta.gravity_profile.time_variation.freq", 1.0),
        )
    profile = None
    rp = meta.get("outer_rotation_profile")
    if isinstance(rp, Mapping):
        profile = RotationProfile(
            _number(rp.get("omega_base"), "meta.outer_rotation_profile.omega_base", 0.0),
            _number(rp.get("omega_amp"), "meta.outer_rotation_profile.omega_amp", 0.0),
        )
    letter = str(meta.get("scene_type", "")) if isinstance(meta.get("scene_type", ""), str) else ""
    return Scene(
        tuple(containers), tuple(balls), (gx, gy) if enabled else (0.0, 0.0), variation, profile, letter, data
    )
