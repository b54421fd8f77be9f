"""Tests of resd_learner.loss: divergences, top-k + tail, ratio clip, chunking, aggregation."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from resd_learner.loss import (
    DIVERGENCES,
    LossConfig,
    aggregate_loss,
    chunked_f_divergence_loss,
    divergence_from_alpha,
    f_divergence_loss,
    rollout_correction_weights,
    target_logprobs,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _naive_loss(student, teacher, mask, *, divergence, jsd_beta=0.5, top_k=None, add_tail=True,
                ratio_clip_low=None, ratio_clip_high=None, temperature=1.0, topk_source="student"):
    """Position-by-position float64 implementation of the documented definition (differentiable)."""
    batch, tokens, vocab = student.shape
    rows = []
    for b in range(batch):
        row = []
        for t in range(tokens):
            if mask[b, t] == 0:
                row.append(torch.zeros((), dtype=torch.float64))
                continue
            p = torch.softmax(student[b, t].double() / temperature, dim=0)
            q = torch.softmax(teacher[b, t].double() / temperature, dim=0)
            if top_k is not None and top_k < vocab:
                chooser = student if topk_source == "student" else teacher
                ids = sorted(range(vocab), key=lambda v: -chooser[b, t, v].item())[:top_k]
                p_s, q_s = p[ids], q[ids]
                if add_tail:
                    cap = math.exp(-1e-7)
                    p_s = torch.cat([p_s, (1 - torch.clamp(p_s.sum(), max=cap)).reshape(1)])
                    q_s = torch.cat([q_s, (1 - torch.clamp(q_s.sum(), max=cap)).reshape(1)])
            else:
                p_s, q_s = p, q
            anchor = p_s.detach()
            if ratio_clip_low is not None:
                q_s = torch.where(q_s < ratio_clip_low * anchor, ratio_clip_low * anchor, q_s)
            if ratio_clip_high is not None:
                q_s = torch.where(q_s > ratio_clip_high * anchor, ratio_clip_high * anchor, q_s)
            if divergence == "forward_kl":
                value = (q_s * (q_s.log() - p_s.log())).sum()
            elif divergence == "reverse_kl":
                value = (p_s * (p_s.log() - q_s.log())).sum()
            else:
                m = (1 - jsd_beta) * p_s + jsd_beta * q_s
                value = ((1 - jsd_beta) * (p_s * (p_s / m).log()).sum()
                         + jsd_beta * (q_s * (q_s / m).log()).sum())
            row.append(value)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def _inputs(batch=2, tokens=5, vocab=12, seed=0, dtype=torch.float64, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    student = (torch.randn(batch, tokens, vocab, generator=gen, dtype=dtype) * scale).requires_grad_()
    teacher = (torch.randn(batch, tokens, vocab, generator=gen, dtype=dtype) * scale).requires_grad_()
    mask = torch.ones(batch, tokens)
    mask[1, 3:] = 0
    mask[0, 0] = 0
    return student, teacher, mask


def _full_vocab(student, teacher, divergence, beta=0.5):
    log_p = torch.log_softmax(student.double(), -1)
    log_q = torch.log_softmax(teacher.double(), -1)
    if divergence == "forward_kl":
        return torch.nn.functional.kl_div(log_p, log_q, log_target=True, reduction="none").sum(-1)
    if divergence == "reverse_kl":
        return torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)
    m = ((1 - beta) * log_p.exp() + beta * log_q.exp()).log()
    kl_pm = torch.nn.functional.kl_div(m, log_p, log_target=True, reduction="none").sum(-1)
    kl_qm = torch.nn.functional.kl_div(m, log_q, log_target=True, reduction="none").sum(-1)
    return (1 - beta) * kl_pm + beta * kl_qm


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("top_k", [12, 20, None])
def test_full_support_equals_exact_full_vocabulary_divergence(divergence, top_k):
    student, teacher, mask = _inputs(dtype=torch.float32)
    ours = f_divergence_loss(student, teacher, mask, divergence=divergence, jsd_beta=0.3, top_k=top_k,
                             ratio_clip_low=None)
    exact = _full_vocab(student, teacher, divergence, beta=0.3) * mask
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), exact, atol=2e-6, rtol=1e-5)
    assert (ours[mask == 1] > 0).all()


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("options", [
    dict(top_k=3),
    dict(top_k=3, add_tail=False),
    dict(top_k=4, ratio_clip_low=0.2),
    dict(top_k=4, ratio_clip_low=0.5, ratio_clip_high=1.5),
    dict(top_k=1, ratio_clip_high=2.0),
    dict(top_k=5, temperature=0.7, ratio_clip_low=0.2),
    dict(top_k=3, topk_source="teacher", ratio_clip_low=0.2),
])
def test_topk_tail_and_clip_match_naive_definition(divergence, options):
    student, teacher, mask = _inputs(seed=1)
    kwargs = {"divergence": divergence, "jsd_beta": 0.4, "ratio_clip_low": None, **options}
    ours = f_divergence_loss(student, teacher, mask, teacher_grad=True, **kwargs)
    naive = _naive_loss(student, teacher, mask, **kwargs)
    torch.testing.assert_close(ours, naive, atol=1e-10, rtol=1e-9)
    grads = torch.autograd.grad(ours.sum(), [student, teacher])
    naive_grads = torch.autograd.grad(naive.sum(), [student, teacher])
    for mine, ref in zip(grads, naive_grads):
        torch.testing.assert_close(mine, ref, atol=1e-10, rtol=1e-8)


def test_float32_computation_matches_float64_naive():
    student, teacher, mask = _inputs(seed=2, dtype=torch.float32)
    ours = f_divergence_loss(student, teacher, mask, divergence="jsd", top_k=4)
    naive = _naive_loss(student, teacher, mask, divergence="jsd", top_k=4, ratio_clip_low=0.2)
    torch.testing.assert_close(ours.double(), naive.detach(), atol=1e-6, rtol=1e-5)


def test_bfloat16_inputs_are_scored_in_float32():
    student, teacher, mask = _inputs(seed=3, dtype=torch.float32)
    ours = f_divergence_loss(student.bfloat16(), teacher.bfloat16(), mask, top_k=4)
    assert ours.dtype == torch.float32
    reference = f_divergence_loss(student.bfloat16().float(), teacher.bfloat16().float(), mask, top_k=4)
    torch.testing.assert_close(ours, reference)


# A 3-token vocabulary with known probabilities for hand-computed clip cases.
_P = [0.5, 0.3, 0.2]
_Q = [0.05, 0.45, 0.5]  # ratios q/p = 0.1, 1.5, 2.5


def _one_position(values):
    return torch.tensor(values, dtype=torch.float64).log().reshape(1, 1, 3)


def _reverse(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def _forward(p, q):
    return sum(b * math.log(b / a) for a, b in zip(p, q))


@pytest.mark.parametrize("low, high, clipped_q", [
    (None, None, [0.05, 0.45, 0.5]),
    (0.2, None, [0.1, 0.45, 0.5]),
    (None, 2.0, [0.05, 0.45, 0.4]),
    (0.2, 2.0, [0.1, 0.45, 0.4]),
    (0.05, 3.0, [0.05, 0.45, 0.5]),
])
def test_ratio_clip_hand_computed(low, high, clipped_q):
    mask = torch.ones(1, 1)
    kwargs = dict(top_k=None, ratio_clip_low=low, ratio_clip_high=high)
    reverse = f_divergence_loss(_one_position(_P), _one_position(_Q), mask, divergence="reverse_kl", **kwargs)
    forward = f_divergence_loss(_one_position(_P), _one_position(_Q), mask, divergence="forward_kl", **kwargs)
    assert reverse.item() == pytest.approx(_reverse(_P, clipped_q), abs=1e-12)
    assert forward.item() == pytest.approx(_forward(_P, clipped_q), abs=1e-12)


def test_ratio_clip_applies_to_the_tail_bucket():
    mask = torch.ones(1, 1)
    # top-1 support is token 0 (p=0.5, q=0.05); tails are p=0.5, q=0.95.
    loss = f_divergence_loss(_one_position(_P), _one_position(_Q), mask, divergence="reverse_kl", top_k=1)
    assert loss.item() == pytest.approx(0.5 * math.log(0.5 / 0.1) + 0.5 * math.log(0.5 / 0.95), abs=1e-9)
    loss = f_divergence_loss(_one_position(_P), _one_position(_Q), mask, divergence="reverse_kl", top_k=1,
                             ratio_clip_low=None, ratio_clip_high=1.5)
    assert loss.item() == pytest.approx(0.5 * math.log(0.5 / 0.05) + 0.5 * math.log(0.5 / 0.75), abs=1e-9)


def test_clip_floor_is_stop_gradient_of_student():
    """A clipped teacher entry equals 0.2 * sg(p): the student's gradient comes only through p itself."""
    student = _one_position(_P).requires_grad_()
    loss = f_divergence_loss(student, _one_position(_Q), torch.ones(1, 1), divergence="forward_kl",
                             top_k=None)
    (grad,) = torch.autograd.grad(loss.sum(), student)
    p = torch.tensor(_P, dtype=torch.float64)
    q_clipped = torch.tensor([0.1, 0.45, 0.5], dtype=torch.float64)
    # d/dz of -sum q~ log p(z) with q~ constant = p * sum(q~) - q~
    torch.testing.assert_close(grad.reshape(3), p * q_clipped.sum() - q_clipped)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("top_k", [3, None])
