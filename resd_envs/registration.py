"""The one table of resd environment ids, and their registration with gymnasium.

Entry points are module-path strings, so ``import resd_envs`` stays light: a family module is
imported only when its env is made or its tasks are loaded.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from resd_envs.errors import UnknownEnvError


@dataclass(frozen=True)
class EnvEntry:
    """One registered environment: its id, env class path, family class path and default kwargs."""

    env_id: str
    env_entry_point: str
    family_entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


ENVS: tuple[EnvEntry, ...] = (
    # --- DSL programs on a tape machine -------------------------------------------------------
    EnvEntry(
        "resd/Manufactoria-Has-v0",
        "resd_envs.manufactoria.env:ManufactoriaHasEnv",
        "resd_envs.manufactoria.family:ManufactoriaHasFamily",
        summary="Manufactoria DSL programs for the 874 DELTA 'has' problems (742 train / 132 test).",
    ),
    # --- model-written Python predicting 2-D bouncing balls (sandboxed) ------------------------
    EnvEntry(
        "resd/BouncingSim-Easy-v0",
        "resd_envs.bouncingsim.env:BouncingSimEnv",
        "resd_envs.bouncingsim.family:BouncingSimFamily",
        kwargs={"level": "easy"},
        summary="Predict 3 bouncing polygons in a polygon container (640 train / 100 test).",
    ),
    EnvEntry(
        "resd/BouncingSim-Medium-v0",
        "resd_envs.bouncingsim.env:BouncingSimEnv",
        "resd_envs.bouncingsim.family:BouncingSimFamily",
        kwargs={"level": "medium"},
        summary="Predict 4-5 bouncing polygons in a polygon container (320 train / 100 test).",
    ),
    # --- XBRL tagging of SEC sentences ----------------------------------------------------------
    EnvEntry(
        "resd/Finer-v0",
        "resd_envs.finer.env:FinerEnv",
        "resd_envs.finer.family:FinerFamily",
        summary="FiNER-139 XBRL tagging, 4 questions per sample, ACE scoring (user-provided data).",
    ),
    # --- small-model variant of Finer (not the benchmark; shipped data) ------------------------
    EnvEntry(
        "resd/FinerMini-v0",
        "resd_envs.finer_mini.env:FinerMiniEnv",
        "resd_envs.finer_mini.family:FinerMiniFamily",
        summary="Small-model Finer variant, not the benchmark: 1 question, 4 candidate tags (1671 train / 1920 test).",
    ),
)

_BY_ID = {entry.env_id: entry for entry in ENVS}
_MODULE_PREFIX = "resd_envs:"


def normalize_env_id(env_id: str) -> str:
    """Strip an optional ``resd_envs:`` module prefix and check the id is one of ours."""
    bare = env_id[len(_MODULE_PREFIX):] if env_id.startswith(_MODULE_PREFIX) else env_id
    if bare not in _BY_ID:
        close = difflib.get_close_matches(bare, list(_BY_ID), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownEnvError(
            f"{env_id!r} is not a resd environment.{hint} Known ids: {', '.join(_BY_ID)}"
        )
    return bare


def env_entry(env_id: str) -> EnvEntry:
    """The registry entry of ``env_id`` (module prefix allowed)."""
    return _BY_ID[normalize_env_id(env_id)]


def load_object(path: str) -> Any:
    """Import ``"package.module:Name"`` and return ``Name``."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def register_envs() -> None:
    """Register every id with gymnasium; calling it again does nothing (no override warnings)."""
    registry = gymnasium.envs.registration.registry
    for entry in ENVS:
        if entry.env_id in registry:
            continue
        gymnasium.register(
            id=entry.env_id,
            entry_point=entry.env_entry_point,
            kwargs=dict(entry.kwargs),
            disable_env_checker=False,
        )
