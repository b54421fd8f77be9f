"""Schema-constrained context generation: the schemas, the auto/on/off rule and what the updater sends."""

from __future__ import annotations

import json

import jsonschema
import pytest

from resd_learner.context import ContextConfig, ContextUpdater
from resd_learner.context import extractive
from resd_learner.context.parsing import parse_curation, parse_tags
from resd_learner.context.schemas import (
    MAX_OPERATIONS,
    MAX_TAGS,
    TAG_TOKENS,
    pattern_chars,
    curation_schema,
    field_chars,
    generation_cap,
    reflection_schema,
    success_tag_schema,
    tag_slots,
    use_structured_output,
    worst_case_bytes,
    worst_case_tokens,
)

REFLECTION = {"reasoning": "r", "error_identification": "e", "root_cause_analysis": "c",
              "correct_approach": "a", "key_insight": "k", "bullet_tags": [{"id": "mis-00001", "tag": "harmful"}]}
CURATION = {"reasoning": "new", "operations": [{"type": "ADD", "section": "common_mistakes_to_avoid",
                                                "content": "Check the tape end."}]}


def test_mode_rule():
    assert use_structured_output("auto", backend_supports=True)
    assert not use_structured_output("auto", backend_supports=False)
    assert not use_structured_output("off", backend_supports=True)
    assert use_structured_output("on", backend_supports=True)
    with pytest.raises(ValueError, match="structured_output=on"):
        use_structured_output("on", backend_supports=False)
    with pytest.raises(ValueError, match="unknown"):
        use_structured_output("yes", backend_supports=True)
    with pytest.raises(ValueError, match="structured_output"):
        ContextConfig(structured_output="sometimes")


def test_field_lengths_follow_the_token_budget():
    assert field_chars(48 + 100, 5) == 40
    assert field_chars(10, 5) == 8  # never below the minimum
    assert field_chars(10**6, 1) == 2000  # never above the maximum


def test_schemas_accept_what_the_parsers_accept_and_reject_other_shapes():
    schema = reflection_schema(["mis-00001", "str-00002"], max_tokens=4096)
    jsonschema.validate(REFLECTION, schema)
    assert parse_tags(json.dumps(REFLECTION)).tags == [("mis-00001", "harmful")]
    for bad in ({**REFLECTION, "bullet_tags": [{"id": "made-up", "tag": "helpful"}]},
                {**REFLECTION, "bullet_tags": [{"id": "mis-00001", "tag": "great"}]},
                {k: v for k, v in REFLECTION.items() if k != "key_insight"},
                {**REFLECTION, "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    empty_playbook = reflection_schema([], max_tokens=4096)
    jsonschema.validate({**REFLECTION, "bullet_tags": []}, empty_playbook)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(REFLECTION, empty_playbook)
    jsonschema.validate({"reasoning": "x", "bullet_tags": []}, success_tag_schema(["a"], max_tokens=100))
    short = success_tag_schema([], max_tokens=48 + 10)  # 20 characters of reasoning
    for bad_text in ("x" * 21, "line\nbreak", 'a "quote"', "back\\slash"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"reasoning": bad_text, "bullet_tags": []}, short)
    jsonschema.validate({"reasoning": "x" * 20, "bullet_tags": []}, short)
    cur = curation_schema(max_tokens=4096)
    jsonschema.validate(CURATION, cur)
    assert [a.content for a in parse_curation(json.dumps(CURATION)).adds] == ["Check the tape end."]
    too_many = {"reasoning": "", "operations": CURATION["operations"] * (MAX_OPERATIONS + 1)}
    for bad in (too_many, {"reasoning": "", "operations": [{**CURATION["operations"][0], "type": "DELETE"}]},
                {"reasoning": "", "operations": [{**CURATION["operations"][0], "section": "nowhere"}]},
                {"reasoning": "", "operations": [{**CURATION["operations"][0], "content": " blank start"}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, cur)


def test_tags_take_at_most_half_the_budget_and_the_text_fields_share_the_rest():
    ids = [f"err-{i:05d}" for i in range(1, 14)]
    assert tag_slots(ids, 4096) == 13 and tag_slots([f"e{i}" for i in range(30)], 4096) == MAX_TAGS == 16
    assert tag_slots([], 4096) == 0
    assert tag_slots(ids, 96) == 1 and tag_slots(ids, 48 + 2 * TAG_TOKENS - 1) == 0
    small = reflection_schema(ids, max_tokens=96)
    assert small["properties"]["bullet_tags"]["maxItems"] == 1
    assert small["properties"]["key_insight"]["pattern"].endswith(f"{{0,{field_chars(96 - TAG_TOKENS, 5)}}}$")
    tagger = success_tag_schema(ids, max_tokens=96)
    assert tagger["properties"]["bullet_tags"]["maxItems"] == 1
    # an empty playbook leaves the whole budget to the text (the schemas of earlier runs are unchanged)
    assert reflection_schema([], max_tokens=96)["properties"]["key_insight"]["pattern"].endswith(
        f"{{0,{field_chars(96, 5)}}}$")


class SchemaRecorder:
    """A generate callable that accepts ``schema=`` and answers with a fixed valid JSON per kind."""

    def __init__(self):
        self.schemas = []

    def __call__(self, batch, schema=None):
        self.schemas.append(schema)
        text = batch[0][-1]["content"]
        answer = CURATION if "=== PLAYBOOK STATISTICS ===" in text else {**REFLECTION, "bullet_tags": []}
        return [json.dumps(answer)] * len(batch)


@pytest.mark.parametrize("mode,supports,expect", [("auto", True, True), ("auto", False, False),
                                                  ("off", True, False), ("on", True, True)])
def test_updater_sends_schemas_only_when_structured(make_sample, mode, supports, expect):
    gen = SchemaRecorder()
    updater = ContextUpdater(ContextConfig(structured_output=mode, max_reflection_tokens=300), gen, seed=0,
                             supports_schema=supports)
    assert updater.structured is expect
    update = updater.update(1, [make_sample("a"), make_sample("b")])
    assert update.stats["reflections_malformed"] == 0 and update.stats["entries_added"] == 2  # no dedup (official)
    assert len(gen.schemas) == 2  # reflect, curate
    if expect:
        assert gen.schemas[0]["required"][-1] == "bullet_tags" and "operations" in gen.schemas[1]["properties"]
        assert gen.schemas[0]["properties"]["reasoning"]["pattern"].endswith(f"{{0,{field_chars(300, 5)}}}$")
    else:
        assert gen.schemas == [None, None]


def test_updater_refuses_on_without_support():
    with pytest.raises(ValueError, match="structured_output=on"):
        ContextUpdater(ContextConfig(structured_output="on"), SchemaRecorder(), seed=0)


def test_success_tag_schema_lists_current_playbook_ids(make_sample):
    gen = SchemaRecorder()
    updater = ContextUpdater(ContextConfig(structured_output="on"), gen, seed=0, supports_schema=True)
    updater.update(1, [make_sample("a")])
    ids = [e.id for e in updater.playbook.entries]
    updater.update(2, [make_sample("a", success=True)])
    tag_schema = gen.schemas[-1]
    assert tag_schema["properties"]["bullet_tags"]["items"]["properties"]["id"]["enum"] == sorted(ids)


def _longest(schema: dict) -> object:
    """The longest instance of a schema built by this module (every string at its bound, arrays full)."""
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v)))
    if schema["type"] == "string":
        return "<" * pattern_chars(schema["pattern"])
    if schema["type"] == "array":
        items = schema["maxItems"]
        return [_longest(schema["items"]) for _ in range(items)] if items else []
    return {key: _longest(sub) for key, sub in schema["properties"].items()}