def test_identical_distributions_give_zero_loss(divergence, top_k):
    student, _, mask = _inputs(seed=4, dtype=torch.float32)
    loss = f_divergence_loss(student, student.detach().clone(), mask, divergence=divergence, top_k=top_k,
                             ratio_clip_high=5.0)
    torch.testing.assert_close(loss, torch.zeros_like(loss), atol=1e-6, rtol=0)


def test_jsd_half_is_symmetric_without_clip():
    student, teacher, mask = _inputs(seed=5)
    a = f_divergence_loss(student, teacher, mask, divergence="jsd", top_k=None, ratio_clip_low=None)
    b = f_divergence_loss(teacher, student, mask, divergence="jsd", top_k=None, ratio_clip_low=None)
    torch.testing.assert_close(a, b)
    assert (a <= math.log(2) + 1e-12).all()


def test_masked_positions_contribute_nothing():
    student, teacher, mask = _inputs(seed=6)
    garbage_s = student.detach().clone()
    garbage_t = teacher.detach().clone()
    garbage_s[mask == 0] = float("nan")
    garbage_t[mask == 0] = float("inf")
    garbage_s.requires_grad_()
    loss = f_divergence_loss(garbage_s, garbage_t, mask, divergence="jsd", top_k=4)
    clean = f_divergence_loss(student, teacher, mask, divergence="jsd", top_k=4)
    assert torch.equal(loss[mask == 0], torch.zeros(int((mask == 0).sum()), dtype=loss.dtype))
    torch.testing.assert_close(loss, clean)
    (grad,) = torch.autograd.grad(aggregate_loss(loss, mask), garbage_s)
    assert torch.equal(grad[mask == 0], torch.zeros_like(grad[mask == 0]))
    assert grad[mask == 1].abs().sum() > 0


