"""Tests of resd_learner.rebalance.success_rate_weights on hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from resd_learner.rebalance import success_rate_weights


def test_all_succeed_gives_ones():
    assert torch.equal(success_rate_weights([1.0, 1.0, 1.0, 1.0], threshold=0.5), torch.ones(4))


def test_all_fail_gives_ones():
    assert torch.equal(success_rate_weights([0.0, 0.0, 0.0], threshold=0.5), torch.ones(3))


def test_one_of_four_succeeds():
    # sr = 1/4: success raw 0.75, failure raw 0.25, mean 0.375 -> 2 and 2/3; each class carries half.
    weights = success_rate_weights([0.0, 1.0, 0.0, 0.0], threshold=0.5)
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 2.0, 2 / 3, 2 / 3]))
    assert weights.dtype == torch.float32
    assert weights[1].item() == pytest.approx(weights[[0, 2, 3]].sum().item())


def test_threshold_is_inclusive_and_dense_rewards_need_full_score():
    # reward == threshold succeeds
    torch.testing.assert_close(success_rate_weights([0.5, 0.0], threshold=0.5), torch.tensor([1.0, 1.0]))
    # Finer: 0.75 (3 of 4 tags) is a failure at threshold 1.0; sr = 1/4 again
    weights = success_rate_weights([0.75, 1.0, 0.25, 0.0], threshold=1.0)
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 2.0, 2 / 3, 2 / 3]))
    # at threshold 0.5 the same batch has 2 successes of 4 -> all ones
    torch.testing.assert_close(success_rate_weights([0.75, 1.0, 0.25, 0.0], threshold=0.5), torch.ones(4))


def test_three_of_four_succeed_amplifies_the_failure():
    weights = success_rate_weights([1, 1, 0, 1], threshold=0.5)
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 2 / 3, 2.0, 2 / 3]))


def test_exponents_hand_computed():
    # sr = 1/4, alpha = 2, beta = 0: success raw 0.5625, failure raw 1; mean 0.890625
    weights = success_rate_weights([1.0, 0.0, 0.0, 0.0], threshold=0.5, alpha=2.0, beta=0.0)
    torch.testing.assert_close(weights, torch.tensor([0.5625, 1.0, 1.0, 1.0]) / 0.890625)
    # alpha = beta = 0 turns rebalancing off
    off = success_rate_weights([1.0, 0.0, 0.0], threshold=0.5, alpha=0.0, beta=0.0)
    assert torch.equal(off, torch.ones(3))


@pytest.mark.parametrize("rewards", [[1, 0], [0, 0, 0, 0, 0, 1, 1, 0], [0.3] * 7 + [0.9], list(range(32))])
def test_mean_is_one(rewards):
    weights = success_rate_weights(rewards, threshold=0.5)
    assert weights.mean().item() == pytest.approx(1.0, abs=1e-6)
    assert (weights > 0).all()


def test_single_sample_and_tensor_input():
    assert torch.equal(success_rate_weights([0.0], threshold=0.5), torch.ones(1))
    weights = success_rate_weights(torch.tensor([True, False, False, False]), threshold=0.5)
    torch.testing.assert_close(weights, torch.tensor([2.0, 2 / 3, 2 / 3, 2 / 3]))


@pytest.mark.parametrize("rewards, kwargs, message", [
    ([], {}, "non-empty"),
    ([[1.0, 0.0]], {}, "1-D"),
    ([1.0, float("nan")], {}, "finite"),
    ([1.0, 0.0], {"alpha": -1.0}, ">= 0"),
    ([1.0, 0.0], {"threshold": float("nan")}, "threshold"),
])
def test_bad_input_raises(rewards, kwargs, message):
    kwargs = {"threshold": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        success_rate_weights(rewards, **kwargs)
