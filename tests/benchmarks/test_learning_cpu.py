"""benchmarks/learning_cpu.py reuses a finished run only when it was made with the same settings."""

from __future__ import annotations

import json

import pytest

from resd_learner.cli import resolve_auto_settings
from resd_learner.config import dump_yaml, load_config


def _finished_run(module, run_dir, overrides):
    """A finished run as resd-learn leaves it: ``config.yaml`` holds the settings with ``auto`` resolved."""
    run_dir.mkdir(parents=True)
    config, _lines = resolve_auto_settings(load_config(module.CONFIG, overrides))
    (run_dir / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")
    (run_dir / "summary.json").write_text(json.dumps({"change": 0.1}), encoding="utf-8")


def test_a_finished_run_with_the_same_settings_is_reused(load_benchmark, tmp_path):
    module = load_benchmark("learning_cpu")
    run_dir = tmp_path / "runs" / "sdpo_s3"
    _finished_run(module, run_dir, [f"model.dtype={module.DTYPE}", "method.name=sdpo", "train.seed=3",
                                    "train.run_dir=elsewhere"])
    assert load_config(module.CONFIG).rollout.top_p_impl == "auto"  # resolved in config.yaml, as resd-learn does
    assert module.settings_changed(run_dir, ["method.name=sdpo", f"model.dtype={module.DTYPE}", "train.seed=3"]) == []
    summary = module.run_one("sdpo", 3, tmp_path, [])  # nothing is trained: the stored summary comes back
    assert summary["change"] == 0.1 and summary["wall_s"] is None


def test_a_finished_run_with_other_settings_is_refused(load_benchmark, tmp_path):
    module = load_benchmark("learning_cpu")
    run_dir = tmp_path / "runs" / "resd_s0"
    _finished_run(module, run_dir, [f"model.dtype={module.DTYPE}", "train.seed=0", "rollout.max_tokens=32"])
    assert module.settings_changed(run_dir, [f"model.dtype={module.DTYPE}", "train.seed=0", "rollout.max_tokens=40"]) \
        == ["rollout.max_tokens: 32 -> 40"]
    with pytest.raises(SystemExit, match=r"resd_s0 is a finished run made with other settings \(rollout.max_tokens: "
                                         r"32 -> 40\); pass another --out"):
        module.run_one("resd", 0, tmp_path, ["rollout.max_tokens=40"])


def test_a_finished_run_without_its_config_is_refused(load_benchmark, tmp_path):
    module = load_benchmark("learning_cpu")
    run_dir = tmp_path / "runs" / "grpo_s1"
    _finished_run(module, run_dir, [f"model.dtype={module.DTYPE}", "train.seed=1"])
    (run_dir / "config.yaml").unlink()
    with pytest.raises(SystemExit, match="grpo_s1 is a finished run made with other settings \\(config.yaml: missing"):
        module.run_one("grpo", 1, tmp_path, [])


def test_the_float32_lr_scale_matters_only_to_float32_runs(load_benchmark, tmp_path):
    module = load_benchmark("learning_cpu")
    for dtype in ("bfloat16", "float32"):  # runs made before the quickstart scaled float32's lr
        _finished_run(module, tmp_path / dtype, [f"model.dtype={dtype}", "optim.lr_scale_float32=1"])
    assert load_config(module.CONFIG).optim.lr_scale_float32 == 0.5
    assert module.settings_changed(tmp_path / "bfloat16", ["model.dtype=bfloat16"]) == []
    assert module.settings_changed(tmp_path / "float32", ["model.dtype=float32"]) == \
        ["optim.lr_scale_float32: 1.0 -> 0.5"]
    assert module.settings_changed(tmp_path / "bfloat16", ["model.dtype=float32"]) == \
        ["model.dtype: 'bfloat16' -> 'float32'", "optim.lr_scale_float32: 1.0 -> 0.5"]
