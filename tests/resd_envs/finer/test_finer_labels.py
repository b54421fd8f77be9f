"""The FiNER-139 label set and IOB id table."""

from __future__ import annotations

from resd_envs.finer.labels import IOB_TAGS, LABEL_SET, LABELS, canonical_label, closest_labels, strip_iob


def test_label_set_sizes() -> None:
    assert len(LABELS) == len(LABEL_SET) == 139
    assert len(IOB_TAGS) == len(set(IOB_TAGS)) == 279 and IOB_TAGS[0] == "O"
    assert {strip_iob(t) for t in IOB_TAGS[1:]} == LABEL_SET


def test_ids_match_the_dataset_card() -> None:
    assert IOB_TAGS[37] == "B-DebtInstrumentFaceAmount"
    assert IOB_TAGS[41] == "B-DebtInstrumentInterestRateStatedPercentage"
    assert IOB_TAGS[1] == "B-AccrualForEnvironmentalLossContingencies"


def test_strip_iob() -> None:
    assert strip_iob("B-Revenues") == strip_iob("I-Revenues") == strip_iob("Revenues") == "Revenues"
    assert strip_iob("O") == strip_iob("-") == ""


def test_canonical_and_closest() -> None:
    assert canonical_label("  longtermdebt ") == "LongTermDebt"
    assert canonical_label("LongTermDebt.") is None
    assert closest_labels("LongTermDebt.")[0] == "LongTermDebt"
    assert closest_labels("zzzz") == []
    assert canonical_label("a", ("A", "B")) == "A" and closest_labels("Bee", ("A", "Be"), n=1) == ["Be"]
