"""Batch construction per method (resd_learner.batch): who gets which teacher context, who gets no loss.

A hand-built batch of 4 prompts x 2 rollouts (example A: one failure with feedback + one success;
B: two failures, a solution buffered by an earlier step; C: a lone success + a failure without
feedback; D: a failure without feedback + a failure with feedback) goes through the pure
batch-construction functions for SDPO, SDPO+ss, RESD and each RESD ablation. GRPO is checked on a
real (tiny, CPU) trainer: the advantages that reach the clipped loss and the weight update.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from resd_learner.config import MethodConfig, load_config
from resd_learner.context import SolutionBuffer
from resd_learner.batch import (
    build_grpo_items,
    build_teacher_items,
    choose_demonstrations,
    sample_views,
    teacher_shared_prefix,
)
from resd_learner.trainer import Timer, Trainer
from resd_learner.types import Sample, Score, Task

PLAYBOOK = "## COMMON MISTAKES TO AVOID\n[err-00001] helpful=0 harmful=0 :: PLAYBOOKRULE keep every branch"
# (example, group index, response text, reward, feedback, reflection)
BATCH = [
    ("A", 0, "TRYAZERO", 0.0, "FEEDBACKAZERO", "REFLECTAZERO"),
    ("A", 1, "SOLUTIONAONE", 1.0, "", ""),
    ("B", 0, "TRYBZERO", 0.0, "FEEDBACKBZERO", "REFLECTBZERO"),
    ("B", 1, "TRYBONE", 0.0, "FEEDBACKBONE", ""),  # the reflector's output was empty / unusable
    ("C", 0, "SOLUTIONCZERO", 1.0, "", ""),
    ("C", 1, "TRYCONE", 0.0, "", "REFLECTCONE"),
    ("D", 0, "TRYDZERO", 0.0, "", "REFLECTDZERO"),
    ("D", 1, "TRYDONE", 0.0, "FEEDBACKDONE", "REFLECTDONE"),
]
BUFFERED = "BUFFEREDB"
MARKERS = {text for row in BATCH for text in (row[2], row[4], row[5]) if text and not text.startswith("TRY")}
MARKERS |= {BUFFERED, "PLAYBOOKRULE"}
"""Texts whose presence in a teacher prompt identifies a section's source (the TRY* responses only ever
appear as the sample's own previous trial)."""


@pytest.fixture(scope="module")
def batch(tiny_tokenizer):
    samples = []
    for example, group, response, reward, feedback, _ in BATCH:
        task = Task(example_id=example, messages=({"role": "user", "content": f"Solve task {example}."},),
                    prompt=f"Solve task {example}.")
        samples.append(Sample(task=task, group_index=group,
                              prompt_ids=tiny_tokenizer.encode(f"Solve task {example}.", add_special_tokens=False),
                              response_ids=tiny_tokenizer.encode(response, add_special_tokens=False),
                              response_text=response, finish_reason="stop",
                              score=Score(reward=reward, score=reward, passed=reward == 1.0, feedback=feedback)))
    return samples


def _buffer(samples, method):
    """The solution buffer as the trainer hands it over: an earlier step's B, then this step's successes."""
    buffer = SolutionBuffer()
    earlier = dataclasses.replace(sample_views(samples[2:3], 0.5)[0], response=BUFFERED, success=True)
    buffer.store_step([earlier])
    buffer.store_step(sample_views(samples, method.success_threshold))
    return buffer


def _teacher_batch(samples, method, tokenizer, buffer=None, reflections=None, playbook=""):
    """The trainer's order: views once → demonstrations → teacher items."""
    views = sample_views(samples, method.success_threshold)
    solutions = choose_demonstrations(views, method, buffer)
    return build_teacher_items(samples, views, method=method, tokenizer=tokenizer, solutions=solutions,
                               reflections=reflections, playbook=playbook)


def _run(samples, tokenizer, **method_kwargs):
    method = MethodConfig(teacher_template="manufactoria", max_teacher_length=4096, **method_kwargs)
    items = _teacher_batch(samples, method, tokenizer, buffer=_buffer(samples, method),
                           reflections=[row[5] for row in BATCH], playbook=PLAYBOOK)
    out = {}
    for (example, group, *_), sample, item in zip(BATCH, samples, items):
        if item.distill:
            assert item.teacher_ids[item.teacher_start:] == sample.response_ids  # response ids unchanged
            text = tokenizer.decode(item.teacher_ids[:item.teacher_start])
            shown = tuple(sorted({w for w in _words(text) if w in MARKERS}))
        else:
            assert item.teacher_ids == [] and item.skip_reason == "no_signal"
            shown = None
        out[f"{example}{group}"] = shown
    return out


