"""Tests of the rank-based checkpoint selection (paper §4.1) on hand-ranked validation logs."""

from __future__ import annotations

import json

import pytest

from resd_learner import selection as sel

M = ("val/mean@4/per_task", "val/best@4/per_task", "val/mean@4/per_test_case", "val/best@4/per_test_case")


def val(step, a, b, c, d, **extra):
    return {"step": step, "kind": "val", M[0]: a, M[1]: b, M[2]: c, M[3]: d, **extra}


def test_fractional_ranks():
    assert sel.fractional_ranks([0.2, 0.5, 0.5, 0.1]) == [2.0, 3.5, 3.5, 1.0]
    assert sel.fractional_ranks([3, 3, 3]) == [2.0, 2.0, 2.0]
    assert sel.fractional_ranks([]) == []


def test_rank_sum_by_hand():
    rows = [
        val(0, 0.10, 0.30, 0.40, 0.60),  # ranks 1, 1, 1, 1   -> 4
        val(4, 0.30, 0.50, 0.55, 0.70),  # ranks 3, 2, 3, 2   -> 10
        val(8, 0.25, 0.60, 0.50, 0.80),  # ranks 2, 3, 2, 3   -> 10 (tie; raw sum 2.15 > 2.05)
        {"step": 8, "kind": "train", "loss/distill": 1.0},
    ]
    result = sel.select_checkpoint(rows)
    totals = {c.step: c.total_rank for c in result.candidates}
    assert totals == {0: 4.0, 4: 10.0, 8: 10.0}
    assert result.best.step == 8  # tie on ranks, larger raw sum
    assert result.metrics == (M[0], M[1], M[2], M[3])


def test_tie_on_everything_goes_to_earlier_step():
    rows = [val(0, 0.1, 0.1, 0.1, 0.1), val(4, 0.5, 0.5, 0.5, 0.5), val(8, 0.5, 0.5, 0.5, 0.5)]
    result = sel.select_checkpoint(rows)
    assert [c.total_rank for c in result.candidates] == [4.0, 10.0, 10.0]  # 2.5 each for the tied pair
    assert result.best.step == 4


def test_rank_rule_differs_from_best_single_metric():
    # step 8 wins mean@4/per_task alone, but step 4 is better on the other three metrics
    rows = [val(0, 0.1, 0.2, 0.2, 0.2), val(4, 0.3, 0.9, 0.9, 0.9), val(8, 0.4, 0.3, 0.3, 0.3)]
    assert sel.select_checkpoint(rows).best.step == 4


def test_repeated_step_last_row_wins_and_bad_rows_are_skipped():
    rows = [
        val(0, 0.9, 0.9, 0.9, 0.9),
        val(0, 0.0, 0.0, 0.0, 0.0),  # resumed run re-logged step 0
        val(4, 0.5, 0.5, 0.5, 0.5),
        {"step": 8, "kind": "val", M[0]: 1.0},  # missing metrics
        val(12, float("nan"), 1, 1, 1),
        val("x", 1, 1, 1, 1),
    ]
    result = sel.select_checkpoint(rows)
    assert [c.step for c in result.candidates] == [0, 4]
    assert result.best.step == 4
    reasons = " ".join(s["reason"] for s in result.skipped)
    assert "missing" in reasons and "not finite" in reasons and "not an integer" in reasons


def test_custom_metrics_and_errors():
    rows = [val(0, 0.1, 0.9, 0, 0), val(4, 0.2, 0.1, 0, 0)]
    assert sel.select_checkpoint(rows, [M[1]]).best.step == 0
    with pytest.raises(ValueError, match="no validation rows"):
        sel.select_checkpoint([{"step": 0, "kind": "train"}])
    with pytest.raises(ValueError, match="no validation metric"):
        sel.select_checkpoint([{"step": 0, "kind": "val", "val/other": 1}])
    with pytest.raises(ValueError, match="several sample counts"):
        sel.select_checkpoint([{"step": 0, "kind": "val", "val/mean@4/per_task": 1, "val/mean@8/per_task": 1}])
    with pytest.raises(ValueError, match="no validation row has all"):
        sel.select_checkpoint([{"step": 0, "kind": "val", M[0]: 1}], M)


def test_select_from_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints" / "step_4").mkdir(parents=True)
    (run / "checkpoints" / "step_8").mkdir(parents=True)
    lines = [val(0, 0.1, 0.1, 0.1, 0.1), val(4, 0.2, 0.2, 0.2, 0.2), val(8, 0.1, 0.3, 0.1, 0.1), val(12, 0.9, 0.9, 0.9, 0.9)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n{truncated")
    result = sel.select_from_run(run)
    assert result.best.step == 12 and result.best.checkpoint is None
    saved = sel.select_from_run(run, only_saved=True)
    assert saved.best.step == 4 and saved.best.checkpoint == run / "checkpoints" / "step_4"
    assert sel.main([str(run), "--only-saved"]) == 0
    assert "selected step 4" in capsys.readouterr().out
    assert sel.main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
