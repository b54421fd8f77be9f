"""Test setup: the vendored data under ``tests/data`` (see its README) and Finer pointed at its sample files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT / "tests" / "data"
FINER_DATA = DATA / "finer"
FIDELITY = DATA / "fidelity"

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
def data_dir() -> Path:
    """``tests/data``: golden cases of the reference implementations and the FiNER sample files."""
    if not DATA.is_dir():
        pytest.fail(f"the test data folder {DATA} is missing; it ships with the repository")
    return DATA