def test_all_masked_gives_zeros_and_zero_aggregate():
    student, teacher, _ = _inputs(seed=7)
    mask = torch.zeros(2, 5)
    loss = f_divergence_loss(student, teacher, mask)
    assert torch.equal(loss, torch.zeros(2, 5, dtype=loss.dtype))
    assert aggregate_loss(loss, mask).item() == 0.0


def test_temperature_equals_scaled_logits():
    student, teacher, mask = _inputs(seed=8)
    hot = f_divergence_loss(student, teacher, mask, divergence="reverse_kl", top_k=4, temperature=0.5)
    scaled = f_divergence_loss(student / 0.5, teacher / 0.5, mask, divergence="reverse_kl", top_k=4)
    torch.testing.assert_close(hot, scaled)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("clip", [(None, None), (1e-4, 1e4)])
def test_gradcheck_float64(divergence, clip):
    """Finite differences cannot see the clip's stop-gradient, so the clip is off or never binding here;
    its gradient semantics are checked against the naive autograd reference above."""
    student, teacher, _ = _inputs(batch=2, tokens=3, vocab=6, seed=9)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])

    def fn(s, t):
        return f_divergence_loss(s, t, mask, divergence=divergence, top_k=3, ratio_clip_low=clip[0],
                                 ratio_clip_high=clip[1], jsd_beta=0.3, teacher_grad=True)

    assert torch.autograd.gradcheck(fn, (student, teacher), eps=1e-6, atol=1e-6)


