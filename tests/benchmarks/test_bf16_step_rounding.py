"""benchmarks/bf16_step_rounding.py: what a step of fp32 master weights leaves in their bf16 copy."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file


@pytest.fixture(scope="module")
def rounding(load_benchmark):
    return load_benchmark("bf16_step_rounding")


def test_a_step_below_half_a_bf16_unit_is_rounded_away_and_a_large_one_survives(rounding):
    weights = {"layers.0.input_layernorm.weight": torch.ones(64),  # bf16 unit at 1.0: 2**-7
               "layers.0.mlp.down_proj.weight": torch.full((8, 8), 1.0 / 64)}  # unit there: 2**-13
    small = rounding.step_rounding(weights, lr=1e-3, steps=1, seed=0)
    assert small["norm"] == {"elements": 64, "changed": 0.0, "norm_ratio": 0.0}
    assert small["matrix"]["changed"] == 1.0 and small["matrix"]["norm_ratio"] == pytest.approx(1.0, abs=0.25)
    caught_up = rounding.step_rounding(weights, lr=1e-3, steps=8, seed=0)  # 8e-3 > half of 2**-7
    assert caught_up["norm"]["changed"] == 1.0


def test_groups_and_the_printed_table(rounding, tmp_path, capsys):
    assert [rounding.group_of(n) for n in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight")] == [
        "embedding", "norm", "matrix"]
    save_file({"model.embed_tokens.weight": torch.randn(4, 4) * 0.02, "model.norm.weight": torch.ones(4)},
              str(tmp_path / "model.safetensors"))
    assert rounding.main(["--model", str(tmp_path), "--lr", "2e-4", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 0.0002 | 1 | norm | 4 | 0.000 | 0.000 |" in out and "| 0.0002 | 1 | embedding | 16 |" in out
    with pytest.raises(SystemExit):
        rounding.main(["--model", str(tmp_path / "missing")])