def _words(text):
    return [w.strip(".,:;\"'()[]") for w in text.split()]


def test_sdpo_uses_peer_demonstrations_else_feedback_and_skips_own_success(batch, tiny_tokenizer):
    got = _run(batch, tiny_tokenizer, name="sdpo")
    assert got == {
        "A0": ("SOLUTIONAONE",),  # successful peer; its own feedback dropped because a solution exists
        "A1": None,  # own success gets nothing, no successful peer, no feedback: no loss
        "B0": ("FEEDBACKBZERO",),  # no peer success; SDPO never uses the (RESD) solution buffer
        "B1": ("FEEDBACKBONE",),
        "C0": None,  # a lone success is not distilled
        "C1": ("SOLUTIONCZERO",),
        "D0": None,  # neither demonstration nor feedback: mask 0
        "D1": ("FEEDBACKDONE",),
    }


def test_sdpo_ss_also_distils_self_successes_on_their_own_response(batch, tiny_tokenizer):
    got = _run(batch, tiny_tokenizer, name="sdpo_ss")
    assert got["A1"] == ("SOLUTIONAONE",) and got["C0"] == ("SOLUTIONCZERO",)
    assert {k: v for k, v in got.items() if k not in ("A1", "C0")} == {
        "A0": ("SOLUTIONAONE",), "B0": ("FEEDBACKBZERO",), "B1": ("FEEDBACKBONE",), "C1": ("SOLUTIONCZERO",),
        "D0": None, "D1": ("FEEDBACKDONE",)}


FULL_RESD = {
    "A0": ("PLAYBOOKRULE", "REFLECTAZERO", "SOLUTIONAONE"),  # peer demonstration, feedback dropped
    "A1": ("PLAYBOOKRULE", "SOLUTIONAONE"),  # own success (previous trial = successful trial)
    "B0": ("BUFFEREDB", "PLAYBOOKRULE", "REFLECTBZERO"),  # buffered solution from an earlier step
    "B1": ("BUFFEREDB", "PLAYBOOKRULE"),
    "C0": ("PLAYBOOKRULE", "SOLUTIONCZERO"),
    "C1": ("PLAYBOOKRULE", "REFLECTCONE", "SOLUTIONCZERO"),
    "D0": ("PLAYBOOKRULE", "REFLECTDZERO"),  # no feedback, no solution: the reflection carries it
    "D1": ("FEEDBACKDONE", "PLAYBOOKRULE", "REFLECTDONE"),  # no solution anywhere: feedback is shown
}


def test_resd_teacher_context(batch, tiny_tokenizer):
    assert _run(batch, tiny_tokenizer, name="resd") == FULL_RESD


def test_resd_teacher_sequences_share_their_instructions(batch, tiny_tokenizer):
    """The distilled teacher sequences share the chat header, the instructions and the tasks' common words."""
    method = MethodConfig(name="resd", teacher_template="manufactoria", max_teacher_length=4096)
    items = _teacher_batch(batch, method, tiny_tokenizer, buffer=_buffer(batch, method),
                           reflections=[row[5] for row in BATCH], playbook=PLAYBOOK)
    distilled = [it for it in items if it.distill]
    prefix = teacher_shared_prefix(items)
    assert len(distilled) == 8 and prefix >= 20  # FULL_RESD: every sample has a privileged signal
    assert all(it.teacher_ids[:prefix] == distilled[0].teacher_ids[:prefix] for it in distilled)
    assert len({it.teacher_ids[prefix] for it in distilled}) > 1  # the longest such prefix
    assert prefix <= min(it.teacher_start - 1 for it in distilled)
    assert tiny_tokenizer.decode(distilled[0].teacher_ids[:prefix]).endswith("Solve task")  # tasks A-D differ next
    only_one = [it if it is distilled[0] else dataclasses.replace(it, distill=False) for it in items]
    assert teacher_shared_prefix(only_one) == 0  # nothing to share with


def _without(expected, marker):
    return {k: tuple(m for m in v if not m.startswith(marker)) if v else v for k, v in expected.items()}


