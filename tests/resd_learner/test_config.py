"""Config schema, YAML files, overrides and error reporting (resd_learner.config, resd_learner.cli)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from resd_learner.cli import main as cli_main
from resd_learner.config import METHODS, RunConfig, RunConfigError, dump_yaml, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TASKS = ("manufactoria_has", "bouncingsim_easy", "bouncingsim_medium", "finer")


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_task_and_method_has_a_valid_config():
    for task in TASKS:
        for method in METHODS:
            config = load_config(CONFIGS / f"{task}_{method}.yaml")
            assert config.method.name == method
    for extra in ("quickstart", "smoke"):
        assert isinstance(load_config(CONFIGS / f"{extra}.yaml"), RunConfig)


@pytest.mark.parametrize("task", TASKS)
def test_official_shared_values(task):
    config = load_config(CONFIGS / f"{task}_resd.yaml")
    assert (config.train.batch_size, config.train.updates_per_batch, config.rollout.n) == (32, 4, 1)
    assert (config.loss.top_k, config.loss.add_tail, config.loss.ratio_clip_low, config.loss.ratio_clip_high) == (
        100, True, 0.2, None)
    assert (config.optim.warmup_steps, config.optim.weight_decay, config.optim.grad_clip) == (10, 0.01, 1.0)
    assert (config.rollout.temperature, config.rollout.top_p) == (1.0, 0.95)
    assert (config.eval.n, config.eval.temperature, config.eval.top_p) == (4, 0.6, 0.95)
    assert load_config(CONFIGS / f"{task}_grpo.yaml").rollout.n == 8


def test_per_task_values_follow_the_official_table():
    table = {  # lr, divergence, EMA rate, weighting, threshold, budget, concise
        "manufactoria_has": (1e-6, "reverse_kl", 1e-4, True, 0.5, 200, "staleness"),
        "bouncingsim_easy": (1e-6, "jsd", 1e-4, True, 0.5, 120, "staleness"),
        "bouncingsim_medium": (1e-6, "reverse_kl", 1e-2, False, 0.5, 150, "prioritized"),
        "finer": (1e-5, "jsd", 1e-4, True, 1.0, 120, "staleness"),
    }
    for task, expected in table.items():
        c = load_config(CONFIGS / f"{task}_resd.yaml")
        got = (c.optim.lr, c.loss.divergence, c.teacher.rate, c.method.success_rate_weighting,
               c.method.success_threshold, c.context.playbook_budget, c.context.concise_method)
        assert got == expected, task
        sdpo = load_config(CONFIGS / f"{task}_sdpo.yaml")
        assert not sdpo.context.enabled and not sdpo.method.success_rate_weighting
        assert not sdpo.method.distill_self_success
        assert load_config(CONFIGS / f"{task}_sdpo_ss.yaml").method.distill_self_success
        assert load_config(CONFIGS / f"{task}_grpo.yaml").optim.lr == 1e-6


def test_overrides_are_typed_and_nested(tmp_path):
    config = load_config(CONFIGS / "smoke.yaml", ["train.batch_size=8", "optim.lr=2e-6", "env.kwargs.seed=3",
                                                  "model.enable_thinking=true", "optim.betas=[0.8, 0.9]"])
    assert config.train.batch_size == 8
    assert config.optim.lr == pytest.approx(2e-6)
    assert config.env.kwargs == {"seed": 3}
    assert config.model.enable_thinking is True
    assert config.optim.betas == (0.8, 0.9)


def test_all_problems_are_reported_together(tmp_path):
    path = _write(tmp_path, {
        "train": {"batch_sise": 4, "updates_per_batch": "four"},
        "rollout": {"backend": "vlm", "top_p": 2.0},
        "optimizer": {"lr": 1},
    })
    with pytest.raises(RunConfigError) as info:
        load_config(path, ["loss.divergence=kl"])
    text = str(info.value)
    assert "'train.batch_sise'" in text and "did you mean 'train.batch_size'" in text
    assert "train.updates_per_batch='four'" in text and "expected an integer" in text
    assert "rollout.backend='vlm'" in text and "did you mean 'vllm'" in text
    assert "'optimizer'" in text and "did you mean 'optim'" in text
    # value problems are reported alongside the unknown keys and type errors, not after a second run
    assert "rollout.top_p=2.0" in text
    assert len(info.value.problems) >= 5


def test_a_bad_value_next_to_an_unknown_key_in_the_same_section_is_reported(tmp_path):
    path = _write(tmp_path, {"train": {"batch_size": -1, "bogus": 3}})
    with pytest.raises(RunConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "'train.bogus'" in text and "train.batch_size=-1" in text


def test_value_and_conflict_problems_are_collected(tmp_path):
    path = _write(tmp_path, {"method": {"name": "grpo"}, "rollout": {"n": 1, "top_p": 1.5, "block_size": 0},
                             "train": {"batch_size": 0}, "context": {"enabled": True}})
    with pytest.raises(RunConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "rollout.top_p=1.5" in text
    assert "rollout.block_size=0" in text
    assert "train.batch_size=0" in text
    assert "method.name=grpo needs groups" in text
    assert "does not use the context updater" in text


def test_sections_from_other_modules_are_validated(tmp_path):
    with pytest.raises(RunConfigError) as info:
        load_config(CONFIGS / "smoke.yaml", ["loss.divergence=kl", "context.concise_method=lru",
                                             "teacher.rate=2"])
    text = str(info.value)
    assert "divergence" in text and "concise_method" in text and "rate" in text


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(RunConfigError, match="key.sub=value"):
        load_config(CONFIGS / "smoke.yaml", ["train.batch_size"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_round_trips(tmp_path):
    config = load_config(CONFIGS / "quickstart.yaml", ["train.seed=7"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(path) == config


def test_cli_print_config_and_errors(capsys):
    assert cli_main(["--config", str(CONFIGS / "smoke.yaml"), "--print-config", "train.seed=5"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["seed"] == 5 and printed["method"]["name"] == "resd"
    assert cli_main(["--config", str(CONFIGS / "smoke.yaml"), "--print-config", "train.sed=5"]) == 2
    assert "did you mean 'train.seed'" in capsys.readouterr().err
    assert cli_main(["--print-config"]) == 2


# -- options whose default follows another option ------------------------------------------------
@pytest.mark.parametrize("method,extra", [("sdpo", ()), ("sdpo_ss", ()), ("grpo", ("rollout.n=2",))])
def test_baseline_methods_imply_their_context_defaults(smoke_config_path, method, extra):
    config = load_config(smoke_config_path, [f"method.name={method}", *extra])
    assert config.context.enabled is False and config.context.solution_buffer is False


def test_explicit_context_that_contradicts_the_method_is_a_clear_error(smoke_config_path):
    with pytest.raises(RunConfigError, match="context.enabled=true was set: remove it"):
        load_config(smoke_config_path, ["method.name=sdpo", "context.enabled=true"])
    assert load_config(smoke_config_path).context.enabled is True  # resd keeps its context on


def test_loss_temperature_follows_the_rollout_temperature_unless_set(smoke_config_path):
    assert load_config(smoke_config_path, ["rollout.temperature=0.7"]).loss.temperature == 0.7
    assert load_config(smoke_config_path, ["rollout.temperature=0.7", "loss.temperature=1.0"]).loss.temperature == 1.0


# -- every shipped config loads; configs compose through base: ------------------------------------
ALL_CONFIGS = sorted(CONFIGS.glob("**/*.yaml"))


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_loads(path):
    if path.parent.name == "analysis":  # teacher-signal analysis configs have their own schema
        from resd_learner.analysis.teacher_signal import TeacherSignalConfig

        assert TeacherSignalConfig.from_yaml(path)
    else:
        assert isinstance(load_config(path), RunConfig)


def test_ablations_are_their_base_plus_one_key():
    base = dump_yaml(load_config(CONFIGS / "manufactoria_has_resd.yaml")).splitlines()
    ablation = dump_yaml(load_config(CONFIGS / "manufactoria_has_resd_no_playbook.yaml")).splitlines()
    changed = [new for old, new in zip(base, ablation) if old != new]
    assert len(base) == len(ablation) and [c.strip() for c in changed] == [
        "use_playbook: false", "run_dir: runs/manufactoria_has_resd_no_playbook"]


def test_base_merges_nested_sections_and_resolves_relative_to_the_file(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "root.yaml").write_text(yaml.safe_dump(
        {"optim": {"lr": 1e-5, "warmup_steps": 3}, "train": {"batch_size": 4, "run_dir": "runs/root"}}))
    (tmp_path / "shared" / "mid.yaml").write_text(yaml.safe_dump({"base": "root.yaml", "optim": {"lr": 2e-5}}))
    (tmp_path / "leaf.yaml").write_text(yaml.safe_dump({"base": "shared/mid.yaml", "train": {"batch_size": 8}}))
    config = load_config(tmp_path / "leaf.yaml", ["optim.warmup_steps=5"])
    assert (config.optim.lr, config.optim.warmup_steps) == (2e-5, 5)
    assert (config.train.batch_size, config.train.run_dir) == (8, "runs/root")


def test_base_cycle_and_missing_base_are_clear_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(RunConfigError, match="cycle: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(RunConfigError, match="base='nowhere.yaml' does not exist"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: [a.yaml]\n")
    with pytest.raises(RunConfigError, match="give the path of the config file"):
        load_config(tmp_path / "d.yaml")


def test_rollout_stop_strings_are_typed_and_checked(tmp_path):
    config = load_config(CONFIGS / "smoke.yaml", ["rollout.stop=['</answer>']"])
    assert config.rollout.stop == ["</answer>"]
    assert load_config(CONFIGS / "smoke.yaml").rollout.stop == []
    with pytest.raises(RunConfigError, match="rollout.stop"):
        load_config(CONFIGS / "smoke.yaml", ["rollout.stop=['']"])


def test_float32_learning_rate_scale_applies_only_to_a_float32_student():
    plain = RunConfig()
    assert plain.optim.lr_scale_float32 == 1.0
    assert plain.optim.lr_for("float32") == plain.optim.lr_for("bfloat16") == plain.optim.lr
    config = load_config(CONFIGS / "quickstart.yaml", ["optim.lr=3e-4", "optim.lr_scale_float32=0.5"])
    assert config.optim.lr_for("float32") == pytest.approx(1.5e-4)  # an lr override is scaled too
    assert config.optim.lr_for("bfloat16") == pytest.approx(3e-4)
    with pytest.raises(ValueError, match="resolved model.dtype"):
        config.optim.lr_for("auto")
    with pytest.raises(RunConfigError, match="optim.lr_scale_float32=0.0"):
        load_config(CONFIGS / "quickstart.yaml", ["optim.lr_scale_float32=0"])


def test_resd_learn_says_when_float32_changes_the_learning_rate(capsys):
    quickstart = str(CONFIGS / "quickstart.yaml")
    assert cli_main(["--config", quickstart, "--print-config", "model.dtype=float32", "optim.lr=2e-4",
                     "optim.lr_scale_float32=0.5"]) == 0
    captured = capsys.readouterr()
    assert "optim.lr_scale_float32=0.5 -> lr 0.0001 (optim.lr 0.0002; the student computes in float32)" in captured.err
    assert yaml.safe_load(captured.out)["optim"]["lr"] == pytest.approx(2e-4)  # the config keeps optim.lr
    assert cli_main(["--config", quickstart, "--print-config", "model.dtype=bfloat16",
                     "optim.lr_scale_float32=0.5"]) == 0
    assert "lr_scale_float32" not in capsys.readouterr().err
