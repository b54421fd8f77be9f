"""The teacher-signal analysis end to end with the tiny offline model on a toy text env."""

from __future__ import annotations

import json

import gymnasium
import pytest

from resd_learner.analysis import teacher_signal as ts


class CountEnv(gymnasium.Env):
    """'Write the number N.' Passes only if the response contains N; feedback names the answer."""

    def __init__(self):
        self.observation_space = gymnasium.spaces.Text(200)
        self.action_space = gymnasium.spaces.Text(2000)
        self.n = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n = int(self.np_random.integers(1000, 9999))
        return f"Write the number {self.n} and nothing else.", {}

    def step(self, action):
        ok = str(self.n) in action
        feedback = "" if ok else f"Wrong answer: expected {self.n}, got {action[:40]!r}. Write only the digits of the number."
        return feedback, float(ok), True, False, {"passed": ok, "score": float(ok), "feedback": feedback}


gymnasium.register(id="TeacherSignalToy-v0", entry_point=CountEnv, disable_env_checker=True)


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir):
    from resd_learner.models import load_tokenizer
    from resd_learner.rollout.hf_backend import HfBackend

    return HfBackend(tiny_model_dir, load_tokenizer(tiny_model_dir), max_model_len=4096)


def _config(**over):
    data = {
        "model": "tiny", "max_tokens": 12, "context_max_tokens": 16, "teacher_max_length": 3000,
        "max_model_len": 4096, "top_tokens": 5, "bootstrap_resamples": 50,
        "contexts": ["sdpo", "resd", "resd_no_playbook", "resd_no_previous_trial_no_playbook"],
        "tasks": [{"env_id": "TeacherSignalToy-v0", "num_failures": 3, "max_prompts": 4, "alpha": 0.5}],
    }
    data.update(over)
    return ts.TeacherSignalConfig.from_dict(data)