def test_resd_without_reflection_removes_only_the_reflection(batch, tiny_tokenizer):
    got = _run(batch, tiny_tokenizer, name="resd", use_reflection=False)
    expected = _without(FULL_RESD, "REFLECT")
    expected["D0"] = None  # only the playbook and its own response are left: no privileged signal
    assert got == expected


def test_resd_without_playbook_removes_only_the_playbook(batch, tiny_tokenizer):
    assert _run(batch, tiny_tokenizer, name="resd", use_playbook=False) == _without(FULL_RESD, "PLAYBOOKRULE")


def test_resd_without_solution_removes_only_the_successful_trial(batch, tiny_tokenizer):
    got = _run(batch, tiny_tokenizer, name="resd", use_solution=False)
    assert got == {
        "A0": ("FEEDBACKAZERO", "PLAYBOOKRULE", "REFLECTAZERO"),  # without a solution the feedback comes back
        "A1": None,  # a success has no feedback and no reflection: no signal left
        "B0": ("FEEDBACKBZERO", "PLAYBOOKRULE", "REFLECTBZERO"),
        "B1": ("FEEDBACKBONE", "PLAYBOOKRULE"),
        "C0": None,
        "C1": ("PLAYBOOKRULE", "REFLECTCONE"),
        "D0": ("PLAYBOOKRULE", "REFLECTDZERO"),
        "D1": ("FEEDBACKDONE", "PLAYBOOKRULE", "REFLECTDONE"),
    }


def test_demonstration_choice_and_empty_responses(batch, tiny_tokenizer):
    views = sample_views(batch, 0.5)
    assert choose_demonstrations(views, MethodConfig(name="grpo")) == [""] * len(batch)
    resd = MethodConfig(name="resd")
    assert choose_demonstrations(views, resd, None)[2] == ""  # no buffer: B has no demonstration
    empty = dataclasses.replace(batch[0], response_ids=[], response_text="")
    item = _teacher_batch([empty], resd, tiny_tokenizer)[0]
    assert not item.distill and item.skip_reason == "no_response"
    with pytest.raises(ValueError, match="aligned"):
        build_teacher_items(batch, views[:2], method=resd, tokenizer=tiny_tokenizer, solutions=[""] * 8)


def test_ablation_and_schedule_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    flags = {"no_reflection": "use_reflection", "no_playbook": "use_playbook", "no_solution": "use_solution"}
    full = load_config(root / "manufactoria_has_resd.yaml")
    for suffix, flag in flags.items():
        config = load_config(root / f"manufactoria_has_resd_{suffix}.yaml")
        assert config.method.name == "resd" and getattr(config.method, flag) is False
        assert [getattr(config.method, f) for f in flags.values() if f != flag] == [True, True]
        assert config.train.run_dir.endswith(suffix)
        assert (config.optim, config.loss, config.context.playbook_budget) == (full.optim, full.loss, 200)
    switch = load_config(root / "manufactoria_has_resd_then_grpo.yaml").method.switch_to_grpo
    assert switch.enabled and switch.n == 8


# -- GRPO on a real trainer ------------------------------------------------------------------------
def test_grpo_items_for_one_group_of_eight(batch):
    rewards = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    samples = [dataclasses.replace(s, score=Score(reward=r, score=r, passed=r == 1.0, feedback=""))
               for s, r in zip(batch, rewards)]
    std = (1.5 / 7) ** 0.5  # unbiased: deviations 0.75 (x2) and -0.25 (x6) around the mean 0.25
    hand = [(r - 0.25) / (std + 1e-6) for r in rewards]
    items = build_grpo_items(samples, 8, MethodConfig(name="grpo"))
    assert [it.advantage for it in items] == pytest.approx(hand)
    assert all(it.distill and it.teacher_ids == [] for it in items)
    raw = build_grpo_items(samples, 8, MethodConfig(name="grpo", grpo_normalize_std=False))
    assert [it.advantage for it in raw] == pytest.approx([r - 0.25 for r in rewards])
    with pytest.raises(ValueError, match="groups of 3"):
        build_grpo_items(samples, 3, MethodConfig(name="grpo"))