def test_gradcheck_chunked_and_aggregate():
    gen = torch.Generator().manual_seed(10)
    hs = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen).requires_grad_()
    ht = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen).requires_grad_()
    ws = torch.randn(7, 4, dtype=torch.float64, generator=gen).requires_grad_()
    wt = torch.randn(7, 4, dtype=torch.float64, generator=gen).requires_grad_()
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    weights = torch.tensor([0.5, 1.5], dtype=torch.float64)

    def fn(a, b, c, d):
        per_token = chunked_f_divergence_loss(a, b, c, d, mask, chunk_size=2, divergence="jsd", top_k=3,
                                              ratio_clip_low=None, teacher_grad=True)
        return aggregate_loss(per_token, mask, sample_weights=weights)

    assert torch.autograd.gradcheck(fn, (hs, ht, ws, wt), eps=1e-6, atol=1e-6)


def test_gradcheck_chunked_frozen_teacher_path():
    """With a teacher that needs no gradient the chunked loss uses its custom autograd Function."""
    gen = torch.Generator().manual_seed(12)
    hs = torch.randn(1, 4, 3, dtype=torch.float64, generator=gen).requires_grad_()
    ws = torch.randn(8, 3, dtype=torch.float64, generator=gen).requires_grad_()
    ht = torch.randn(1, 4, 3, dtype=torch.float64, generator=gen)
    wt = torch.randn(8, 3, dtype=torch.float64, generator=gen)
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    for divergence in DIVERGENCES:
        def fn(a, c):
            return chunked_f_divergence_loss(a, ht, c, wt, mask, chunk_size=2, divergence=divergence, top_k=3,
                                             ratio_clip_low=None, temperature=0.8)

        assert torch.autograd.gradcheck(fn, (hs, ws), eps=1e-6, atol=1e-6)


def test_full_mask_matches_partial_path():
    student, teacher, _ = _inputs(seed=13)
    full = torch.ones(2, 5)
    loss = f_divergence_loss(student, teacher, full, top_k=4)
    almost = full.clone()
    almost[1, 4] = 0
    partial = f_divergence_loss(student, teacher, almost, top_k=4)
    torch.testing.assert_close(loss[almost == 1], partial[almost == 1])
    assert partial[1, 4] == 0 and loss[1, 4] > 0


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_chunked_matches_unchunked_values_and_gradients(chunk_size, divergence):
    gen = torch.Generator().manual_seed(11)
    batch, tokens, hidden, vocab = 2, 6, 8, 40
    hs = torch.randn(batch, tokens, hidden, generator=gen).requires_grad_()
    ht = torch.randn(batch, tokens, hidden, generator=gen)
    ws = torch.randn(vocab, hidden, generator=gen).requires_grad_()
    wt = torch.randn(vocab, hidden, generator=gen)
    mask = torch.ones(batch, tokens)
    mask[0, 4:] = 0
    mask[1, 0] = 0
    kwargs = dict(divergence=divergence, top_k=5, ratio_clip_low=0.2, ratio_clip_high=4.0)
    chunked = chunked_f_divergence_loss(hs, ht, ws, wt, mask, chunk_size=chunk_size, **kwargs)
    checkpointed = chunked_f_divergence_loss(hs, ht, ws, wt.clone().requires_grad_(), mask,
                                             chunk_size=chunk_size, teacher_grad=True, **kwargs)
    torch.testing.assert_close(checkpointed, chunked)
    plain = f_divergence_loss(hs @ ws.T, ht @ wt.T, mask, **kwargs)
    torch.testing.assert_close(chunked, plain, atol=1e-5, rtol=1e-5)
    weights = torch.tensor([0.7, 1.3])
    grads = torch.autograd.grad(aggregate_loss(chunked, mask, sample_weights=weights), [hs, ws])
    plain_grads = torch.autograd.grad(aggregate_loss(plain, mask, sample_weights=weights), [hs, ws])
    checkpoint_grads = torch.autograd.grad(aggregate_loss(checkpointed, mask, sample_weights=weights),
                                           [hs, ws])
    for mine, via_checkpoint, ref in zip(grads, checkpoint_grads, plain_grads):
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(via_checkpoint, ref, atol=1e-5, rtol=1e-4)


