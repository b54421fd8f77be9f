"""Session fixtures for the learner tests: a tiny offline model, one vLLM engine, CPU-safe env vars.

Environment set here (before torch/vLLM/DeepSpeed are imported by any test):
- ``VLLM_ENABLE_V1_MULTIPROCESSING=0``: vLLM runs in the test process (no spawn);
- ``HF_HUB_OFFLINE=1``: nothing is downloaded;
- ``TOKENIZERS_PARALLELISM=false``: no fork warnings from the tokenizers pool.
DeepSpeed's world-size-1 rendezvous and its shared-memory-op patch are applied by
``resd_learner.distributed`` itself; every test that builds an engine shares one gloo group.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="session")
def resd_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private model cache for the session (``$RESD_CACHE``), so tests never touch ~/.cache/resd."""
    path = tmp_path_factory.mktemp("resd_cache")
    os.environ["RESD_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(resd_cache: Path) -> Path:
    """The offline tiny Qwen3 + BPE tokenizer, at the path ``model.path: tiny`` resolves to."""
    from resd_learner.models import resolve_model_path

    return resolve_model_path("tiny", resd_cache)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from resd_learner.models import load_tokenizer

    return load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="session")
def vllm_llm(tiny_model_dir: Path):
    """One in-process vLLM engine on the tiny model for the whole session (about 15-60 s to start)."""
    if not HAS_VLLM:
        pytest.skip("vllm / vllm-cpu is not installed")
    from resd_learner.rollout.vllm_backend import STRUCTURED_OUTPUTS_CONFIG, prepare_vllm_env, scheduler_options

    prepare_vllm_env(1)
    from vllm import LLM

    llm = LLM(model=str(tiny_model_dir), dtype="float32", max_model_len=4096, enforce_eager=True, seed=0,
              structured_outputs_config=STRUCTURED_OUTPUTS_CONFIG, **scheduler_options(on_gpu=False, max_model_len=4096))
    yield llm


@pytest.fixture(scope="session")
def smoke_config_path() -> Path:
    return Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
