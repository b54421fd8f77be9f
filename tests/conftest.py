"""Shared test setup: locate ../shared (reference material) and point Finer at its sample data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
FINER_DATA = SHARED / "data" / "finer"
FIDELITY = SHARED / "fidelity"

if FINER_DATA.is_dir():
    os.environ.setdefault("RESD_FINER_DATA", str(FINER_DATA))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests when no CUDA device is present (torch is imported only if needed)."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the shared reference folder {SHARED} is missing; it must sit beside the checkout")
    return SHARED
