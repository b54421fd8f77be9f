"""Template echo: placeholder text copied from the prompts' format example is recognised and dropped."""

from __future__ import annotations

import json

import pytest

from resd_learner.context import ContextConfig, ContextUpdater
from resd_learner.context.echo import is_template_echo, reflection_is_echo, template_phrases

ECHO_REFLECTION = json.dumps({"reasoning": "your step-by-step", "error_identification": "what exactly was",
                              "root_cause_analysis": "why it happened", "correct_approach": "what should have be",
                              "key_insight": "one reusable lesson", "bullet_tags": []})
REAL_REFLECTION = json.dumps({"reasoning": "your step-by-step", "error_identification": "what exactly was",
                              "root_cause_analysis": "why it happened", "correct_approach": "what should have be",
                              "key_insight": "Percent values take a tag ending in Percentage", "bullet_tags": []})
REAL_LESSON = "Percent values take a tag ending in Percentage"


@pytest.mark.parametrize("text", ["the lesson", "The Lesson.", "your step-by-step", "one reusable",
                                  "what should have be", "why it happened,", "common_mistakes_to_avoid", "bullet_tags",
                                  "", "  "])
def test_copies_and_beginnings_of_the_examples_are_echoes(text):
    assert is_template_echo(text)


@pytest.mark.parametrize("text", ["The correct tag is CashAndCashEquivalents",
                                  "The correct reply is <answer>Goodwill</answer>", "the lesson is to read the units",
                                  "Myriad strengths", "why it failed: wrong units"])
def test_text_with_anything_of_its_own_is_not_an_echo(text):
    assert not is_template_echo(text)


@pytest.mark.parametrize("text", ["what exactly was it", "What exactly was it that", "what exactly what what",
                                  "why it could", "why it happn", "what exactly was OK",
                                  "what should havent"])
def test_garbled_copies_of_an_example_are_echoes(text):
    # SmolLM2-135M's fields under context.prompt_layout=shared_first, and a few seen in float32 runs
    assert is_template_echo(text)


@pytest.mark.parametrize("text", ["why it failed: the tag counts shares, not dollars",
                                  "what exactly the sentence measures decides the tag",
                                  "what is asked is the amount, not the share count", "the lesson is to read the units"])
def test_an_example_opening_followed_by_content_is_not_an_echo(text):
    assert not is_template_echo(text)


def test_phrases_come_from_the_prompts_themselves():
    phrases = template_phrases()
    assert "the lesson" in phrases and "your step by step analysis" in phrases and "common mistakes to avoid" in phrases


def test_reflection_echo_needs_every_analysis_field_to_echo():
    assert reflection_is_echo(ECHO_REFLECTION)
    assert not reflection_is_echo(REAL_REFLECTION)
    assert not reflection_is_echo("free-form analysis without JSON")


def _run(drop, scripted, make_sample, curate_all_failures=True):
    def script(kind, messages):
        if kind == "reflect":
            return ECHO_REFLECTION if "EchoTask" in messages[-1]["content"] else REAL_REFLECTION
        return json.dumps({"reasoning": "the lesson", "operations": [
            {"type": "ADD", "section": "common_mistakes_to_avoid", "content": "the lesson"},
            {"type": "ADD", "section": "others", "content": REAL_LESSON}]})

    gen = scripted(script)
    config = ContextConfig(playbook_budget=50, drop_template_echo=drop, curate_all_failures=curate_all_failures)
    up = ContextUpdater(config, gen, seed=0)
    samples = [make_sample("a", prompt="EchoTask 1"), make_sample("b", prompt="RealTask 2")]
    return up.update(1, samples), up


def test_updater_drops_echoes_only_when_asked(scripted, make_sample):
    kept, up_kept = _run(False, scripted, make_sample)
    assert kept.reflections == [ECHO_REFLECTION, REAL_REFLECTION]
    assert sorted(e.content for e in up_kept.playbook.entries) == sorted(["the lesson", REAL_LESSON] * 2)
    dropped, up = _run(True, scripted, make_sample)
    assert dropped.reflections == ["", REAL_REFLECTION]  # the echo reaches neither teacher nor curator text
    assert dropped.stats["reflections_echo"] == 1 and dropped.stats["echoes_skipped"] == 2
    assert [e.content for e in up.playbook.entries] == [REAL_LESSON, REAL_LESSON]
    echo_record = [o for o in dropped.outputs if o["kind"] == "reflection"][0]
    assert echo_record["template_echo"] is True and echo_record["text"] == ECHO_REFLECTION


