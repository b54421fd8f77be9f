"""The shipped task sets: sizes, checksums, and a regenerated sample that must be identical."""

from __future__ import annotations

import pymunk
import pytest

from resd_envs.bouncingsim import tasks


def test_manifest_and_sizes() -> None:
    m = tasks.manifest()
    assert m["version"] == tasks.VERSION and m["timestamps"] == [round(0.1 * k, 1) for k in range(1, 16)]
    assert tasks.check_sets() == []
    for level, sizes in tasks.TASK_SETS.items():
        for split, count in sizes.items():
            rows = tasks.load_rows(level, split)
            assert len(rows) == count
            assert {r["n_balls"] for r in rows} <= ({3} if level == "easy" else {4, 5})
    assert tasks.TASK_SETS == {"easy": {"train": 640, "test": 100}, "medium": {"train": 320, "test": 100}}


def test_ids_unique_across_splits() -> None:
    ids = [
        r["task_id"] for lv in tasks.TASK_SETS for sp in tasks.TASK_SETS[lv] for r in tasks.load_rows(lv, sp)
    ]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "level,split,index",
    [("easy", "test", 0), ("easy", "train", 639), ("medium", "test", 57), ("medium", "train", 5)],
)
def test_regenerated_rows_are_identical(level: str, split: str, index: int) -> None:
    shipped = tasks.load_rows(level, split)[index]
    fresh = tasks.make_row(level, split, index)
    assert fresh["scene"] == shipped["scene"]
    if pymunk.version == tasks.manifest()["pymunk_version"]:
        assert fresh["expected_positions"] == shipped["expected_positions"]
    else:  # another pymunk build may differ in the last digits
        flat = [
            abs(a - b)
            for fa, fb in zip(fresh["expected_positions"], shipped["expected_positions"])
            for pa, pb in zip(fa, fb)
            for a, b in zip(pa, pb)
        ]
        assert max(flat) < 1.0


def test_presets_cover_every_family_and_level() -> None:
    p = tasks.presets()
    assert {"A_basic", "C_hard", "F_extreme", "G_medium"} <= set(p) and len(p) == 30


def test_unknown_set_is_a_clear_error() -> None:
    with pytest.raises(tasks.AssetNotFoundError, match="shipped"):
        tasks.load_rows("hard", "test")
