"""Format warm start: examples apart from the training prompts, format-only targets, cached result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resd_learner.warm_start import WarmStartConfig, cache_key, warm_start_examples, warm_started_model

ROWS = [{"task_id": f"t{i}", "prompt": f"p{i}", "candidates": ["A", "B", "C", "D"], "gold": "A"} for i in range(10)]


class _Family:
    def reference_response(self, row):
        return f"<answer>{row['gold']}</answer>"


def test_examples_are_the_last_rows_and_targets_are_random_candidates() -> None:
    pairs = warm_start_examples(ROWS, WarmStartConfig(num_examples=4, seed=1), reserved=6)
    assert [p for p, _ in pairs] == ["p6", "p7", "p8", "p9"]
    assert all(t.startswith("<answer>") and t[8] in "ABCD" for _, t in pairs)
    many = warm_start_examples(ROWS * 20, WarmStartConfig(num_examples=100), reserved=0)
    assert {t for _, t in many} == {f"<answer>{c}</answer>" for c in "ABCD"}  # not only the gold tag


def test_reference_targets_use_the_family() -> None:
    pairs = warm_start_examples(ROWS, WarmStartConfig(num_examples=2, targets="reference"), reserved=8,
                                family=_Family())
    assert pairs == [("p8", "<answer>A</answer>"), ("p9", "<answer>A</answer>")]


def test_overlap_with_training_prompts_and_missing_candidates_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be trained on again"):
        warm_start_examples(ROWS, WarmStartConfig(num_examples=5), reserved=6)
    with pytest.raises(ValueError, match="needs a 'candidates' column"):
        warm_start_examples([{"task_id": "x", "prompt": "p"}], WarmStartConfig(num_examples=1), reserved=0)


def test_config_problems_name_the_field() -> None:
    problems = WarmStartConfig(targets="gold", epochs=0, lr=0).problems()  # type: ignore[arg-type]
    assert any("warm_start.targets" in p for p in problems) and any("warm_start.epochs" in p for p in problems)
    assert any("warm_start.lr" in p for p in problems)


def test_cache_key_changes_with_settings_and_examples(tmp_path: Path) -> None:
    pairs = [("p", "<answer>A</answer>")]
    key = cache_key(tmp_path, WarmStartConfig(), pairs)
    assert key == cache_key(tmp_path, WarmStartConfig(), pairs)
    assert key != cache_key(tmp_path, WarmStartConfig(lr=2e-4), pairs)
    assert key != cache_key(tmp_path, WarmStartConfig(), [("p", "<answer>B</answer>")])


def test_disabled_returns_the_base_model(tmp_path: Path) -> None:
    assert warm_started_model(tmp_path, WarmStartConfig(), env_id="resd/FinerMini-v0", train_split="train",
                              num_train=8) == tmp_path


def test_tiny_model_is_warm_started_once_then_reused(tmp_path: Path) -> None:
    from resd_learner.models import resolve_model_path

    base = resolve_model_path("tiny", tmp_path / "cache")
    config = WarmStartConfig(enabled=True, num_examples=4, batch_size=2, lr=1e-3)
    out = warm_started_model(base, config, env_id="resd/FinerMini-v0", train_split="train", num_train=8,
                             cache_dir=tmp_path / "cache")
    record = json.loads((out / "warm_start.json").read_text())
    assert record["steps"] == 2 and record["rows"] == [1667, 1671] and (out / "config.json").is_file()
    mtime = (out / "warm_start.json").stat().st_mtime_ns
    again = warm_started_model(base, config, env_id="resd/FinerMini-v0", train_split="train", num_train=8,
                               cache_dir=tmp_path / "cache")
    assert again == out and (out / "warm_start.json").stat().st_mtime_ns == mtime
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]


def test_run_base_model_is_the_directory_the_trainer_uses(tmp_path: Path) -> None:
    from resd_learner.config import load_config
    from resd_learner.models import resolve_model_path
    from resd_learner.warm_start import run_base_model

    cache = tmp_path / "cache"
    overrides = ["model.path=tiny", f"model.cache_dir={cache}", "env.num_train=8", "env.num_val=4"]
    quickstart = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    plain = load_config(quickstart, [*overrides, "warm_start.enabled=false"])
    assert run_base_model(plain) == resolve_model_path("tiny", cache)
    warm = load_config(quickstart, [*overrides, "warm_start.num_examples=4", "warm_start.batch_size=2"])
    out = run_base_model(warm)
    assert out == warm_started_model(resolve_model_path("tiny", cache), warm.warm_start, env_id=warm.env.id,
                                     train_split=warm.env.train_split, num_train=8,
                                     family_kwargs=dict(warm.env.kwargs), cache_dir=cache)
    assert out != resolve_model_path("tiny", cache) and (out / "warm_start.json").is_file()


def test_target_loss_equals_the_full_causal_lm_loss(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from resd_learner.models import resolve_model_path
    from resd_learner.warm_start import _target_loss

    model = AutoModelForCausalLM.from_pretrained(str(resolve_model_path("tiny", tmp_path / "cache")))
    ids = torch.tensor([[5, 6, 7, 8, 9, 0], [5, 6, 7, 8, 9, 10]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    labels = torch.tensor([[-100, -100, -100, 8, 9, -100], [-100, -100, 7, 8, 9, 10]])
    full = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(_target_loss(model, ids, mask, labels), full, atol=1e-5)