def test_run_end_to_end(tiny_backend, tmp_path):
    summary = ts.run(_config(), tmp_path, backend=tiny_backend)
    res = summary["tasks"]["TeacherSignalToy-v0"]
    assert res["failures"] == 3 and res["divergence"] == "jsd" and res["jsd_beta"] == 0.5
    for name in ("sdpo", "resd", "resd_no_playbook"):
        ctx = res["contexts"][name]
        assert ctx["tokens"] == sum(s["response_tokens"] for s in res["samples"])
        assert ctx["total_mass"] >= 0.0 and ctx["sample_mean"] >= 0.0
        assert len(res["top_tokens"][name]) == 5
        assert isinstance(ctx["sampled_log_ratio"], float)
    sample = res["samples"][0]
    assert "feedback" in sample["contexts"]["resd"]["sections"]
    assert "previous_trial" in sample["contexts"]["resd"]["sections"]
    bare = sample["contexts"]["resd_no_previous_trial_no_playbook"]["sections"]
    assert "feedback" in bare and "previous_trial" not in bare and "playbook" not in bare
    assert "RESD context moves" in res["verdict"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["tasks"]["TeacherSignalToy-v0"]["verdict"] == res["verdict"]
    assert "## TeacherSignalToy-v0" in (tmp_path / "report.md").read_text()
    # deterministic under the seed
    again = ts.run(_config(), tmp_path / "again", backend=tiny_backend)
    assert again["tasks"]["TeacherSignalToy-v0"]["contexts"] == res["contexts"]


def test_identical_contexts_give_zero_loss(tiny_backend):
    tok, model = tiny_backend.tokenizer, tiny_backend.model
    prompt = tok("hello there, write code", add_special_tokens=False)["input_ids"]
    response = tok(" def f(x): return x", add_special_tokens=False)["input_ids"]
    ids = prompt + response
    cfg = _config()
    ratios = []
    same = ts.per_token_loss(model, ids, len(prompt), ids, len(prompt), len(response), divergence="reverse_kl",
                             jsd_beta=0.5, config=cfg, log_ratios=ratios)
    assert len(same) == len(response) and max(abs(x) for x in same) < 1e-5
    assert len(ratios) == len(response) and max(abs(x) for x in ratios) < 1e-5
    other = tok("totally different context, a long one, about numbers", add_special_tokens=False)["input_ids"]
    ratios = []
    diff = ts.per_token_loss(model, ids, len(prompt), other + response, len(other), len(response),
                             divergence="reverse_kl", jsd_beta=0.5, config=cfg, log_ratios=ratios)
    assert sum(diff) > 0 and any(abs(x) > 1e-4 for x in ratios)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown config key"):
        ts.TeacherSignalConfig.from_dict({"tasks": [], "bogus": 1})
    with pytest.raises(ValueError, match="tasks is empty"):
        ts.TeacherSignalConfig.from_dict({"tasks": []})
    with pytest.raises(ValueError, match="num_failures"):
        _config(tasks=[{"env_id": "x", "num_failures": 5, "max_prompts": 2}])
    with pytest.raises(ValueError, match="must include 'sdpo'"):
        _config(contexts=["resd"])
    with pytest.raises(ValueError, match=r"context: unknown or owned key\(s\) \['playbook_budget', 'wrong'\]"):
        _config(context={"wrong": 1, "playbook_budget": 3})
    with pytest.raises(ValueError, match="teacher_layout='backwards': use one of official, lessons_first, task_last"):
        _config(teacher_layout="backwards")
    with pytest.raises(ValueError, match="dtype='half'"):
        _config(dtype="half")
    assert _config(dtype="auto", context={"extractive_lessons": True}).dtype == "auto"
    assert ts.main(["--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path)]) == 2


def test_committed_configs_parse():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[3] / "configs" / "analysis"
    files = sorted(folder.glob("*.yaml"))
    assert files, f"no analysis configs in {folder}"
    for path in files:
        cfg = ts.TeacherSignalConfig.from_yaml(path)
        assert cfg.model == "smollm2" and cfg.max_tokens <= 256


def test_context_update_generates_under_the_schemas(tiny_backend):
    """With structured output (auto, xgrammar present) even the random tiny model's reflections and
    curations parse, so the RESD context has a playbook to show; free-form output does not parse."""
    if not tiny_backend.supports_schema:
        pytest.skip("xgrammar is not installed")
    failures, _ = ts.collect_failures(tiny_backend, _config().tasks[0], _config(), seed=0)
    structured = ts.run_context_update(tiny_backend, failures, _config().tasks[0],
                                       _config(context_max_tokens=160, context_temperature=0.3), seed=0)
    assert structured.stats["reflections_malformed"] == 0 and structured.stats["curations_applied"] >= 1
    free = ts.run_context_update(tiny_backend, failures, _config().tasks[0],
                                 _config(context_max_tokens=160, structured_output="off"), seed=0)
    assert free.stats["reflections_malformed"] == len(failures)


def test_extractive_lessons_fill_the_playbook_with_clauses_of_the_feedback(tiny_backend):
    """The analysis passes ``context:`` settings to the updater: with extractive lessons the random tiny
    model can only add the one general clause of the toy feedback (the quoted answer is never offered)."""
    if not tiny_backend.supports_schema:
        pytest.skip("xgrammar is not installed")
    cfg = _config(context_max_tokens=160, context_temperature=0.3,
                  context={"extractive_lessons": True, "deduplicate": True})
    failures, _ = ts.collect_failures(tiny_backend, cfg.tasks[0], cfg, seed=0)
    update = ts.run_context_update(tiny_backend, failures, cfg.tasks[0], cfg, seed=0)
    entries = [line for line in update.playbook.splitlines() if line.startswith("[")]
    assert update.stats["reflections_malformed"] == 0 and update.stats["curations_applied"] == len(failures)
    assert len(entries) == 1 and entries[0].endswith(":: Write only the digits of the number")


def test_teacher_layout_orders_the_resd_contexts_sections(tiny_backend, tmp_path):
    """``teacher_layout`` reaches every RESD context (the playbook before the task under lessons_first);
    SDPO's context has no playbook and is the same in both layouts."""
    config = _config(teacher_layout="lessons_first", contexts=["sdpo", "resd", "resd_no_previous_trial_no_reflection"])
    summary = ts.run(config, tmp_path, backend=tiny_backend)
    res = summary["tasks"]["TeacherSignalToy-v0"]
    official = ts.run(_config(contexts=["sdpo", "resd"]), tmp_path / "official", backend=tiny_backend)
    for sample, other in zip(res["samples"], official["tasks"]["TeacherSignalToy-v0"]["samples"]):
        sections = sample["contexts"]["resd"]["sections"]
        assert sections.index("playbook") < sections.index("prompt") < sections.index("feedback")
        before = other["contexts"]["resd"]["sections"]
        assert before.index("prompt") < before.index("playbook")
        assert sample["contexts"]["sdpo"] == other["contexts"]["sdpo"]
        quickstart = sample["contexts"]["resd_no_previous_trial_no_reflection"]["sections"]
        assert quickstart == ["playbook", "prompt", "feedback"]  # the quickstart's teacher
    assert "RESD teacher layout `lessons_first`" in (tmp_path / "report.md").read_text()
