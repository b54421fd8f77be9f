"""The trainer's use of this package in one step: update, pick demonstrations, build teacher inputs."""

from __future__ import annotations

import json

from resd_learner.context import (
    ContextConfig,
    ContextUpdater,
    build_teacher_inputs,
    choose_demonstration,
    template_for_env,
)


class WordTokenizer:
    """Duck-typed tokenizer with a growing word vocabulary (no decode: previous trial passed as text)."""

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **kwargs):
        text = "".join(f"<{m['role']}> {m['content']} </{m['role']}> " for m in messages)
        return text + ("<assistant> " if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=False):
        return [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]


def test_teacher_sees_the_playbook_and_reflection_of_the_same_step(scripted, make_sample):
    def script(kind, messages):
        if kind == "reflect":
            return json.dumps({"key_insight": "exit the loop on empty tape", "bullet_tags": []})
        return json.dumps({"reasoning": "r", "operations": [
            {"type": "ADD", "section": "mistakes", "content": "Handle the empty tape first."}]})

    updater = ContextUpdater(ContextConfig(), scripted(script), seed=0)
    # example "a": one failure and one success in its group; example "b": a failure only
    group_a = [make_sample("a", response="bad", group_index=0),
               make_sample("a", success=True, response="<think>t</think>GOOD", group_index=1)]
    group_b = [make_sample("b", response="also bad", feedback="FB-B")]
    samples = group_a + group_b
    update = updater.update(0, samples)
    tok = WordTokenizer()
    texts = []
    for i, s in enumerate(samples):
        group = [g for g in samples if g.example_id == s.example_id]
        solution = choose_demonstration(s, group, updater.solutions, self_success=True)
        out = build_teacher_inputs(
            tok, prompt_messages=[{"role": "user", "content": s.prompt}], response_ids=[7, 8, 9],
            feedback=s.feedback, reflection=update.reflections[i], playbook=update.playbook,
            solution=solution, template=template_for_env("resd/Manufactoria-Has-v0"), max_length=10_000,
            previous_trial=s.response,
        )
        assert out.input_ids[out.response_start:] == [7, 8, 9]
        texts.append(out.text)
    # the failed sample of "a" learns from its successful peer, without feedback; playbook of this step
    assert "GOOD" in texts[0] and "<think>" not in texts[0] and "ENVIRONMENT FEEDBACK" not in texts[0]
    assert "[err-00001]" in texts[0] and "exit the loop on empty tape" in texts[0]
    # the success gets itself as the solution and no reflection
    assert "SUCCESSFUL TRIAL" in texts[1] and "REFLECTION" not in texts[1]
    # "b" has no solution anywhere: feedback shown, no successful-trial section
    assert "FB-B" in texts[2] and "SUCCESSFUL TRIAL" not in texts[2]