@pytest.mark.parametrize("ids", [[], ["err-00001"], [f"mis-{i:05d}" for i in range(40)]])
@pytest.mark.parametrize("budget", [32, 96, 512])
def test_worst_case_is_the_longest_text_the_schema_admits(ids, budget):
    # SmolLM2-135M filled fields with "<<<<" (one character per token) and ran past a 96-token cap,
    # leaving unparseable JSON; the cap of a constrained call is raised to this bound
    lesson = "A number of shares needs a share-count tag, not a rate or percentage tag"
    for schema in (reflection_schema(ids, max_tokens=budget), success_tag_schema(ids, max_tokens=budget),
                   curation_schema(max_tokens=budget), extractive.reflection_schema([lesson, "é is fine here"], ids,
                                                                                    max_tokens=budget),
                   extractive.curation_schema([lesson])):
        longest = _longest(schema)
        jsonschema.validate(longest, schema)
        text = json.dumps(longest, separators=(",", ":"), ensure_ascii=False)
        assert worst_case_bytes(schema) >= len(text.encode())
        assert worst_case_bytes(schema) - len(text.encode()) <= 2  # tight: at most an escaped é more
        assert worst_case_tokens(schema) == worst_case_bytes(schema) + 1


def test_unbounded_schemas_have_no_worst_case_and_keep_the_budget():
    assert worst_case_bytes({"type": "string"}) is None
    assert worst_case_bytes({"type": "array", "items": {"type": "string", "enum": ["a"]}}) is None
    assert worst_case_bytes({"type": "object", "properties": {}}) is None  # open to other keys
    assert pattern_chars("^[a-z]+$") is None and pattern_chars("^[a-z]{0,4}x$") is None
    bounded = curation_schema(max_tokens=96)
    assert generation_cap(96, [bounded, bounded]) == worst_case_tokens(bounded) > 96
    assert generation_cap(96, [bounded, None]) == 96 and generation_cap(96, []) == 96
    assert generation_cap(4096, [bounded]) == 4096 and generation_cap(0, [None]) == 1
