"""Robust parsing of reflector / curator outputs: nothing malformed raises, everything is reported."""

from __future__ import annotations

from resd_learner.context.parsing import (
    cap_middle,
    extract_json_object,
    parse_curation,
    parse_tags,
    strip_thinking,
)


def test_strip_thinking_keeps_text_after_first_close_tag():
    assert strip_thinking("<think>plan</think>\n answer ") == "answer"
    assert strip_thinking("a</think>b</think>c") == "b</think>c"
    assert strip_thinking("<think>cut off while thinking") == "<think>cut off while thinking"
    assert strip_thinking(None) == ""  # type: ignore[arg-type]


def test_extract_json_from_whole_fenced_and_prose():
    assert extract_json_object('{"a": 1}') == {"a": 1}
    assert extract_json_object('Here:\n```json\n{"a": 2}\n```\nthanks') == {"a": 2}
    assert extract_json_object('Sure! The result is {"a": "x } y", "b": {"c": 3}} done') == {
        "a": "x } y",
        "b": {"c": 3},
    }
    # a first brace group that is not JSON is skipped in favour of a later one
    assert extract_json_object('set {x} then {"a": 4}') == {"a": 4}


def test_extract_json_rejects_truncated_lists_and_prose():
    assert extract_json_object('{"a": 1, "b": [1, 2') is None
    assert extract_json_object("[1, 2, 3]") is None
    assert extract_json_object("no json here at all") is None
    assert extract_json_object("") is None


def test_parse_tags_valid_and_normalised():
    out = parse_tags(
        '{"bullet_tags": [{"id": "sai-00001", "tag": "Helpful"}, {"id": "err-00002", "tag": "harmful"}]}'
    )
    assert out.ok and out.tags == [("sai-00001", "helpful"), ("err-00002", "harmful")]
    assert parse_tags('{"reasoning": "x"}').tags == []  # missing key = no tags, not an error
    assert parse_tags('{"reasoning": "x"}').ok


def test_parse_tags_wrong_types_are_counted_not_raised():
    out = parse_tags(
        '{"bullet_tags": [{"id": 3, "tag": "helpful"}, "sai-1", {"id": "a-1", "tag": "great"},'
        ' {"id": "b-2", "tag": "neutral"}]}'
    )
    assert out.ok and out.tags == [("b-2", "neutral")] and out.invalid_items == 3
    bad = parse_tags('{"bullet_tags": "sai-00001 helpful"}')
    assert not bad.ok and "expected a list" in bad.error


def test_parse_tags_regex_fallback_on_truncated_json():
    text = (
        '{"reasoning": "long", "bullet_tags": [{"id": "sai-00001", "tag": "helpful"}, '
        '{"tag": "harmful", "id": "err-00002"}, {"id": "x'
    )
    out = parse_tags(text)
    assert out.ok and out.used_fallback
    assert sorted(out.tags) == [("err-00002", "harmful"), ("sai-00001", "helpful")]


def test_parse_tags_prose_empty_and_sentinel_are_errors():
    assert "no JSON" in parse_tags("The attempt failed because of a loop.").error
    assert parse_tags("").error == "empty output"
    assert (
        "INCORRECT_DUE_TO_EMPTY_RESPONSE"
        in parse_tags('INCORRECT_DUE_TO_EMPTY_RESPONSE {"bullet_tags": []}').error
    )


def test_parse_curation_valid_fenced_and_ignored_ops():
    text = (
        '```json\n{"reasoning": "r", "operations": [{"type": "ADD", "section": "others", "content": "c1"},'
        ' {"type": "DELETE", "id": "sai-00001"}, {"type": "add", "section": "x", "content": "c2"}]}\n```'
    )
    out = parse_curation(text)
    assert out.ok and [a.content for a in out.adds] == ["c1", "c2"] and out.ignored_ops == 1
    assert parse_curation('{"reasoning": "nothing new", "operations": []}').adds == []


def test_parse_curation_violations_drop_the_whole_output():
    cases = {
        # truncated
        '{"reasoning": "r", "operations": [{"type": "ADD", "section": "x", "content": "ok"}': "no JSON",
        "I would add a lesson about loops.": "no JSON",
        '{"reasoning": "r", "operations": {"type": "ADD"}}': "expected a list",
        '{"reasoning": ["r"], "operations": []}': "reasoning",
        '{"operations": [{"section": "x", "content": "c"}]}': "string 'type'",
        '{"operations": [{"type": "ADD", "section": "x", "content": 5}]}': "needs string",
        '{"operations": [{"type": "ADD", "section": "x", "content": "ok"}, {"type": "ADD"}]}': "needs string",
        "INCORRECT_DUE_TO_EMPTY_RESPONSE": "INCORRECT_DUE_TO_EMPTY_RESPONSE",
        "   ": "empty",
    }
    for text, fragment in cases.items():
        out = parse_curation(text)
        assert not out.ok and out.adds == [] and fragment in out.error, (text, out.error)


def test_cap_middle_keeps_head_and_tail():
    text = "a" * 50 + "b" * 50
    capped = cap_middle(text, 20)
    assert capped.startswith("a" * 10) and capped.endswith("b" * 10) and "80 characters omitted" in capped
    assert cap_middle(text, 0) == text and cap_middle("short", 20) == "short"