# -- GRPO on a real trainer ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grpo_trainer(tmp_path_factory, tiny_model_dir, smoke_config_path):
    run_dir = tmp_path_factory.mktemp("grpo")
    config = load_config(smoke_config_path, [
        f"train.run_dir={run_dir}", "method.name=grpo", "rollout.n=2", "context.enabled=false",
        "context.solution_buffer=false", "optim.weight_decay=0.0", "optim.lr=1e-2", "train.val_every=0",
        "train.val_before_train=false", "train.val_after_train=false"])
    return Trainer(config)


def test_grpo_advantages_reach_the_loss_and_a_step_changes_the_weights(grpo_trainer, batch, monkeypatch):
    import resd_learner.trainer as trainer_module

    trainer = grpo_trainer
    assert trainer.teacher is None and trainer.updater is None
    samples = [dataclasses.replace(s, score=Score(reward=r, score=r, passed=r == 1.0, feedback=""))
               for s, r in zip(batch[:4], (1.0, 0.0, 0.0, 0.0))]
    hand = [0.5 / (2 ** -0.5 + 1e-6), -0.5 / (2 ** -0.5 + 1e-6), 0.0, 0.0]  # (r - mean) / (unbiased std + eps)
    assert [it.advantage for it in build_grpo_items(samples, 2, trainer.config.method)] == pytest.approx(hand)
    # identical rewards in every group: zero advantages, zero gradient, and (fresh AdamW state, no weight
    # decay) no change at all
    flat = [dataclasses.replace(s, score=Score(reward=1.0, score=1.0, passed=True, feedback="")) for s in samples]
    before = {k: v.detach().clone() for k, v in trainer.engine.module.state_dict().items()}
    trainer._optimize(trainer._build_items(flat, None), Timer())
    after = trainer.engine.module.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)

    seen = []
    original = trainer_module.clipped_policy_loss

    def spy(logprobs, old, advantages, mask, **kw):
        assert kw == {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 3.0}
        seen.extend(advantages[:, 0].tolist())
        return original(logprobs, old, advantages, mask, **kw)

    monkeypatch.setattr(trainer_module, "clipped_policy_loss", spy)
    stats = trainer._optimize(trainer._build_items(samples, None), Timer())
    assert seen == pytest.approx(hand)  # one micro-batch per sample, advantages in sample order
    after = trainer.engine.module.state_dict()
    assert stats["tokens"] > 0 and any(not torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("use_previous_trial", [True, False])
def test_resd_previous_trial_section_follows_its_switch(batch, tiny_tokenizer, use_previous_trial):
    method = MethodConfig(name="resd", teacher_template="manufactoria", max_teacher_length=4096,
                          use_previous_trial=use_previous_trial)
    items = _teacher_batch(batch, method, tiny_tokenizer, buffer=_buffer(batch, method),
                           reflections=[row[5] for row in BATCH], playbook=PLAYBOOK)
    item = items[0]  # A0: a failure with feedback and a reflection
    text = tiny_tokenizer.decode(item.teacher_ids[:item.teacher_start])
    assert ("TRYAZERO" in text) is use_previous_trial
    assert ("previous_trial" in item.sections) is use_previous_trial
    assert "REFLECTAZERO" in text and item.teacher_ids[item.teacher_start:] == batch[0].response_ids


def test_resd_teacher_layout_reaches_the_teacher_sequences(batch, tiny_tokenizer):
    """method.teacher_layout=task_last puts the task after the playbook; the shared prefix then holds the playbook."""
    method = MethodConfig(name="resd", teacher_template="manufactoria", max_teacher_length=4096,
                          teacher_layout="task_last")
    items = _teacher_batch(batch, method, tiny_tokenizer, buffer=_buffer(batch, method),
                           reflections=[row[5] for row in BATCH], playbook=PLAYBOOK)
    item = items[0]  # A0: a failure with feedback and a reflection
    text = tiny_tokenizer.decode(item.teacher_ids[:item.teacher_start])
    assert item.sections[-1] == "prompt" and text.index("PLAYBOOK") < text.index("PROMPT")
    assert item.teacher_ids[item.teacher_start:] == batch[0].response_ids
    official = MethodConfig(name="resd", teacher_template="manufactoria", max_teacher_length=4096)
    official_items = _teacher_batch(batch, official, tiny_tokenizer, buffer=_buffer(batch, official),
                                    reflections=[row[5] for row in BATCH], playbook=PLAYBOOK)
    assert teacher_shared_prefix(items) > teacher_shared_prefix(official_items)
    assert any("teacher_layout='sideways'" in p for p in MethodConfig(teacher_layout="sideways").problems())
