"""Playbook entries, ids, sections, tagging, rendering, stats and persistence."""

from __future__ import annotations

import json

import pytest

from resd_learner.context.playbook import Playbook, clean_content, dedup_key, normalize_section


def test_ids_use_section_slugs_and_one_global_counter_never_reused():
    pb = Playbook()
    a = pb.add("STRATEGIES & INSIGHTS", "plan first", step=3, update=0)
    b = pb.add("common mistakes to avoid", "do not loop", step=3, update=0)
    pb.remove(b.id)
    c = pb.add("code", "template", step=4, update=1)
    assert (a.id, b.id, c.id) == ("sai-00001", "err-00002", "code-00003")
    assert (a.created_step, a.created_update, a.last_used) == (3, 0, 0)
    assert (c.helpful, c.harmful) == (0, 0)


@pytest.mark.parametrize(
    "name, key",
    [
        ("Formulas & Calculations", "formulas_and_calculations"),
        ("problem-solving heuristics", "problem_solving_heuristics"),
        ("context_clues_and_indicators", "context_clues_and_indicators"),
        ("err", "common_mistakes_to_avoid"),
        ("mistakes", "common_mistakes_to_avoid"),
        ("Strategies", "strategies_and_insights"),
        ("and", "others"),  # matches several sections: ambiguous
        ("Something else", "others"),
        ("", "others"),
    ],
)
def test_section_names_are_normalised(name, key):
    assert normalize_section(name) == key


def test_content_is_one_line_without_copied_ids():
    assert clean_content("[sai-00007] helpful=3 harmful=1 :: Check\n  the   tape") == "Check the tape"
    assert clean_content("x-2 is a valid start") == "x-2 is a valid start"
    assert dedup_key("Check the **tape** first!") == dedup_key("check the tape first")
    assert dedup_key("check the tape first") != dedup_key("check the tape last")


def test_tagging_updates_counts_and_last_used():
    pb = Playbook()
    e = pb.add("others", "x", step=0, update=0)
    assert pb.tag(e.id, "helpful", update=2) is e and (e.helpful, e.harmful, e.last_used) == (1, 0, 2)
    assert pb.tag(e.id, "harmful", update=5) is e and (e.helpful, e.harmful, e.last_used) == (1, 1, 5)
    assert pb.tag(e.id, "neutral", update=9) is None and e.last_used == 5
    assert pb.tag("sai-99999", "helpful", update=9) is None


def test_render_shows_headers_ids_and_counts_in_section_order():
    pb = Playbook()
    assert pb.render() == ""
    pb.add("others", "misc lesson", step=0, update=0)
    e = pb.add("strategies", "top lesson", step=0, update=0)
    pb.tag(e.id, "helpful", update=0)
    text = pb.render()
    assert text.index("## STRATEGIES & INSIGHTS") < text.index(
        "[sai-00002] helpful=1 harmful=0 :: top lesson"
    )
    assert (
        text.index("[sai-00002]")
        < text.index("## OTHERS")
        < text.index("[misc-00001] helpful=0 harmful=0 :: misc lesson")
    )
    assert text.count("## ") == 7
    assert [x.id for x in pb.entries] == ["sai-00002", "misc-00001"]
    assert "misc lesson" in pb.to_markdown()


def test_stats_for_curator():
    pb = Playbook()
    rows = [("sai", 6, 1), ("sai", 6, 2), ("err", 1, 1), ("err", 0, 0), ("calc", 2, 0)]
    for section, h, x in rows:
        e = pb.add(section, f"lesson {len(pb)}", step=0, update=0)
        e.helpful, e.harmful = h, x
    stats = pb.stats()
    assert stats["total"] == 5
    assert stats["high_performing"] == 1  # only (6, 1)
    assert stats["problematic"] == 1  # (1, 1) tie counts as harmful
    assert stats["unused"] == 1
    assert stats["by_section"]["strategies_and_insights"] == {"count": 2, "helpful": 12, "harmful": 3}
    assert stats["by_section"]["others"] == {"count": 0, "helpful": 0, "harmful": 0}


def test_state_round_trip_through_json():
    pb = Playbook()
    pb.add("others", "a", step=1, update=0)
    pb.tag(pb.add("err", "b", step=2, update=1).id, "harmful", update=1)
    clone = Playbook()
    clone.load_state_dict(json.loads(json.dumps(pb.state_dict())))
    assert clone.render() == pb.render() and clone.next_id == 3
    assert clone.add("others", "c", step=3, update=2).id == "misc-00003"
    with pytest.raises(ValueError, match="malformed"):
        clone.load_state_dict({"entries": [{"id": "x"}]})
    with pytest.raises(ValueError, match="unknown section"):
        clone.load_state_dict({"next_id": 2, "entries": [{"id": "x-1", "section": "nope", "content": "c"}]})
    with pytest.raises(ValueError, match="non-empty"):
        clone.add("others", "  \n ", step=0, update=0)
