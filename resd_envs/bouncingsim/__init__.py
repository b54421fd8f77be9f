"""BouncingSim: predict 2-D bouncing regular polygons with a Python program (DELTA's task, pymunk oracle).

Public API: :func:`load_scene`, :func:`simulate`, :func:`generate_scene`, :class:`BouncingSimFamily`,
:class:`BouncingSimEnv` (imported lazily), :func:`solver_source`.
"""

from __future__ import annotations

from typing import Any

from resd_envs.bouncingsim.generator import generate_scene
from resd_envs.bouncingsim.oracle import TEST_TIMES, simulate, trajectory
from resd_envs.bouncingsim.scene import Scene, SceneError, load_scene
from resd_envs.bouncingsim.solver import reference_response, solver_source

__all__ = [
    "TEST_TIMES",
    "BouncingSimEnv",
    "BouncingSimFamily",
    "Scene",
    "SceneError",
    "generate_scene",
    "load_scene",
    "reference_response",
    "simulate",
    "solver_source",
    "trajectory",
]


def __getattr__(name: str) -> Any:
    if name == "BouncingSimFamily":
        from resd_envs.bouncingsim.family import BouncingSimFamily

        return BouncingSimFamily
    if name == "BouncingSimEnv":
        from resd_envs.bouncingsim.env import BouncingSimEnv

        return BouncingSimEnv
    raise AttributeError(f"module 'resd_envs.bouncingsim' has no attribute {name!r}")