def test_chunked_without_grad_and_empty_mask():
    hs, ht = torch.randn(1, 4, 3), torch.randn(1, 4, 3)
    ws, wt = torch.randn(9, 3), torch.randn(9, 3)
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    with torch.no_grad():
        chunked = chunked_f_divergence_loss(hs, ht, ws, wt, mask, chunk_size=1, top_k=2)
    torch.testing.assert_close(chunked, f_divergence_loss(hs @ ws.T, ht @ wt.T, mask, top_k=2))
    empty = chunked_f_divergence_loss(hs, ht, ws, wt, torch.zeros(1, 4))
    assert torch.equal(empty, torch.zeros(1, 4))


def test_aggregate_hand_computed():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert aggregate_loss(per_token, mask).item() == pytest.approx((1.5 + 4.0 + 0.0) / 3)
    assert aggregate_loss(per_token, mask, mode="token-mean").item() == pytest.approx(7.0 / 3)
    weights = torch.tensor([2.0, 0.5, 1.0])
    assert aggregate_loss(per_token, mask, sample_weights=weights).item() == pytest.approx((3.0 + 2.0) / 3)
    assert aggregate_loss(per_token, mask, sample_weights=weights, mode="token-mean").item() == pytest.approx(
        8.0 / 3)


def test_rollout_correction_weights_truncate():
    trainer = torch.tensor([[0.0, -1.0, -0.1]])
    rollout = torch.tensor([[-2.0, -1.0, 0.0]])
    weights = rollout_correction_weights(trainer, rollout, cap=2.0)
    torch.testing.assert_close(weights, torch.tensor([[2.0, 1.0, math.exp(-0.1)]]))


def test_divergence_from_alpha_maps_official_values():
    assert divergence_from_alpha(0.0) == ("forward_kl", 0.5)
    assert divergence_from_alpha(1.0) == ("reverse_kl", 0.5)
    assert divergence_from_alpha(0.5) == ("jsd", 0.5)
    with pytest.raises(ValueError, match="alpha"):
        divergence_from_alpha(1.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(divergence="kl"), "divergence"),
    (dict(divergence="jsd", jsd_beta=1.0), "jsd_beta"),
    (dict(top_k=0), "top_k"),
    (dict(ratio_clip_low=-0.1), "ratio_clip_low"),
    (dict(ratio_clip_low=2.0, ratio_clip_high=1.0), "exceeds"),
    (dict(temperature=0.0), "temperature"),
    (dict(topk_source="both"), "topk_source"),
    (dict(add_tail="yes"), "add_tail"),
])
def test_bad_options_raise_clear_errors(kwargs, message):
    student, teacher, mask = _inputs()
    with pytest.raises(ValueError, match=message):
        f_divergence_loss(student, teacher, mask, **kwargs)


def test_bad_shapes_raise_clear_errors():
    student, teacher, mask = _inputs()
    with pytest.raises(ValueError, match="teacher_logits shape"):
        f_divergence_loss(student, teacher[:, :4], mask)
    with pytest.raises(ValueError, match="mask must be"):
        f_divergence_loss(student, teacher, mask[:, :4])
    with pytest.raises(ValueError, match="lm_head_weight"):
        chunked_f_divergence_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.zeros(5, 4),
                                  torch.zeros(5, 3), torch.ones(1, 2))
    with pytest.raises(TypeError, match="unknown keyword"):
        chunked_f_divergence_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.zeros(5, 3),
                                  torch.zeros(5, 3), torch.ones(1, 2), alpha=0.5)
    with pytest.raises(ValueError, match="mode"):
        aggregate_loss(torch.zeros(1, 2), torch.ones(1, 2), mode="sum")
    with pytest.raises(ValueError, match="sample_weights"):
        aggregate_loss(torch.zeros(2, 2), torch.ones(2, 2), sample_weights=torch.ones(3))


