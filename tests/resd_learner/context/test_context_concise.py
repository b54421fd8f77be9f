"""Concise strategies and triggers (paper Appendix D), hand-computed cases."""

from __future__ import annotations

import random

import pytest

from resd_learner.context.concise import check_triggers, concise
from resd_learner.context.playbook import Playbook


def build(rows):
    """rows: (name, helpful, harmful, last_used) → playbook whose entry contents are the names."""
    pb = Playbook()
    for name, h, x, last in rows:
        e = pb.add("others", name, step=0, update=0)
        e.helpful, e.harmful, e.last_used = h, x, last
    return pb


def names(pb):
    return sorted(e.content for e in pb.entries)


ROWS = [  # name, helpful, harmful, last_used
    ("A", 2, 0, 1),  # helpful
    ("B", 0, 0, 4),  # unused, fresh at update 5 (5-4 = 1)
    ("C", 1, 1, 5),  # harmful (tie)
    ("D", 0, 3, 5),  # harmful
    ("E", 3, 1, 2),  # helpful
    ("F", 0, 0, 3),  # unused, stale at update 5 (5-3 = 2)
    ("G", 4, 0, 3),  # helpful
]


def test_prioritized_without_budget_keeps_only_helpful():
    pb = build(ROWS)
    removed = concise(pb, method="prioritized", update=5, budget=None, rng=random.Random(0))
    assert names(pb) == ["A", "E", "G"]
    assert sorted((r.entry.content, r.category, r.reason) for r in removed) == [
        ("B", "unused", "concise:prioritized"),
        ("C", "harmful", "concise:prioritized"),
        ("D", "harmful", "concise:prioritized"),
        ("F", "unused", "concise:prioritized"),
    ]


def test_prioritized_budget_drops_helpful_uniformly_at_random_seeded():
    survivors = set()
    for seed in range(20):
        pb = build(ROWS)
        removed = concise(pb, method="prioritized", update=5, budget=2, rng=random.Random(seed))
        assert len(pb) == 2 and set(names(pb)) <= {"A", "E", "G"}
        assert sum(r.reason == "budget" for r in removed) == 1
        again = build(ROWS)
        concise(again, method="prioritized", update=5, budget=2, rng=random.Random(seed))
        assert names(again) == names(pb)  # same seed, same choice
        survivors.add(tuple(names(pb)))
    assert len(survivors) > 1  # the choice does depend on the RNG


def test_prioritized_budget_not_binding_is_deterministic():
    pb = build(ROWS)
    concise(pb, method="prioritized", update=5, budget=3, rng=random.Random(0))
    assert names(pb) == ["A", "E", "G"]


def test_staleness_without_budget_keeps_fresh_unused():
    pb = build(ROWS)
    removed = concise(pb, method="staleness", update=5, budget=None, rng=random.Random(0))
    assert names(pb) == ["A", "B", "E", "G"]
    assert sorted((r.entry.content, r.category) for r in removed) == [
        ("C", "harmful"),
        ("D", "harmful"),
        ("F", "stale"),
    ]
    assert {r.reason for r in removed} == {"concise:staleness"}


def test_staleness_budget_evicts_longest_unused_first():
    # survivors A(1) B(4) E(2) G(3): budget 2 evicts A (last used 1) then E (2)
    pb = build(ROWS)
    removed = concise(pb, method="staleness", update=5, budget=2, rng=random.Random(0))
    assert names(pb) == ["B", "G"]
    assert [r.entry.content for r in removed if r.reason == "budget"] == ["A", "E"]


def test_staleness_ties_are_broken_by_the_rng_only_among_tied():
    rows = [("A", 1, 0, 2), ("B", 1, 0, 2), ("C", 1, 0, 3), ("D", 1, 0, 3), ("E", 1, 0, 4)]
    seen = set()
    for seed in range(20):
        pb = build(rows)
        concise(pb, method="staleness", update=5, budget=2, rng=random.Random(seed))
        kept = names(pb)
        assert "E" in kept and kept[0] in ("C", "D") and len(kept) == 2
        seen.add(tuple(kept))
    assert seen == {("C", "E"), ("D", "E")}


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="staleness"):
        concise(Playbook(), method="reset", update=0, budget=None, rng=random.Random(0))


@pytest.mark.parametrize(
    "update, size, expected",
    [
        (0, 1, (False, False)),  # update 0 never triggers the frequency rule
        (4, 1, (True, False)),
        (8, 1, (True, False)),
        (5, 1, (False, False)),
        (5, 4, (False, True)),  # 4 entries > budget 3
        (4, 3, (True, False)),  # exactly at budget: no limit trigger
    ],
)
def test_triggers(update, size, expected):
    pb = build([(str(i), 1, 0, 0) for i in range(size)])
    trig = check_triggers(pb, update=update, frequency=4, budget=3)
    assert (trig.frequency, trig.limit) == expected
    assert trig.fired == any(expected)


def test_frequency_zero_disables_frequency_trigger():
    assert not check_triggers(Playbook(), update=4, frequency=0, budget=3).fired
