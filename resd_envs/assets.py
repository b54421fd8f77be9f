"""Locates the data directories shipped with the package: ``grammars/`` and ``physics/``.

In a wheel they live at ``resd_envs/_assets/<name>``; in an editable install or a source checkout they
are the top-level folders of the repository. This is the only module that knows either layout.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from resd_envs.errors import AssetNotFoundError

_PACKAGE_DIR = Path(__file__).resolve().parent
_KNOWN = ("grammars", "physics")


@cache
def asset_dir(name: str) -> Path:
    """Return the directory of the shipped asset folder ``name`` ("grammars" or "physics").

    Raises:
        AssetNotFoundError: when neither the installed nor the source-checkout location exists.
    """
    if name not in _KNOWN:
        raise AssetNotFoundError(f"unknown asset folder {name!r}; expected one of {', '.join(_KNOWN)}")
    candidates = (_PACKAGE_DIR / "_assets" / name, _PACKAGE_DIR.parent / name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise AssetNotFoundError(
        f"the {name}/ folder of resd was not found (tried {tried}); reinstall the package "
        "with `pip install resd` or `pip install -e .` from a full checkout"
    )


def asset_path(name: str, *parts: str) -> Path:
    """Return a file inside a shipped asset folder, raising a clear error if it is missing."""
    path = asset_dir(name).joinpath(*parts)
    if not path.exists():
        raise AssetNotFoundError(f"shipped asset {path} is missing; the installation is incomplete")
    return path
