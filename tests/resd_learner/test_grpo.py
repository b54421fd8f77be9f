"""Tests of resd_learner.grpo against hand-computed advantages and clipped losses."""

from __future__ import annotations

import math

import pytest
import torch

from resd_learner.grpo import clip_fractions, clipped_policy_loss, group_advantages
from resd_learner.loss import aggregate_loss


def test_group_advantages_hand_computed():
    # group 1: mean 0.25, unbiased std 0.5; group 2: identical rewards -> zeros
    adv = group_advantages([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0], 4)
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25]) / (0.5 + 1e-6)
    torch.testing.assert_close(adv[:4], expected)
    assert torch.equal(adv[4:], torch.zeros(4))


def test_group_advantages_without_std_and_dense_rewards():
    adv = group_advantages(torch.tensor([0.25, 0.75, 1.0, 0.0]), 2, normalize_std=False)
    torch.testing.assert_close(adv, torch.tensor([-0.25, 0.25, 0.5, -0.5]))
    adv = group_advantages([0.0, 1.0], 2, eps=0.0 + 1e-12)
    torch.testing.assert_close(adv, torch.tensor([-1 / math.sqrt(2), 1 / math.sqrt(2)]))


def test_group_of_one_keeps_raw_reward():
    torch.testing.assert_close(group_advantages([0.0, 1.0, 0.5], 1), torch.tensor([0.0, 1.0, 0.5]))


@pytest.mark.parametrize("rewards, size, message", [
    ([1.0, 0.0, 1.0], 2, "groups of 2"),
    ([1.0, 0.0], 0, "group_size"),
    ([], 1, "non-empty"),
    ([1.0, float("inf")], 2, "finite"),
])
def test_group_advantages_bad_input(rewards, size, message):
    with pytest.raises(ValueError, match=message):
        group_advantages(rewards, size)


def _case(ratios, advantages):
    old = torch.zeros(len(ratios), 1)
    logprobs = torch.tensor([[math.log(r)] for r in ratios], requires_grad=True)
    return logprobs, old, torch.tensor(advantages), torch.ones(len(ratios), 1)


def test_clipped_policy_loss_hand_computed():
    ratios = [1.5, 0.5, 1.5, 5.0, 0.5, 1.1]
    advantages = [1.0, 1.0, -1.0, -1.0, -1.0, 2.0]
    logprobs, old, adv, mask = _case(ratios, advantages)
    loss = clipped_policy_loss(logprobs, old, adv, mask)
    # A>0, r=1.5 -> clipped at 1.28; A>0, r=0.5 -> -0.5 (unclipped is larger); A<0, r=1.5 -> 1.5;
    # A<0, r=5 -> dual clip 3; A<0, r=0.5 -> clipped at 0.8; A=2, r=1.1 inside the band -> -2.2
    expected = torch.tensor([[-1.28], [-0.5], [1.5], [3.0], [0.8], [-2.2]])
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss.sum(), logprobs)
    # d/dlogp of -A * ratio is -A * ratio where unclipped, 0 where a clip is active
    torch.testing.assert_close(grad, torch.tensor([[0.0], [-0.5], [1.5], [0.0], [0.0], [-2.2]]))


def test_dual_clip_off_and_custom_bounds():
    logprobs, old, adv, mask = _case([5.0, 1.5], [-1.0, 1.0])
    loss = clipped_policy_loss(logprobs, old, adv, mask, dual_clip=None, clip_low=0.1, clip_high=0.1)
    torch.testing.assert_close(loss, torch.tensor([[5.0], [-1.1]]))


def test_mask_and_token_advantages_and_aggregation():
    logprobs = torch.log(torch.tensor([[1.0, 1.5, 2.0], [1.0, 1.0, 1.0]]))
    old = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    per_token = clipped_policy_loss(logprobs, old, torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, -2.0]]), mask)
    torch.testing.assert_close(per_token, torch.tensor([[-1.0, -1.28, 0.0], [2.0, 0.0, 0.0]]))
    assert aggregate_loss(per_token, mask, mode="token-mean").item() == pytest.approx((-1.0 - 1.28 + 2.0) / 3)
    assert aggregate_loss(per_token, mask).item() == pytest.approx(((-2.28 / 2) + 2.0) / 2)


def test_clip_fractions():
    logprobs, old, adv, mask = _case([1.5, 0.5, 5.0, 1.0], [1.0, 1.0, -1.0, 1.0])
    stats = clip_fractions(logprobs, old, adv, mask)
    assert stats == {"clip_frac": pytest.approx(0.25), "dual_clip_frac": pytest.approx(0.25)}


@pytest.mark.parametrize("kwargs, message", [
    ({"clip_low": 1.0}, "clip_low"),
    ({"clip_high": -0.1}, "clip_high"),
    ({"dual_clip": 0.5}, "dual_clip"),
])
def test_bad_clip_settings(kwargs, message):
    logprobs, old, adv, mask = _case([1.0], [1.0])
    with pytest.raises(ValueError, match=message):
        clipped_policy_loss(logprobs, old, adv, mask, **kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match="advantages"):
        clipped_policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="old_logprobs"):
        clipped_policy_loss(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2), torch.ones(2, 3))