def test_loss_config_collects_all_problems_and_builds_kwargs():
    with pytest.raises(ValueError) as info:
        LossConfig(divergence="kl", top_k=-1, aggregation="mean", chunk_size=0)
    text = str(info.value)
    for field in ("divergence", "top_k", "aggregation", "chunk_size"):
        assert field in text
    config = LossConfig(divergence="reverse_kl", ratio_clip_high=2.0)
    kwargs = config.loss_kwargs()
    assert kwargs["divergence"] == "reverse_kl" and kwargs["ratio_clip_high"] == 2.0
    assert "aggregation" not in kwargs and "chunk_size" not in kwargs
    student, teacher, mask = _inputs()
    f_divergence_loss(student, teacher, mask, **kwargs)


_ZERO3_SCRIPT = textwrap.dedent("""
    import importlib, json
    import torch
    import deepspeed
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    from torch import nn
    from transformers import AutoModelForCausalLM, Qwen3Config
    from resd_learner.loss import aggregate_loss, chunked_f_divergence_loss

    class Distill(nn.Module):
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, ids, teacher_hidden, teacher_head, mask):
            hidden = self.lm.base_model(input_ids=ids, use_cache=False).last_hidden_state
            per_token = chunked_f_divergence_loss(hidden, teacher_hidden, self.lm.lm_head.weight, teacher_head,
                                                  mask, chunk_size=5, top_k=8, divergence="jsd")
            return aggregate_loss(per_token, mask)

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, tie_word_embeddings=False)
    lm = AutoModelForCausalLM.from_config(config)
    reference = AutoModelForCausalLM.from_config(config)
    reference.load_state_dict(lm.state_dict())
    initial_head = lm.lm_head.weight.detach().clone()
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 48, (2, 12), generator=gen)
    teacher_hidden = torch.randn(2, 12, 32, generator=gen)
    teacher_head = torch.randn(48, 32, generator=gen)
    mask = torch.ones(2, 12)
    mask[1, 9:] = 0
    wrapper = Distill(lm)
    engine, _, _, _ = deepspeed.initialize(
        model=wrapper, optimizer=torch.optim.SGD(wrapper.parameters(), lr=1.0),
        config={"train_micro_batch_size_per_gpu": 2, "zero_allow_untested_optimizer": True,
                "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}})
    deepspeed.zero.register_external_parameter(engine.module, engine.module.lm.lm_head.weight)
    loss = engine(ids, teacher_hidden, teacher_head, mask)
    engine.backward(loss)
    engine.step()
    optimizer = torch.optim.SGD(reference.parameters(), lr=1.0)
    hidden = reference.base_model(input_ids=ids, use_cache=False).last_hidden_state
    ref_loss = aggregate_loss(chunked_f_divergence_loss(hidden, teacher_hidden, reference.lm_head.weight,
                                                        teacher_head, mask, chunk_size=5, top_k=8,
                                                        divergence="jsd"), mask)
    ref_loss.backward()
    optimizer.step()
    ref_params = dict(reference.named_parameters())
    with deepspeed.zero.GatheredParameters(list(engine.module.parameters())):
        diff = max((p.detach() - ref_params[n[len("lm."):]].detach()).abs().max().item()
                   for n, p in engine.module.named_parameters())
    print("RESULT", json.dumps({"loss": loss.item(), "ref_loss": ref_loss.item(), "max_param_diff": diff,
                                "head_moved": (reference.lm_head.weight - initial_head).abs().max().item()}))
""")