def test_a_failure_whose_reflection_was_an_echo_gets_no_curator_call_unless_all_are_curated(scripted, make_sample):
    every, up_every = _run(True, scripted, make_sample)
    kept_only, up = _run(True, scripted, make_sample, curate_all_failures=False)
    assert up_every.generate.calls == [("reflect", 2), ("curate", 2)]
    assert up.generate.calls == [("reflect", 2), ("curate", 1)]
    [curator_prompt] = up.generate.prompts[1]
    assert "RealTask" in curator_prompt[-1]["content"] and "EchoTask" not in curator_prompt[-1]["content"]
    assert [e.content for e in up_every.playbook.entries] == [REAL_LESSON] * 2  # one per curator call
    assert [e.content for e in up.playbook.entries] == [REAL_LESSON]
    assert kept_only.stats["curations_applied"] == 1 and every.stats["curations_applied"] == 2


ANSWER = "<answer>ShareBasedCompensationArrangementByShareBasedPaymentAward</answer>"


@pytest.mark.parametrize("text", ["<answer>ShareBasedComp<#", "share based compensation", "<answer><answer>",
                                  "Solve TASKID", "", "<>"])
def test_fragments_of_the_task_or_the_attempt_are_copies(text):
    from resd_learner.context.echo import copies_source

    assert copies_source(text, ["Solve TASKID=a now. Reply inside <answer></answer>.", ANSWER])


@pytest.mark.parametrize("text", [REAL_LESSON, "ShareBasedCompensation tags count shares, not dollars",
                                  "<answer><answer><answer>"])
def test_text_beyond_the_sources_is_not_a_copy(text):
    from resd_learner.context.echo import copies_source

    assert not copies_source(text, ["Solve TASKID=a now. Reply inside <answer></answer>.", ANSWER])


@pytest.mark.parametrize("text", ["<answer><answer><answer>", "employee service", "numberOfRealEstatePrinps",
                                  "<answer>ShareBasedComp<#", "Solve TASKID=a now", "## ** --"])
def test_fragments_and_copies_are_not_lessons(text):
    from resd_learner.context.echo import is_non_lesson

    assert is_non_lesson(text, ["Solve TASKID=a now. Reply inside <answer></answer>.", ANSWER])


def test_a_rule_in_words_is_a_lesson():
    from resd_learner.context.echo import is_non_lesson

    assert not is_non_lesson(REAL_LESSON, ["Solve TASKID=a now.", ANSWER])
    assert not is_non_lesson("Share counts take a NumberOfShares tag", ["Solve TASKID=a now.", ANSWER])


def _run_copies(drop, scripted, make_sample):
    def script(kind, messages):
        if kind == "reflect":
            return REAL_REFLECTION
        return json.dumps({"reasoning": "copied", "operations": [
            {"type": "ADD", "section": "common_mistakes_to_avoid", "content": "<answer>ShareBasedComp<#"},
            {"type": "ADD", "section": "others", "content": REAL_LESSON}]})

    up = ContextUpdater(ContextConfig(playbook_budget=50, drop_non_lessons=drop), scripted(script), seed=0)
    return up.update(1, [make_sample("a", response=ANSWER)]), up


def test_updater_drops_non_lessons_only_when_asked(scripted, make_sample):
    kept, up_kept = _run_copies(False, scripted, make_sample)
    assert sorted(e.content for e in up_kept.playbook.entries) == sorted(["<answer>ShareBasedComp<#", REAL_LESSON])
    assert kept.stats["non_lessons_skipped"] == 0
    dropped, up = _run_copies(True, scripted, make_sample)
    assert [e.content for e in up.playbook.entries] == [REAL_LESSON]
    assert dropped.stats["non_lessons_skipped"] == 1 and dropped.stats["entries_added"] == 1
