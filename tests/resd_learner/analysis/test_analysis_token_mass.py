"""Hand-computed checks of the loss-mass statistics."""

from __future__ import annotations

import pytest

from resd_learner.analysis import token_mass as tm

IDS = [[5, 7, 5], [7, 9]]
LOSS = [[1.0, 2.0, 3.0], [4.0, 0.0]]


def test_token_mass_and_top_tokens():
    assert tm.token_mass(IDS, LOSS) == {5: (4.0, 2), 7: (6.0, 2), 9: (0.0, 1)}
    top = tm.top_tokens(IDS, LOSS, k=2, decode=lambda t: f"<{t}>")
    assert [t["id"] for t in top] == [7, 5]
    assert top[0]["share"] == pytest.approx(0.6) and top[0]["token"] == "<7>" and top[0]["mean_loss"] == 3.0
    with pytest.raises(ValueError, match="align"):
        tm.token_mass([[1, 2]], [[1.0]])


def test_mass_shift():
    shift = tm.top_mass_shift(IDS, LOSS, [[0.0, 2.0, 0.0], [9.0, 1.0]], k=3)
    assert [(s["id"], s["gain"]) for s in shift] == [(7, 5.0), (9, 1.0), (5, -4.0)]


def test_concentration_and_summary():
    # 5 positions, top 10% -> 1 position (the 4.0) of total 10.0
    assert tm.top_fraction_share(LOSS, 0.1) == pytest.approx(0.4)
    assert tm.top_fraction_share([[0.0, 0.0]]) == 0.0
    s = tm.context_summary(LOSS)
    assert s["sample_mean"] == pytest.approx((2.0 + 2.0) / 2)
    assert s["token_mean"] == pytest.approx(10.0 / 5)
    assert s["total_mass"] == pytest.approx(10.0) and s["tokens"] == 5
    with pytest.raises(ValueError):
        tm.context_summary([[]])


def test_sign_test_and_paired_comparison():
    assert tm.sign_test_p(0, 0) == 1.0
    assert tm.sign_test_p(8, 0) == pytest.approx(2 / 256)
    assert tm.sign_test_p(3, 3) == 1.0
    out = tm.paired_comparison([1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 2.0, 4.0], resamples=200, seed=0)
    assert out["mean_diff"] == pytest.approx(1.0) and out["ratio"] == pytest.approx(2.5 / 1.5)
    assert out["b_higher"] == 3 and out["b_lower"] == 0
    assert out["ci95_low"] <= 1.0 <= out["ci95_high"] and out["ci95_low"] >= 0.0
    assert out == tm.paired_comparison([1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 2.0, 4.0], resamples=200, seed=0)
    with pytest.raises(ValueError):
        tm.paired_comparison([1.0], [1.0, 2.0])