def test_chunked_loss_trains_under_deepspeed_zero3(tmp_path):
    """The chunked loss inside a ZeRO-3 engine (head registered as an external parameter) takes the same
    optimizer step as plain PyTorch; runs in a subprocess to keep its process group isolated."""
    pytest.importorskip("deepspeed")
    script = tmp_path / "zero3_loss.py"
    script.write_text(_ZERO3_SCRIPT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"script failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["loss"] == pytest.approx(result["ref_loss"], rel=1e-6)
    assert result["head_moved"] > 1e-4
    assert result["max_param_diff"] < 1e-6


def test_teacher_is_a_stop_gradient_target_by_default():
    """Teacher logits that require grad get no gradient; the student's gradient is unchanged by that."""
    student, teacher, mask = _inputs(seed=21)
    loss = f_divergence_loss(student, teacher, mask, divergence="jsd", top_k=4)
    loss.sum().backward()
    assert teacher.grad is None and student.grad is not None
    frozen_grad = student.grad.clone()
    student.grad = None
    f_divergence_loss(student, teacher.detach(), mask, divergence="jsd", top_k=4).sum().backward()
    torch.testing.assert_close(student.grad, frozen_grad)
    opted = f_divergence_loss(student, teacher, mask, divergence="jsd", top_k=4, teacher_grad=True)
    (teacher_grad,) = torch.autograd.grad(opted.sum(), [teacher])
    assert teacher_grad.abs().sum() > 0
    with pytest.raises(TypeError, match="teacher_grad"):
        f_divergence_loss(student, teacher, mask, teacher_grad="yes")


@pytest.mark.parametrize("top_k", [3, None])
def test_chunked_teacher_gets_no_gradient_by_default(top_k):
    gen = torch.Generator().manual_seed(22)
    hs = torch.randn(2, 3, 4, generator=gen).requires_grad_()
    ht = torch.randn(2, 3, 4, generator=gen).requires_grad_()
    ws = torch.randn(9, 4, generator=gen).requires_grad_()
    wt = torch.randn(9, 4, generator=gen).requires_grad_()
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    loss = chunked_f_divergence_loss(hs, ht, ws, wt, mask, chunk_size=2, top_k=top_k)
    loss.sum().backward()
    assert ht.grad is None and wt.grad is None
    assert hs.grad.abs().sum() > 0 and ws.grad.abs().sum() > 0
    opted = chunked_f_divergence_loss(hs, ht, ws, wt, mask, chunk_size=2, top_k=top_k, teacher_grad=True)
    grads = torch.autograd.grad(opted.sum(), [ht, wt])
    assert all(g.abs().sum() > 0 for g in grads)


def test_chunked_empty_mask_is_a_zero_attached_to_the_graph():
    """Nothing to distil (every position masked): the zero loss still backpropagates (zero gradients)."""
    hs = torch.randn(1, 3, 4).requires_grad_()
    ws = torch.randn(9, 4).requires_grad_()
    loss = chunked_f_divergence_loss(hs, torch.randn(1, 3, 4), ws, torch.randn(9, 4), torch.zeros(1, 3),
                                     chunk_size=2, top_k=3)
    total = aggregate_loss(loss, torch.zeros(1, 3))
    assert total.requires_grad and float(total.detach()) == 0.0
    total.backward()
    assert float(hs.grad.abs().sum()) == 0.0 and float(ws.grad.abs().sum()) == 0.0


def test_rollout_correction_weights_the_loss_per_token_by_hand():
    """Two tokens, vocabulary 2: the weight is min(exp(log p_student(target) - rollout log-prob), 2)."""
    student = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]], requires_grad=True)
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.ones(1, 2)
    targets = torch.tensor([[0, 1]])
    rollout = torch.tensor([[math.log(0.4), math.log(0.01)]])
    plain = f_divergence_loss(student, teacher, mask, top_k=None, ratio_clip_low=None)
    fixed = f_divergence_loss(student, teacher, mask, top_k=None, ratio_clip_low=None, rollout_logprobs=rollout,
                              target_ids=targets)
    p1 = math.exp(0.0) / (math.exp(2.0) + 1.0)  # student prob of token 1 at position 1
    expected = torch.tensor([[0.5 / 0.4, min(p1 / 0.01, 2.0)]])  # 1.25, then capped at 2
    torch.testing.assert_close(fixed, plain.detach() * expected)
    (grad_fixed,) = torch.autograd.grad(fixed.sum(), [student])
    (grad_plain,) = torch.autograd.grad(plain.sum(), [student])
    torch.testing.assert_close(grad_fixed, grad_plain * expected[..., None])  # the weight is a constant
    gen = torch.Generator().manual_seed(30)
    hs, ht = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 3, 4, generator=gen)
    ws, wt = torch.randn(9, 4, generator=gen).requires_grad_(), torch.randn(9, 4, generator=gen)
    chunk_mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    ids = torch.randint(0, 9, (2, 3), generator=gen)
    lp = -torch.rand(2, 3, generator=gen) * 3
    for top_k in (3, None):
        chunked = chunked_f_divergence_loss(hs, ht, ws, wt, chunk_mask, chunk_size=2, top_k=top_k,
                                            rollout_logprobs=lp, target_ids=ids)
        reference = f_divergence_loss(hs @ ws.T, ht @ wt.T, chunk_mask, top_k=top_k, rollout_logprobs=lp,
                                      target_ids=ids)
        torch.testing.assert_close(chunked, reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="both rollout_logprobs and target_ids"):
        f_divergence_loss(student, teacher, mask, rollout_logprobs=rollout)
    with pytest.raises(ValueError, match="target_ids must be"):
        f_divergence_loss(student, teacher, mask, rollout_logprobs=rollout, target_ids=targets[:, :1])


