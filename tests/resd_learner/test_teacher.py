"""Tests of resd_learner.teacher.EmaTeacher: copy, exact EMA update, cadence, scoring, state, ZeRO-3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from resd_learner.batch import gather_positions
from resd_learner.teacher import EmaTeacher, TeacherConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tiny_lm(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    from transformers import AutoModelForCausalLM, Qwen3Config

    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True)
    return AutoModelForCausalLM.from_config(config).to(dtype)


def _train_step(model: nn.Module, lr: float = 1e-2) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    ids = torch.randint(0, 48, (2, 6), generator=torch.Generator().manual_seed(1))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()


def test_copy_is_fp32_frozen_independent_and_hookless():
    student = _tiny_lm(dtype=torch.bfloat16)
    student.register_forward_hook(lambda *args: None)
    teacher = EmaTeacher(student, rate=1e-4)
    for name, param in teacher.module.named_parameters():
        assert param.dtype == torch.float32 and not param.requires_grad
        assert torch.equal(param, dict(student.named_parameters())[name].float())
    assert not teacher.module.training
    assert not teacher.module._forward_hooks
    assert teacher.module.lm_head.weight is teacher.module.model.embed_tokens.weight  # tying kept
    with torch.no_grad():
        next(student.parameters()).add_(1.0)
    first = next(teacher.module.parameters())
    assert not torch.equal(first, next(student.parameters()).float())


def test_update_is_exact_ema_and_differs_from_student():
    student = _tiny_lm()
    rate = 0.1
    teacher = EmaTeacher(student, rate=rate)
    before = {n: p.detach().clone() for n, p in teacher.module.named_parameters()}
    _train_step(student)
    after_step = {n: p.detach().clone() for n, p in student.named_parameters()}
    teacher.update(student)
    changed = 0
    for name, param in teacher.module.named_parameters():
        expected = before[name] * (1 - rate) + after_step[name] * rate
        assert torch.equal(param, expected)
        exact64 = before[name].double() * (1 - rate) + after_step[name].double() * rate
        torch.testing.assert_close(param.double(), exact64, atol=1e-7, rtol=1e-6)
        if not torch.equal(after_step[name], before[name]):
            changed += 1
            assert not torch.equal(param, after_step[name])
            assert not torch.equal(param, before[name])
    assert changed > 0
    assert teacher.updates == 1 and teacher.calls == 1


def test_update_every_and_zero_rate():
    student = _tiny_lm()
    teacher = EmaTeacher(student, rate=0.5, update_every=3)
    start = {n: p.detach().clone() for n, p in teacher.module.named_parameters()}
    _train_step(student)
    teacher.update(student)
    teacher.update(student)
    assert all(torch.equal(p, start[n]) for n, p in teacher.module.named_parameters())
    teacher.update(student)
    assert teacher.calls == 3 and teacher.updates == 1
    assert any(not torch.equal(p, start[n]) for n, p in teacher.module.named_parameters())

    frozen = EmaTeacher(_tiny_lm(seed=3), rate=0.0)
    frozen_start = {n: p.detach().clone() for n, p in frozen.module.named_parameters()}
    frozen.update(student)
    assert all(torch.equal(p, frozen_start[n]) for n, p in frozen.module.named_parameters())


def test_hidden_and_head_reproduce_model_logits_without_grad():
    student = _tiny_lm()
    teacher = EmaTeacher(student, rate=1e-4)
    ids = torch.randint(0, 48, (2, 7), generator=torch.Generator().manual_seed(2))
    attention = torch.ones(2, 7, dtype=torch.long)
    attention[1, :2] = 0
    hidden, head = teacher.hidden_and_head(ids, attention)
    assert hidden.shape == (2, 7, 32) and head.shape == (48, 32)
    assert not hidden.requires_grad and not head.requires_grad
    with torch.no_grad():
        reference = student(input_ids=ids, attention_mask=attention).logits
    torch.testing.assert_close(hidden @ head.T, reference, atol=1e-5, rtol=1e-5)


def test_teacher_logits_at_response_match_full_sequence_logits():
    student = _tiny_lm()
    teacher = EmaTeacher(student, rate=1e-4)
    prompt_plus_response = torch.randint(0, 48, (1, 9), generator=torch.Generator().manual_seed(4))
    hidden, head = teacher.hidden_and_head(prompt_plus_response)
    # response tokens 5..8 are predicted by the states at positions 4..7
    response = gather_positions(hidden, torch.tensor([[4, 5, 6, 7]])) @ head.T
    with torch.no_grad():
        logits = student(input_ids=prompt_plus_response).logits
    torch.testing.assert_close(response, logits[:, 4:8], atol=1e-5, rtol=1e-5)


def test_hidden_and_head_rejects_plain_modules():
    teacher = EmaTeacher(nn.Sequential(nn.Linear(3, 3)), rate=0.1)
    with pytest.raises(TypeError, match="causal LM"):
        teacher.hidden_and_head(torch.zeros(1, 2, dtype=torch.long))


def test_state_dict_round_trip():
    student = _tiny_lm()
    teacher = EmaTeacher(student, rate=0.2, update_every=2)
    _train_step(student)
    teacher.update(student)
    teacher.update(student)
    state = teacher.state_dict()
    restored = EmaTeacher(_tiny_lm(seed=5), rate=0.2, update_every=2)
    restored.load_state_dict(state)
    assert (restored.calls, restored.updates) == (2, 1)
    for (name, a), (_, b) in zip(teacher.module.named_parameters(), restored.module.named_parameters()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="lacks"):
        restored.load_state_dict({"module": state["module"]})


def test_mismatched_student_and_bad_settings():
    teacher = EmaTeacher(nn.Linear(3, 2), rate=0.1)
    with pytest.raises(ValueError, match="do not match"):
        teacher.update(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="shape"):
        teacher.update(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="teacher.rate"):
        EmaTeacher(nn.Linear(3, 2), rate=1.5)
    with pytest.raises(ValueError, match="update_every"):
        TeacherConfig(update_every=0)
    with pytest.raises(ValueError, match="floating"):
        EmaTeacher(nn.Linear(3, 2), rate=0.1, dtype=torch.int64)
    config = TeacherConfig(rate=0.01, update_every=2)
    built = EmaTeacher.from_config(nn.Linear(3, 2), config)
    assert (built.rate, built.update_every) == (0.01, 2)


_ZERO3_SCRIPT = textwrap.dedent("""
    import importlib, json
    import torch
    import deepspeed
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    from transformers import AutoModelForCausalLM, Qwen3Config
    from resd_learner.teacher import EmaTeacher

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True)
    model = AutoModelForCausalLM.from_config(config)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
        config={"train_micro_batch_size_per_gpu": 2,
                "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}})

    def full():
        with deepspeed.zero.GatheredParameters(list(engine.module.parameters())):
            return {n: p.detach().clone().float() for n, p in engine.module.named_parameters()}

    partitioned = all(hasattr(p, "ds_id") and p.numel() == 0 for p in engine.module.parameters())
    initial = full()
    rate = 0.25
    teacher = EmaTeacher(engine, rate=rate)
    copied = all(torch.equal(dict(teacher.module.named_parameters())[n], v) for n, v in initial.items())
    ids = torch.randint(0, 48, (2, 8), generator=torch.Generator().manual_seed(1))
    loss = engine(input_ids=ids, labels=ids).loss
    engine.backward(loss)
    engine.step()
    student = full()
    before = {n: p.detach().clone() for n, p in teacher.module.named_parameters()}
    teacher.update(engine)
    after = dict(teacher.module.named_parameters())
    exact = all(torch.equal(after[n], before[n] * (1 - rate) + student[n] * rate) for n in student)
    moved = [n for n in student if not torch.equal(student[n], initial[n])]
    differs = all(not torch.equal(after[n], student[n]) for n in moved)
    hidden, head = teacher.hidden_and_head(ids, torch.ones_like(ids))
    print("RESULT", json.dumps({
        "partitioned": partitioned, "copied": copied, "exact": exact, "moved": len(moved),
        "differs": differs, "hidden": list(hidden.shape), "head": list(head.shape),
        "still_partitioned": all(p.numel() == 0 for p in engine.module.parameters()),
    }))
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ema_update_under_deepspeed_zero3(tmp_path):
    """Single-process ZeRO-3 engine on CPU/gloo, run in a subprocess so its process group stays isolated."""
    pytest.importorskip("deepspeed")
    script = tmp_path / "zero3_teacher.py"
    script.write_text(_ZERO3_SCRIPT)
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (
        f"ZeRO-3 script failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["partitioned"], "the student was expected to be ZeRO-3 partitioned"
    assert result["copied"] and result["exact"] and result["differs"]
    assert result["moved"] > 0
    assert result["hidden"] == [2, 8, 32] and result["head"] == [48, 32]
    assert result["still_partitioned"]


def test_ema_reads_the_fp32_master_weights_of_a_bf16_deepspeed_student():
    """With DeepSpeed bf16 the module holds bf16 copies; the EMA must average the optimizer's fp32
    masters (official: the FSDP fp32 parameters), which differ from the bf16 copies after a step."""
    import deepspeed

    from resd_learner import distributed

    distributed.init_distributed("gloo")
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 4))
    teacher = EmaTeacher(student, rate=0.5)
    engine, _, _, _ = deepspeed.initialize(
        model=student, optimizer=torch.optim.AdamW(student.parameters(), lr=1e-3),
        config={"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                "steps_per_print": 10**9})
    x = torch.randn(1, 16, dtype=torch.bfloat16)
    engine.backward(engine(x).float().pow(2).sum())
    engine.step()
    reader = distributed.master_param_reader(engine)
    assert reader is not None
    before = {n: p.detach().clone() for n, p in teacher.module.named_parameters()}
    masters = {n: reader(p).float().cpu() for n, p in engine.module.named_parameters()}
    teacher.update(engine.module, full_param=reader)
    differs = False
    for name, param in engine.module.named_parameters():
        expected = before[name] * 0.5 + masters[name] * 0.5
        assert torch.equal(teacher.module.get_parameter(name), expected), name
        differs |= not torch.equal(masters[name], param.detach().float())
    assert differs  # the bf16 copies are not the masters, so reading them would give another teacher
    assert distributed.master_param_reader(object()) is None
    engine.destroy()


def test_teacher_forward_under_bf16_autocast_keeps_fp32_weights(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    teacher = EmaTeacher(model, rate=0.1, compute_dtype=torch.bfloat16)
    hidden, head = teacher.hidden_and_head(torch.tensor([[1, 2, 3, 4]]))
    assert head.dtype == torch.float32 and {p.dtype for p in teacher.module.parameters()} == {torch.float32}
    full, _ = EmaTeacher(model, rate=0.1).hidden_and_head(torch.tensor([[1, 2, 3, 4]]))
    assert not torch.equal(hidden.float(), full)  # the matmuls ran in bf16 ...
    assert torch.allclose(hidden.float(), full, atol=0.1, rtol=0.05)  # ... to bf16 accuracy


def _shared_prefix_batch(prefix_len: int = 10, generator_seed: int = 7):
    """Three right-padded rows that share their first ``prefix_len`` tokens, and their response positions."""
    generator = torch.Generator().manual_seed(generator_seed)
    prefix = torch.randint(0, 48, (prefix_len,), generator=generator)
    rows = [torch.cat([prefix, torch.randint(0, 48, (n,), generator=generator)]) for n in (6, 9, 4)]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention = torch.zeros_like(ids)
    positions = torch.zeros(len(rows), 3, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)], attention[i, :len(row)] = row, 1
        positions[i] = torch.arange(len(row) - 4, len(row) - 1)  # the last three tokens are the "response"
    return ids, attention, positions


def test_response_hidden_with_a_shared_prefix_matches_the_whole_forward():
    teacher = EmaTeacher(_tiny_lm(), rate=0.1)
    assert teacher.share_prefix
    ids, attention, positions = _shared_prefix_batch()
    whole, head = teacher.response_hidden(ids, attention, positions)
    shared, shared_head = teacher.response_hidden(ids, attention, positions, shared_prefix=10)
    assert shared.shape == whole.shape == (3, 3, 32) and shared_head is head
    torch.testing.assert_close(shared, whole, atol=1e-5, rtol=1e-5)
    reference, _ = teacher.hidden_and_head(ids, attention)
    torch.testing.assert_close(whole, gather_positions(reference, positions))


def test_shared_prefix_is_computed_once_per_teacher_version():
    student = _tiny_lm()
    teacher = EmaTeacher(student, rate=0.5)
    calls = []
    teacher.module.base_model.register_forward_hook(lambda module, args, kwargs_out: calls.append(1))
    ids, attention, positions = _shared_prefix_batch()

    def run() -> torch.Tensor:
        calls.clear()
        return teacher.response_hidden(ids, attention, positions, shared_prefix=10)[0]

    run()
    assert len(calls) == 2  # the prefix, then the rest of the rows
    run()
    assert len(calls) == 1  # the cached prefix is reused
    _train_step(student)
    teacher.update(student)
    updated = run()
    assert len(calls) == 2  # new weights, new prefix
    torch.testing.assert_close(updated, teacher.response_hidden(ids, attention, positions)[0], atol=1e-5, rtol=1e-5)
    teacher.load_state_dict(EmaTeacher(_tiny_lm(seed=5), rate=0.5).state_dict())
    reloaded = run()
    assert len(calls) == 2 and not torch.allclose(reloaded, updated)
    torch.testing.assert_close(reloaded, teacher.response_hidden(ids, attention, positions)[0], atol=1e-5, rtol=1e-5)


def test_shared_prefix_off_runs_every_row_whole():
    teacher = EmaTeacher(_tiny_lm(), rate=0.1, share_prefix=False)
    calls = []
    teacher.module.base_model.register_forward_hook(lambda module, args, kwargs_out: calls.append(1))
    ids, attention, positions = _shared_prefix_batch()
    teacher.response_hidden(ids, attention, positions, shared_prefix=10)
    assert len(calls) == 1 and not teacher.share_prefix
    assert TeacherConfig().share_prefix is True
    with pytest.raises(ValueError, match="teacher.share_prefix"):
        TeacherConfig(share_prefix="yes")


def test_shared_prefix_must_leave_tokens_to_run():
    teacher = EmaTeacher(_tiny_lm(), rate=0.1)
    ids, attention, positions = _shared_prefix_batch()
    with pytest.raises(ValueError, match="leaves no token"):
        teacher.response_hidden(ids, attention, positions, shared_prefix=ids.shape[1])


def test_shared_prefix_under_bf16_autocast_stays_close_to_the_whole_forward():
    teacher = EmaTeacher(_tiny_lm(), rate=0.1, compute_dtype=torch.bfloat16)
    ids, attention, positions = _shared_prefix_batch()
    whole, _ = teacher.response_hidden(ids, attention, positions)
    shared, _ = teacher.response_hidden(ids, attention, positions, shared_prefix=10)
    assert shared.dtype == whole.dtype
    assert torch.allclose(shared.float(), whole.float(), atol=0.1, rtol=0.05)
