"""Pictures of a BouncingSim task: the container, the balls, the reference trajectory and, when
given, a submission's predictions. Needs pillow (``pip install 'resd[render]'``), imported lazily.

World y points up; images have y down, so rows are flipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from resd_envs.bouncingsim.oracle import trajectory
from resd_envs.bouncingsim.scene import Scene, load_scene

SIZE = 480
FRAMES = 61
_BG, _WALL, _TRAIL, _PRED = (250, 250, 247), (40, 40, 40), (200, 200, 200), (220, 30, 30)


def _pil() -> Any:
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        from resd_envs.errors import MissingDependencyError

        raise MissingDependencyError(
            "BouncingSim pictures need pillow: pip install 'resd[render]' (or pillow)"
        ) from None
    return Image, ImageDraw


class _View:
    """World -> pixel mapping that fits every container with a margin."""

    def __init__(self, scene: Scene, poses: np.ndarray, size: int) -> None:
        xs, ys = [], []
        for k, box in enumerate(scene.containers):
            xs += [poses[:, k, 0].min() - box.radius, poses[:, k, 0].max() + box.radius]
            ys += [poses[:, k, 1].min() - box.radius, poses[:, k, 1].max() + box.radius]
        self.x0, self.y1 = min(xs), max(ys)
        span = max(max(xs) - self.x0, self.y1 - min(ys)) * 1.08
        self.scale = size / span
        self.pad = (span - (max(xs) - self.x0)) / 2, (span - (self.y1 - min(ys))) / 2
        self.size = size

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        return ((x - self.x0 + self.pad[0]) * self.scale, (self.y1 - y + self.pad[1]) * self.scale)


def _polygon(center: Sequence[float], radius: float, sides: int, angle: float) -> list[tuple[float, float]]:
    n = max(sides, 24) if sides <= 2 else sides
    return [
        (
            center[0] + radius * math.cos(angle + 2 * math.pi * k / n),
            center[1] + radius * math.sin(angle + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def _draw(
    scene: Scene,
    view: _View,
    balls_now: np.ndarray,
    poses_now: np.ndarray,
    trail: np.ndarray,
    expected: Sequence[Any],
    preds: Sequence[Any] | None,
    shown: int,
) -> Any:
    Image, ImageDraw = _pil()
    img = Image.new("RGB", (view.size, view.size), _BG)
    d = ImageDraw.Draw(img)
    for b in range(trail.shape[1]):
        if len(trail) > 1:
            d.line([view(*p) for p in trail[:, b]], fill=_TRAIL, width=1)
    for box, pose in zip(scene.containers, poses_now):
        pts = [view(*p) for p in _polygon(pose[:2], box.radius, box.sides, pose[2])]
        d.line(pts + [pts[0]], fill=_WALL, width=2)
    for ball, pos in zip(scene.balls, balls_now):
        pts = [view(*p) for p in _polygon(pos, ball.radius, ball.sides, 0.0)]
        d.polygon(pts, fill=tuple(ball.color), outline=(0, 0, 0))
    for k in range(min(shown, len(expected))):
        for p in expected[k]:
            x, y = view(*p)
            d.ellipse([x - 2, y - 2, x + 2, y + 2], outline=(60, 60, 200))
        if preds is not None and k < len(preds) and preds[k] is not None:
            for p in preds[k]:
                x, y = view(*p)
                if -50 < x < view.size + 50 and -50 < y < view.size + 50:
                    d.line([x - 4, y - 4, x + 4, y + 4], fill=_PRED, width=2)
                    d.line([x - 4, y + 4, x + 4, y - 4], fill=_PRED, width=2)
    return img


def _frames(task: Mapping[str, Any], preds: Sequence[Any] | None, size: int) -> tuple[list[Any], Any]:
    scene = load_scene(task["scene"])
    horizon = max(float(t) for t in task["timestamps"])
    times, balls, poses = trajectory(scene, horizon, FRAMES)
    view = _View(scene, poses, size)
    tests = [float(t) for t in task["timestamps"]]
    expected = task["expected_positions"]
    frames = []
    for i, t in enumerate(times):
        shown = sum(1 for s in tests if s <= t + 1e-9)
        frames.append(_draw(scene, view, balls[i], poses[i], balls[: i + 1], expected, preds, shown))
    still = _draw(scene, view, balls[0], poses[0], balls, expected, preds, len(tests))
    return frames, still


def render_frame(task: Mapping[str, Any], preds: Sequence[Any] | None = None, size: int = SIZE) -> np.ndarray:
    """RGB array ``(size, size, 3)`` uint8: the scene at t = 0, the reference paths (grey), the
    expected positions at the test times (blue rings) and the predictions (red crosses)."""
    scene = load_scene(task["scene"])
    horizon = max(float(t) for t in task["timestamps"])
    _, balls, poses = trajectory(scene, horizon, FRAMES)
    view = _View(scene, poses, size)
    img = _draw(
        scene, view, balls[0], poses[0], balls, task["expected_positions"], preds, len(task["timestamps"])
    )
    return np.asarray(img, dtype=np.uint8).copy()


def write_files(
    task: Mapping[str, Any],
    preds: Sequence[Any] | None,
    *,
    png: str | Path,
    gif: str | Path | None = None,
    size: int = SIZE,
) -> list[str]:
    """Write the still PNG and, if ``gif`` is given, an animation (25 ms of physics per frame)."""
    frames, still = _frames(task, preds, size)
    written = []
    png_path = Path(png)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    still.save(png_path, format="PNG")
    written.append(str(png_path))
    if gif is not None:
        gif_path = Path(gif)
        gif_path.parent.mkdir(parents=True, exist_ok=True)
        frames[0].save(gif_path, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        written.append(str(gif_path))
    return written