def test_rollout_correction_compares_untempered_log_probs_at_any_temperature():
    """The engine reports untempered log-probs (vLLM's raw_logprobs): when they equal the student's own
    untempered ones, every weight is 1 at any loss temperature; a tempered student log-prob would have
    weighted tokens by exp(log p_T - log p_1) instead (here up to the cap of 2)."""
    gen = torch.Generator().manual_seed(31)
    student = torch.randn(2, 3, 7, generator=gen) * 3
    teacher = torch.randn(2, 3, 7, generator=gen)
    mask = torch.ones(2, 3)
    ids = torch.randint(0, 7, (2, 3), generator=gen)
    raw = torch.log_softmax(student, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    for temperature in (0.6, 1.0, 1.5):
        plain = f_divergence_loss(student, teacher, mask, top_k=4, temperature=temperature)
        corrected = f_divergence_loss(student, teacher, mask, top_k=4, temperature=temperature,
                                      rollout_logprobs=raw, target_ids=ids)
        torch.testing.assert_close(corrected, plain)
        hs = student.reshape(2, 3, 7)  # hidden = logits with an identity head
        chunked = chunked_f_divergence_loss(hs, teacher, torch.eye(7), torch.eye(7), mask, chunk_size=2, top_k=4,
                                            temperature=temperature, rollout_logprobs=raw, target_ids=ids)
        torch.testing.assert_close(chunked, plain, atol=1e-5, rtol=1e-5)
    tempered = torch.log_softmax(student / 0.6, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    assert float((tempered - raw).abs().max()) > 0.5  # the test would see a mistaken tempered comparison


def test_target_logprobs_match_log_softmax_for_any_leading_shape_and_temperature():
    """[..., V] logits and [...] ids -> the log-softmax entry of each id, at the given temperature; bf16
    logits come back as float32 and gradients flow to the logits."""
    gen = torch.Generator().manual_seed(5)
    logits = (torch.randn(2, 3, 11, generator=gen) * 4).requires_grad_(True)
    ids = torch.randint(0, 11, (2, 3), generator=gen)
    for temperature in (0.6, 1.0, 1.7):
        expected = torch.log_softmax(logits / temperature, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
        torch.testing.assert_close(target_logprobs(logits, ids, temperature), expected)
    torch.testing.assert_close(target_logprobs(logits.reshape(6, 11), ids.reshape(6)),
                               target_logprobs(logits, ids).reshape(6))
    target_logprobs(logits, ids, 0.6).sum().backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0
    assert target_logprobs(logits.detach().bfloat16(), ids).dtype == torch.float32
