"""Extractive lessons: feedback clauses, their schemas, and the updater's per-failure calls."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest

from resd_learner.context import ContextConfig, ContextUpdater
from resd_learner.context.extractive import (
    MAX_CANDIDATES,
    MAX_LESSON_CHARS,
    curation_schema,
    lesson_candidates,
    reflection_schema,
)
from resd_learner.context.parsing import parse_curation, parse_tags

FINER_MINI = ("No answer read: name exactly one of the candidate tags, copied exactly, inside <answer></answer> "
              "(none of the candidates was named).")


def test_clauses_split_at_sentences_labels_and_asides():
    assert lesson_candidates(FINER_MINI) == [
        "No answer read",
        "name exactly one of the candidate tags, copied exactly, inside <answer></answer>",
        "none of the candidates was named",
    ]
    text = "Test case 3 failed! The tape must end on a blue cell.\nCheck the loop exit before writing. ok."
    assert lesson_candidates(text) == ["Test case 3 failed!", "The tape must end on a blue cell",
                                       "Check the loop exit before writing"]


def test_clauses_quoting_one_task_are_not_offered():
    feedback = ('Wrong: Goodwill is not the right tag for "2.84". Input `RB` was rejected by mistake. '
                "The value 'x' is not allowed here. Don't answer with two tags at once.")
    assert lesson_candidates(feedback) == ["Don't answer with two tags at once"]


def test_finer_mini_kind_feedback_offers_its_rule_and_hides_the_value():
    # resd/FinerMini-v0 with wrong_feedback="kind": the value is quoted, the rule on kinds is general
    feedback = ('Wrong: DerivativeFixedInterestRate is not the right tag for "231,312". '
                "A number of shares needs a share-count tag, not a rate or percentage tag.")
    assert lesson_candidates(feedback) == ["A number of shares needs a share-count tag, not a rate or percentage tag"]


def test_short_long_repeated_and_empty_clauses_are_not_offered():
    assert lesson_candidates("") == [] and lesson_candidates("Wrong: no.") == []
    long_clause = "word " * (MAX_LESSON_CHARS // 5 + 1)
    assert lesson_candidates(long_clause) == []
    assert lesson_candidates("Keep it short now. Keep it short now. 12 34 56.") == ["Keep it short now"]
    many = " ".join(f"Rule number {i} holds." for i in range(20))
    assert len(lesson_candidates(many)) == MAX_CANDIDATES


def test_schemas_accept_exactly_the_candidates_and_parse():
    candidates = lesson_candidates(FINER_MINI)
    reflection = reflection_schema(candidates, ["mis-00001"], max_tokens=4096)
    good = {"key_insight": candidates[1], "bullet_tags": [{"id": "mis-00001", "tag": "helpful"}]}
    jsonschema.validate(good, reflection)
    assert parse_tags(json.dumps(good)).tags == [("mis-00001", "helpful")]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "key_insight": "the lesson"}, reflection)
    curation = curation_schema(candidates)
    add = {"operations": [{"type": "ADD", "section": "common_mistakes_to_avoid", "content": candidates[2]}]}
    jsonschema.validate(add, curation)
    jsonschema.validate({"operations": []}, curation)  # adding nothing is a valid choice
    assert [a.content for a in parse_curation(json.dumps(add)).adds] == [candidates[2]]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"operations": [{**add["operations"][0], "content": "invented"}]}, curation)
    for build in (lambda: reflection_schema([], [], max_tokens=96), lambda: curation_schema([])):
        with pytest.raises(ValueError, match="at least one lesson candidate"):
            build()


class ChoosingGenerate:
    """Fake ``generate`` that records the per-chat schemas and answers with each chat's last candidate."""

    def __init__(self):
        self.schemas = []

    def __call__(self, batch, schema=None):
        assert isinstance(schema, list) and len(schema) == len(batch)
        self.schemas.append(schema)
        out = []
        for chat_schema in schema:
            if "key_insight" in chat_schema["properties"]:
                out.append(json.dumps({"key_insight": chat_schema["properties"]["key_insight"]["enum"][-1],
                                       "bullet_tags": []}))
            else:
                content = chat_schema["properties"]["operations"]["items"]["properties"]["content"]["enum"][-1]
                out.append(json.dumps({"operations": [{"type": "ADD", "section": "common_mistakes_to_avoid",
                                                       "content": content}]}))
        return out


def test_updater_gives_each_failure_its_own_clauses_and_skips_those_without(make_sample):
    gen = ChoosingGenerate()
    config = ContextConfig(extractive_lessons=True, structured_output="auto", deduplicate=True,
                           drop_non_lessons=True, drop_template_echo=True)
    updater = ContextUpdater(config, gen, seed=0, supports_schema=True)
    samples = [make_sample("a", feedback=FINER_MINI), make_sample("b", feedback="Wrong."),
               make_sample("c", feedback="The answer must be a tag from the list."), make_sample("d", success=True)]
    update = updater.update(1, samples)
    reflect_schemas, curate_schemas = gen.schemas
    assert [s["properties"]["key_insight"]["enum"] for s in reflect_schemas] == [
        lesson_candidates(FINER_MINI), ["The answer must be a tag from the list"]]
    assert len(curate_schemas) == 2
    assert update.stats["no_lesson_candidates"] == 1 and update.reflections[1] == ""
    assert json.loads(update.reflections[0])["key_insight"] == "none of the candidates was named"
    assert [e.content for e in updater.playbook.entries] == ["none of the candidates was named",
                                                             "The answer must be a tag from the list"]


def test_lessons_come_from_the_policy_safe_feedback_and_fit_the_budget(make_sample):
    gen = ChoosingGenerate()
    budget = 48 + 15  # the JSON skeleton + 15 tokens = clauses of at most 30 characters
    updater = ContextUpdater(ContextConfig(extractive_lessons=True, max_reflection_tokens=budget), gen, seed=0,
                             supports_schema=True)
    sample = dataclasses.replace(make_sample("a", feedback="Wrong: Foo is not right. The gold is Bar now."),
                                 policy_feedback="Wrong: Foo is not right. Pick a tag from the list given above.")
    updater.update(1, [sample])
    # the privileged clause (the gold answer) is not offered; the 36-character clause does not fit
    assert gen.schemas[0][0]["properties"]["key_insight"]["enum"] == ["Foo is not right"]
    assert gen.schemas[1][0]["properties"]["operations"]["maxItems"] == 1


def test_extractive_lessons_need_schema_support():
    with pytest.raises(ValueError, match="extractive_lessons"):
        ContextConfig(extractive_lessons=True, structured_output="off")
    with pytest.raises(ValueError, match="extractive_lessons=True needs a generation backend"):
        ContextUpdater(ContextConfig(extractive_lessons=True), ChoosingGenerate(), seed=0, supports_schema=False)
