"""The RESD trainer: online streaming over the train split with K on-policy updates per batch.

Stream: the train split in file order, cut into outer batches of B prompts (drop_last). For each
outer batch, up to K inner iterations; each inner iteration is one *step* and takes exactly one
optimizer step. Validation (n samples per test prompt) runs before training, every ``val_every``
outer batches and after the last one; checkpoints are written every ``save_every`` outer batches.

Order of one RESD step (:meth:`Trainer.train_step`):

1. rollout: the current student (in the generation engine) samples one response per prompt;
2. reward/feedback: the environment scores each response (reward, per-test-case score, feedback);
3. context update (``resd_learner.context``): concise triggers → reflect on failures → tag →
   curate → post-curation concise; the successes go into the solution buffer;
4. success-rate weights (``resd_learner.rebalance``) from this step's rewards;
5. teacher inputs: enriched prompt = the playbook **as updated in this same step** (step 3), this
   step's reflection and feedback, the response itself as the previous trial, and a demonstration
   (own success, else a buffered solution), followed by the unchanged response token ids;
6. EMA-teacher scoring: the teacher's hidden states on (teacher prompt, response);
7. loss: top-k (+ tail) clipped f-divergence between student and teacher, computed in chunks over
   hidden states, weighted per sample and averaged (``resd_learner.loss``); backward;
8. one AdamW step (DeepSpeed), then the EMA update of the teacher;
9. weight push: the new student weights go into the generation engine.

Several ranks (torchrun / the DeepSpeed launcher): every rank runs its own generation engine
(:mod:`resd_learner.colocate`: vLLM's ``external_launcher`` executor, optional tensor-parallel
replicas). Each generation round — rollouts, the reflector / tagger / curator calls, validation — is
split into one shard per replica and gathered with an object all-gather, so every rank holds the
whole round; every rank then runs the (deterministic) context update on identical inputs and keeps an
identical playbook, and trains on its strided share of the batch. Weights are pushed into each rank's
engine parameter bucket by parameter bucket (:mod:`resd_learner.weight_sync`).

The teacher therefore sees the context updated in the same step, as in the official code.
The method switch (``method.name``) changes only steps 3-7: SDPO/SDPO+ss build the SDPO teacher
prompt (demonstration or feedback, no playbook, no reflection), GRPO skips the teacher and uses the
clipped policy-gradient loss over groups of ``rollout.n`` responses.

Batch construction (views, demonstrations, teacher sequences, GRPO advantages, packing) lives in
:mod:`resd_learner.batch` as pure functions; this module runs the loop around them.

With ``method.switch_to_grpo.success_rate`` set, a self-distillation run switches to GRPO (groups of
``method.switch_to_grpo.n``) at the first outer-batch boundary where the training success rate,
averaged over the last ``window`` outer batches, reaches the threshold (:mod:`resd_learner.schedule`).

Determinism: every sampling call gets a seed derived from ``train.seed``, the phase and the step, so
a resumed run draws exactly the samples an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from resd_learner import checkpoint as ckpt
from resd_learner import colocate, distributed, weight_sync
from resd_learner.batch import (
    ContextResult,
    Packed,
    TrainItem,
    build_grpo_items,
    build_teacher_items,
    choose_demonstrations,
    gather_positions,
    has_loss,
    pack_student,
    pack_teacher,
    response_targets,
    sample_views,
    teacher_shared_prefix,
)
from resd_learner.colocate import GenerationGroups
from resd_learner.config import RunConfig, dump_yaml
from resd_learner.context import ContextUpdate, ContextUpdater, SampleView
from resd_learner.context.schemas import generation_cap
from resd_learner.distill_forward import DistillInputs, install_distillation_forward, register_head_with_zero3
from resd_learner.evaluate import summarize
from resd_learner.grpo import clip_fractions, clipped_policy_loss
from resd_learner.loss import aggregate_loss, rollout_correction_weights, target_logprobs
from resd_learner.metrics import MetricsLogger, truncate_jsonl
from resd_learner.models import load_student, load_tokenizer
from resd_learner.partitioned_teacher import PartitionedEmaTeacher
from resd_learner.precision import with_resolved_dtype
from resd_learner.rebalance import success_rate_weights
from resd_learner.records import RunRecords, collect_step_records
from resd_learner.reply_budget import budget_warnings
from resd_learner.rollout import GenerationBackend, collect_samples, make_backend
from resd_learner.rollout.base import SchemaArg, schemas_per_chat
from resd_learner.schedule import GrpoSwitch
from resd_learner.seeding import derive_seed
from resd_learner.summary import print_run_summary, record_val_scores
from resd_learner.task_sources import make_task_source
from resd_learner.teacher import EmaTeacher
from resd_learner.types import Sample, Task
from resd_learner.warm_start import run_base_model

PHASES = ("rollout", "context", "teacher_inputs", "teacher", "loss", "backward", "optim", "ema", "sync")
"""Timed phases of one step, each logged as ``time/<phase>_s``: ``teacher_inputs`` builds the teacher
sequences, ``teacher`` is the teacher forward, ``loss`` the student forward and loss, ``backward`` the
backward pass, ``optim`` the optimizer step."""

_PHASE_ID = {"rollout": 1, "context": 2, "val": 3}

class ContextGenerator:
    """The student in diagnostic mode for the context updater (reflector / tagger / curator calls).

    Call k (1-based) of step s samples with seed ``derive_seed(run seed, context phase, s, k)``; the
    trainer calls :meth:`start_step` before each context update, so the seeds of a step do not depend
    on what earlier steps generated. Uses the training sampling settings (``context.temperature`` when
    set, else the rollout temperature). With several generation
    replicas each generates its shard of the chats and every rank gets all answers (collective:
    every rank's context updater makes the same calls).
    """

    def __init__(self, config: RunConfig, backend: GenerationBackend | None,
                 groups: GenerationGroups | None = None) -> None:
        self.config = config
        self.backend = backend
        self.groups = groups or GenerationGroups(1, 0)
        self.step = 0
        self.calls = 0

    def start_step(self, step: int) -> None:
        self.step, self.calls = step, 0

    @property
    def supports_schema(self) -> bool:
        """Whether the backend can generate under a JSON schema (ranks without a backend never generate)."""
        return self.backend is None or bool(getattr(self.backend, "supports_schema", False))

    def __call__(self, chats: list[list[dict[str, str]]], schema: SchemaArg = None) -> list[str]:
        """One completion per chat; under ``schema`` (one JSON schema for all, or one per chat) when given."""
        if self.backend is None:
            raise RuntimeError("context generation needs a generation engine on this rank")
        cfg = self.config
        self.calls += 1
        seed = self.groups.shard_seed(derive_seed(cfg.train.seed, _PHASE_ID["context"], self.step, self.calls))
        per_chat = schemas_per_chat(schema, len(chats))

        def work(shard: list[tuple[list[dict[str, str]], dict | None]], _replica: int) -> list[str]:
            if not shard:
                return []
            temperature = cfg.rollout.temperature if cfg.context.temperature is None else cfg.context.temperature
            shard_schemas = [s for _, s in shard]
            extra = {"schema": shard_schemas} if any(s is not None for s in shard_schemas) else {}
            gens = self.backend.generate([c for c, _ in shard], n=1, temperature=temperature,
                                         top_p=cfg.rollout.top_p, max_tokens=generation_cap(
                                             cfg.context.max_reflection_tokens, shard_schemas),
                                         seed=seed, **extra)
            too_long = sum(g[0].finish_reason == "prompt_too_long" for g in gens)
            if too_long:
                logging.getLogger("resd_learner.context").warning(  # silenced on ranks > 0, like the updater
                    "%d of %d reflector/tagger/curator prompts did not fit rollout.max_model_len=%d and got no "
                    "output (recorded as 'empty output'); raise rollout.max_model_len or lower "
                    "context.playbook_budget / context.max_reflection_tokens", too_long, len(gens),
                    cfg.rollout.max_model_len)
            return [g[0].text for g in gens]

        return self.groups.run(list(zip(chats, per_chat)), work)


class Timer:
    """Accumulates wall time per phase name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class Trainer:
    """Builds everything from a :class:`RunConfig` and runs :meth:`fit`.

    Args:
        config: the validated run configuration.
        llm: an existing ``vllm.LLM`` to reuse as the generation engine (tests share one).
        fail_after_step: raise ``RuntimeError`` right after this global step (tests of resume).
    """

    def __init__(self, config: RunConfig, *, llm: object | None = None, fail_after_step: int | None = None) -> None:
        config = with_resolved_dtype(config)
        self.config = config
        self.run_dir = Path(config.train.run_dir)
        self.fail_after_step = fail_after_step
        if distributed.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.global_step = 0
        self.next_batch = 0
        distributed.init_distributed(config.distributed.backend, config.distributed.master_port,
                                     config.distributed.timeout_minutes)
        # after init: is_main() reads the process group, and only rank 0 writes the step records
        self.records = RunRecords(self.run_dir) if distributed.is_main() else None
        self._seed_everything(config.train.seed)
        self.model_dir = run_base_model(config)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.source = make_task_source(config.env)
        self.train_tasks = self.source.tasks(config.env.train_split, config.env.num_train)
        validates = config.train.val_every > 0 or config.train.val_before_train or config.train.val_after_train
        self.val_tasks = self.source.tasks(config.env.val_split, config.env.num_val) if validates else []
        if distributed.is_main():
            eval_setting = "eval.max_tokens" if config.eval.max_tokens else "rollout.max_tokens"
            for line in budget_warnings(self.source, self.tokenizer, [
                    ("training", self.train_tasks, config.rollout.max_tokens, "rollout.max_tokens"),
                    ("validation", self.val_tasks, config.eval.max_tokens or config.rollout.max_tokens, eval_setting)]):
                logging.getLogger("resd_learner").warning("resd-learn: %s", line)
        self.num_batches = len(self.train_tasks) // config.train.batch_size
        if config.train.max_batches is not None:
            self.num_batches = min(self.num_batches, config.train.max_batches)
        if self.num_batches < 1:
            raise ValueError(f"the stream has {len(self.train_tasks)} prompts, fewer than train.batch_size="
                             f"{config.train.batch_size}: lower the batch size or raise env.num_train")
        switch = config.method.switch_to_grpo
        self.schedule = GrpoSwitch(switch.success_rate, switch.window) if switch.enabled else None
        self.method_name = config.method.name
        """The method of the current phase: ``method.name``, or "grpo" after a RESD → GRPO switch."""
        self.rollout_n = config.rollout.n
        """Rollouts per prompt in the current phase."""
        self._batch_success: list[float] = []
        self._build_models()
        vllm = config.rollout.backend == "vllm"
        self._owns_llm = vllm and llm is None
        if self._owns_llm:
            llm = colocate.build_engine(config.rollout, self.model_dir, dtype=config.model.dtype,
                                        seed=config.train.seed)
        self.groups = GenerationGroups.current(config.rollout.tensor_parallel_size if vllm else 1)
        self.backend = make_backend(config.rollout, self.model_dir, self.tokenizer, dtype=config.model.dtype,
                                    enable_thinking=config.model.enable_thinking, seed=config.train.seed, llm=llm)
        # only an engine built here sleeps (a caller's engine may lack sleep mode)
        self._sleep_level = colocate.sleep_level(config.rollout, distributed.has_cuda()) if self._owns_llm else 0
        self._asleep = False
        self.context_generate = ContextGenerator(config, self.backend, self.groups)
        if not distributed.is_main():  # every rank runs the same context update; one copy of its warnings
            logging.getLogger("resd_learner.context").setLevel(logging.ERROR)
        self.updater = ContextUpdater(config.context, self.context_generate, seed=config.train.seed,
                                      supports_schema=self.context_generate.supports_schema) \
            if config.method.name == "resd" else None
        self.logger: MetricsLogger | None = None

    # -- construction ---------------------------------------------------------------------------
    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _build_models(self) -> None:
        """The student (under ZeRO-3 partitioned while it loads), the EMA teacher and the DeepSpeed engine."""
        cfg = self.config
        world = distributed.world_size()
        sizes = [cfg.rollout.n] + ([cfg.method.switch_to_grpo.n] if self.schedule is not None else [])
        for n in sizes:
            if cfg.train.batch_size * n % world:
                raise ValueError(f"{cfg.train.batch_size * n} sequences per step (train.batch_size x {n} rollouts) "
                                 f"cannot be split evenly over {world} ranks; make train.batch_size * rollout.n "
                                 "(and * method.switch_to_grpo.n) a multiple of the world size")
        self.per_rank = cfg.train.batch_size * cfg.rollout.n // world
        micro = min(cfg.train.micro_batch_size, self.per_rank)
        self.micro_batch_size = micro
        self.grad_accum = math.ceil(self.per_rank / micro)
        stage = cfg.distributed.zero_stage
        distributed.resolve_engine(cfg.distributed.engine, stage)  # fail before loading anything
        ds_config = distributed.deepspeed_config(zero_stage=stage, micro_batch_size=micro, grad_accum=self.grad_accum,
                                                 grad_clip=cfg.optim.grad_clip, bf16=cfg.model.dtype == "bfloat16")
        model = load_student(self.model_dir, dtype=cfg.model.dtype, zero3_config=ds_config if stage == 3 else None)
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        model.config.use_cache = False
        self.teacher: EmaTeacher | PartitionedEmaTeacher | None = None
        if cfg.method.uses_teacher:
            # the teacher lives where the student computes (the engine moves the student there next)
            # its weights and EMA stay fp32; with a bf16 student its forward runs under bf16 autocast
            # under ZeRO-3 it is partitioned like the student (local EMA, layer-by-layer gathered forward)
            compute = torch.bfloat16 if cfg.model.dtype == "bfloat16" else None
            if stage == 3:
                self.teacher = PartitionedEmaTeacher(model, rate=cfg.teacher.rate,
                                                     update_every=cfg.teacher.update_every, compute_dtype=compute)
            else:
                self.teacher = EmaTeacher(model, rate=cfg.teacher.rate, update_every=cfg.teacher.update_every,
                                          device=distributed.device(), compute_dtype=compute,
                                          share_prefix=cfg.teacher.share_prefix)
        self.student: PreTrainedModel = install_distillation_forward(model)
        """The Hugging Face student the engine wraps (under ZeRO-3 its parameters are partitions)."""
        optim = dataclasses.replace(cfg.optim, lr=cfg.optim.lr_for(cfg.model.dtype))  # optim.lr_scale_float32
        self.engine, self.optimizer, self.scheduler = distributed.build_engine(
            model, optim, zero_stage=stage, micro_batch_size=micro, grad_accum=self.grad_accum,
            bf16=cfg.model.dtype == "bfloat16", config=ds_config, engine=cfg.distributed.engine)
        register_head_with_zero3(model)

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, resume_from: str | Path | None = None, *, overwrite: bool = False) -> dict[str, Any]:
        """Run the stream to the end (or resume it from a checkpoint directory); returns the last metrics.

        A new run refuses a run directory that already holds a run unless ``overwrite`` (then that run
        is deleted first): see :func:`resd_learner.checkpoint.prepare_new_run_dir`.
        """
        cfg = self.config
        if resume_from is not None:
            self._resume(Path(resume_from))
        elif distributed.is_main():
            ckpt.prepare_new_run_dir(self.run_dir, overwrite=overwrite)
        if distributed.is_main():
            (self.run_dir / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
            if resume_from is None:
                (self.run_dir / "phase.json").unlink(missing_ok=True)
        self._write_phase_file()
        total = self.num_batches * cfg.train.updates_per_batch
        self.logger = MetricsLogger(self.run_dir, enabled=distributed.is_main(), tensorboard=cfg.train.tensorboard,
                                    progress_total=total if cfg.train.progress else None,
                                    initial_step=self.global_step)
        last: dict[str, Any] = {}
        try:
            if self.next_batch == 0 and self.global_step == 0 and cfg.train.val_before_train:
                self.validate()
            while self.next_batch < self.num_batches:
                batch = self._batch_tasks(self.next_batch)
                self._batch_success = []
                for _ in range(cfg.train.updates_per_batch):
                    last = self.train_step(batch)
                    self._batch_success.append(float(last["rollout/success_rate"]))
                    self._maybe_fail()
                self.next_batch += 1
                self._after_batch()
        finally:
            self.logger.close()
        if distributed.is_main():
            print_run_summary(self.run_dir)
        return last

    def _batch_tasks(self, index: int) -> list[Task]:
        size = self.config.train.batch_size
        return self.train_tasks[index * size:(index + 1) * size]

    def _after_batch(self) -> None:
        cfg = self.config.train
        done = self.next_batch
        final = done == self.num_batches
        if self.schedule is not None and self._batch_success:
            rate = float(np.mean(self._batch_success))
            if self.schedule.observe(rate, step=self.global_step, batch=done - 1):
                self._enter_grpo()
        if (cfg.val_every and done % cfg.val_every == 0) or (final and cfg.val_after_train):
            self.validate()
        if (cfg.save_every and done % cfg.save_every == 0) or final:
            self.save()

    def _enter_grpo(self) -> None:
        """Switch the rest of the run to GRPO: groups of ``switch_to_grpo.n``, no teacher, no context update.

        The DeepSpeed engine keeps its micro-batch size and accumulates over the larger step. Called at
        an outer-batch boundary (also when a resumed checkpoint is in the GRPO phase).
        """
        cfg = self.config
        self.method_name = "grpo"
        self.rollout_n = cfg.method.switch_to_grpo.n
        self.per_rank = cfg.train.batch_size * self.rollout_n // distributed.world_size()
        self.grad_accum = math.ceil(self.per_rank / self.micro_batch_size)
        self.engine.set_train_batch_size(self.micro_batch_size * self.grad_accum * distributed.world_size())
        self.engine.micro_steps = 0  # the next step starts a fresh accumulation window of the new size
        self.teacher = None  # GRPO has no teacher; free its memory
        self._write_phase_file()

    def _write_phase_file(self) -> None:
        """``RUN_DIR/phase.json``: the current phase and where the switch happened (schedule runs only)."""
        if self.schedule is None or not distributed.is_main():
            return
        record = {"phase": self.schedule.phase, "method": self.method_name, "rollout_n": self.rollout_n,
                  "switched_at": self.schedule.switched_at}
        (self.run_dir / "phase.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    def _maybe_fail(self) -> None:
        if self.fail_after_step is not None and self.global_step == self.fail_after_step:
            raise RuntimeError(f"injected failure after step {self.global_step} (fail_after_step)")

    def train_step(self, tasks: list[Task]) -> dict[str, Any]:
        """One inner iteration on ``tasks``: rollout → context → teacher → loss → step → EMA → push.

        A step in which no sample on any rank has anything to learn from (e.g. plain SDPO with one
        rollout per prompt when every rollout succeeds, or prompts too long to generate from) is a
        logged no-op: no forward/backward, no optimizer or scheduler step, no EMA update and no weight
        push; its record has ``optim/skipped`` = 1.
        """
        timer = Timer()
        self.global_step += 1
        with timer("rollout"):
            samples = self._rollout(tasks)
        with timer("context"):
            context = self._update_context(samples)
        with timer("teacher_inputs"):
            items = self._build_items(samples, context)
        if self.records is not None:  # this step's rollouts, context outputs and teacher prompts
            update = context.update if context is not None else None
            self.records.write_step(self.global_step, collect_step_records(
                samples, update, items, samples[::distributed.world_size()], self.tokenizer),
                playbook=update.playbook if update is not None else None)
        if _any_rank(has_loss(items)):
            self._sleep_engine()
            loss_stats = self._optimize(items, timer)
            if self.teacher is not None:
                with timer("ema"):
                    # from the fp32 master weights when the engine keeps bf16 module copies
                    if isinstance(self.teacher, PartitionedEmaTeacher):  # local fp32 master partitions
                        self.teacher.update(self.student)
                    else:
                        self.teacher.update(self.student, full_param=distributed.master_param_reader(self.engine))
            with timer("sync"):
                self._push_weights()
        else:
            loss_stats = dict(_EMPTY_STATS, skipped=1.0)
        return self._log_step(samples, context.update if context else None, items, loss_stats, timer)

    # -- phases -----------------------------------------------------------------------------------
    def _rollout(self, tasks: list[Task]) -> list[Sample]:
        """This step's scored samples (task-major); each replica generates and scores its shard of tasks."""
        cfg = self.config
        seed = self.groups.shard_seed(derive_seed(cfg.train.seed, _PHASE_ID["rollout"], self.global_step))

        def work(shard: list[Task], _replica: int) -> list[list[Sample]]:
            if not shard:
                return []
            samples = collect_samples(self.backend, self.source, shard, n=self.rollout_n,
                                      temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                      max_tokens=cfg.rollout.max_tokens, seed=seed, stop=cfg.rollout.stop)
            return [samples[i * self.rollout_n:(i + 1) * self.rollout_n] for i in range(len(shard))]

        return [sample for group in self.groups.run(tasks, work) for sample in group]

    def _update_context(self, samples: list[Sample]) -> ContextResult | None:
        """The step's sample views, RESD's context update and each sample's demonstration.

        Every rank runs it on the same samples: the updater's generation calls are sharded over the
        replicas and gathered (:class:`ContextGenerator`), so every rank's playbook and solution
        buffer stay identical; the main rank writes them to the run directory. SDPO / SDPO+ss get
        only the demonstrations (same-group peers); GRPO gets None.
        """
        if self.method_name == "grpo":
            return None
        views = sample_views(samples, self.config.method.success_threshold)
        update = None
        if self.updater is not None:
            self.context_generate.start_step(self.global_step)
            update = self.updater.update(self.global_step, views)  # also stores this step's successes
            if distributed.is_main():
                self._write_context_outputs(update)
        buffer = self.updater.solutions if self.updater is not None and self.config.context.solution_buffer \
            else None
        return ContextResult(update=update, views=views,
                             solutions=choose_demonstrations(views, self.config.method, buffer))

    def _write_context_outputs(self, update: ContextUpdate) -> None:
        with (self.run_dir / "playbook_history.jsonl").open("a", encoding="utf-8") as handle:
            for event in update.events:
                handle.write(json.dumps(event) + "\n")
        (self.run_dir / "playbook.md").write_text(update.playbook or "", encoding="utf-8")

    def _build_items(self, samples: list[Sample], context: ContextResult | None) -> list[TrainItem]:
        """Per-sample training sequences for this rank's shard (teacher inputs for the SD methods)."""
        method = self.config.method
        shard = list(range(len(samples)))[distributed.rank()::distributed.world_size()]
        if self.method_name == "grpo":
            items = build_grpo_items(samples, self.rollout_n, method)
            return [items[i] for i in shard]
        if context is None:
            raise RuntimeError("self-distillation needs this step's context (demonstrations); got none")
        weights = self._sample_weights(samples)
        views: Sequence[SampleView] = context.views
        update = context.update
        cfg = self.config
        kwargs = {"enable_thinking": cfg.model.enable_thinking} if cfg.model.enable_thinking is not None else None
        items = build_teacher_items(
            [samples[i] for i in shard], [views[i] for i in shard], method=method, tokenizer=self.tokenizer,
            solutions=[context.solutions[i] for i in shard],
            reflections=[update.reflections[i] for i in shard] if update is not None else None,
            playbook=update.playbook if update is not None else "", chat_template_kwargs=kwargs)
        for item, i in zip(items, shard):
            item.weight = float(weights[i])
        return items

    def _sample_weights(self, samples: list[Sample]) -> list[float]:
        method = self.config.method
        if not method.success_rate_weighting:
            return [1.0] * len(samples)
        return success_rate_weights([s.reward for s in samples], threshold=method.success_threshold,
                                    alpha=method.success_alpha, beta=method.success_beta).tolist()

    def _optimize(self, items: list[TrainItem], timer: Timer) -> dict[str, float]:
        """Forward/backward every micro-batch of this rank's items, then the optimizer step."""
        self.engine.train()
        totals = dict(_EMPTY_STATS)
        micro = self.micro_batch_size
        prefix = teacher_shared_prefix(items) if self.teacher is not None else 0
        for start in range(0, self.grad_accum * micro, micro):
            chunk = items[start:start + micro]
            loss, stats = self._micro_batch_loss(chunk, timer, prefix)
            with timer("backward"):
                self.engine.backward(loss)
            with timer("optim"):
                if self.engine.is_gradient_accumulation_boundary() and self.config.distributed.zero_stage == 0:
                    totals["grad_norm"] = _grad_norm(self.engine.module)  # DeepSpeed records it only under ZeRO
                self.engine.step()
            totals["loss"] += float(loss.detach()) / self.grad_accum
            for key in ("clip_frac", "dual_clip_frac"):
                totals[key] += stats.get(key, 0.0) / self.grad_accum
            totals["divergence_sum"] += stats["divergence_sum"]
            totals["tokens"] += stats["tokens"]
        if self.config.distributed.zero_stage > 0:
            totals["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        return _all_reduce_stats(totals)

    def _micro_batch_loss(self, chunk: list[TrainItem], timer: Timer,
                          shared_prefix: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss of one micro-batch (already divided by nothing: DeepSpeed scales by 1/grad_accum).

        A micro-batch with nothing to distil (while other micro-batches of the step have a loss) gets
        an exact zero that is attached to the student's graph, so ``engine.backward`` accepts it.
        ``shared_prefix``: the step's teacher sequences share their first P tokens
        (:func:`~resd_learner.batch.teacher_shared_prefix`); used when every row of the chunk is distilled.
        """
        cfg = self.config
        device = self.engine.device
        pad = self.tokenizer.pad_token_id or 0
        student = pack_student(chunk, pad, device)
        if self.method_name == "grpo":
            with timer("loss"):
                per_token, clip = self._policy_loss(chunk, student)
                loss = aggregate_loss(per_token, student.mask, mode=cfg.loss.aggregation)
            return loss, {"divergence_sum": 0.0, "tokens": float(student.mask.sum()), **clip}
        if not has_loss(chunk):
            with timer("loss"):
                loss = self._graph_zero(student)
            return loss, {"divergence_sum": 0.0, "tokens": 0.0}
        with timer("teacher"):
            teacher = pack_teacher(chunk, pad, device)
            prefix = shared_prefix if all(it.distill for it in chunk) else 0  # other rows hold student ids
            t_hidden, t_head = self.teacher.response_hidden(teacher.ids, teacher.attention, teacher.positions,
                                                            shared_prefix=prefix)
            t_hidden = t_hidden.to(t_head.dtype)  # logits in fp32
        with timer("loss"):
            per_token = self._distill_loss(chunk, student, t_hidden, t_head)
            weights = torch.tensor([it.weight for it in chunk], dtype=torch.float32, device=device)
            loss = aggregate_loss(per_token, student.mask, sample_weights=weights, mode=cfg.loss.aggregation)
        mask = student.mask
        return loss, {"divergence_sum": float((per_token.detach() * mask).sum()), "tokens": float(mask.sum())}

    def _graph_zero(self, student: Packed) -> torch.Tensor:
        """0.0 attached to the student's graph (one cheap forward through the engine; gradients are zero)."""
        logits = self.engine(input_ids=student.ids, attention_mask=student.attention, logits_to_keep=1).logits
        return logits.sum() * 0.0

    def _distill_loss(self, chunk: list[TrainItem], student: Packed, t_hidden: torch.Tensor,
                      t_head: torch.Tensor) -> torch.Tensor:
        """Per-token [B, R] divergence, chunked over hidden states inside the engine's forward (every ZeRO
        stage; under ZeRO-3 the tied head is gathered for that forward, see :mod:`resd_learner.distill_forward`),
        times the rollout-correction weights when the engine returned the sampled tokens' log-probs."""
        cfg = self.config
        rollout = _rollout_logprobs(chunk, student.positions.shape[1])
        targets = response_targets(chunk, student.positions.shape[1], student.ids.device) if rollout is not None \
            else None
        inputs = DistillInputs(input_ids=student.ids, attention_mask=student.attention, positions=student.positions,
                               teacher_hidden=t_hidden, teacher_head=t_head, mask=student.mask,
                               chunk_size=cfg.loss.chunk_size, options=cfg.loss.loss_kwargs(),
                               rollout_logprobs=rollout, target_ids=targets)
        return self.engine(distill=inputs)

    def _policy_loss(self, chunk: list[TrainItem], student: Packed) -> tuple[torch.Tensor, dict[str, float]]:
        """GRPO per-token clipped surrogate (on-policy: old log-probs = current, detached) and its clip fractions."""
        method = self.config.method
        s_ids, s_pos, mask = student.ids, student.positions, student.mask
        logits = gather_positions(self.engine(input_ids=s_ids, attention_mask=student.attention).logits, s_pos)
        targets = response_targets(chunk, s_pos.shape[1], s_ids.device)
        logprobs = torch.log_softmax(logits.float() / self.config.loss.temperature, dim=-1)
        logprobs = logprobs.gather(-1, targets[..., None]).squeeze(-1)
        advantages = torch.tensor([it.advantage for it in chunk], dtype=torch.float32, device=s_ids.device)
        clip = dict(clip_low=method.grpo_clip_low, clip_high=method.grpo_clip_high, dual_clip=method.grpo_dual_clip)
        old = logprobs.detach()
        per_token = clipped_policy_loss(logprobs, old, advantages[:, None].expand_as(logprobs), mask, **clip)
        fractions = clip_fractions(logprobs.detach(), old, advantages, mask, **clip)
        if all(it.rollout_logprobs for it in chunk):
            rollout = torch.zeros_like(logprobs)
            for row, it in enumerate(chunk):
                rollout[row, :len(it.rollout_logprobs)] = torch.tensor(it.rollout_logprobs, dtype=torch.float32)
            # The engine's log-probs are untempered (Generation contract): compare at temperature 1.
            untempered = logprobs.detach() if self.config.loss.temperature == 1.0 else \
                target_logprobs(logits.detach(), targets)
            per_token = per_token * rollout_correction_weights(untempered, rollout) * mask
        return per_token, fractions

    def _push_weights(self) -> None:
        """Stream the student's weights into this rank's engine (waking it first if it sleeps); collective."""
        self._wake_engine()
        weight_sync.push_weights(self.backend, self.student, self.config.distributed.push_bucket_numel)

    def _sleep_engine(self) -> None:
        """Free the engine's memory for training (``rollout.sleep_level`` > 0, vLLM on CUDA)."""
        llm = getattr(self.backend, "llm", None)
        if self._sleep_level > 0 and llm is not None and not self._asleep:
            llm.sleep(level=self._sleep_level)
            self._asleep = True

    def _wake_engine(self) -> None:
        llm = getattr(self.backend, "llm", None)
        if self._asleep and llm is not None:
            llm.wake_up()
            self._asleep = False

    def close(self) -> None:
        """Shut down the generation engine this trainer built (before the process group goes away)."""
        if self._owns_llm and self.backend is not None:
            colocate.shutdown_engine(getattr(self.backend, "llm", None))
            self._owns_llm = False

    # -- metrics ----------------------------------------------------------------------------------
    def _log_step(self, samples: list[Sample], update: ContextUpdate | None, items: list[TrainItem],
                  loss_stats: dict[str, float], timer: Timer) -> dict[str, Any]:
        method = self.config.method
        rewards = np.array([s.reward for s in samples], dtype=float)
        scores = np.array([s.score.score if s.score else 0.0 for s in samples], dtype=float)
        values: dict[str, Any] = {
            "batch": self.next_batch,
            "rollout/reward_mean": float(rewards.mean()),
            "rollout/success_rate": float((rewards >= method.success_threshold).mean()),
            "rollout/per_test_case_mean": float(scores.mean()),
            "rollout/response_len_mean": float(np.mean([len(s.response_ids) for s in samples])),
            "rollout/truncated_frac": float(np.mean([s.truncated for s in samples])),
            "loss/" + ("policy" if self.method_name == "grpo" else "distill"): loss_stats["loss"],
            "loss/divergence": loss_stats["divergence_sum"] / max(loss_stats["tokens"], 1.0),
            "loss/tokens": loss_stats["tokens"],
            "optim/grad_norm": loss_stats["grad_norm"],
            "optim/lr": float(self.scheduler.get_last_lr()[0]) if self.scheduler is not None else 0.0,
            "optim/skipped": loss_stats["skipped"],
            "teacher/distilled_frac": float(np.mean([it.distill for it in items])) if items else 0.0,
            "method/phase": self.schedule.phase_index if self.schedule is not None else int(self.method_name == "grpo"),
            "method/name": self.method_name,
        }
        if self.method_name == "grpo":
            values["grpo/clip_frac"] = loss_stats["clip_frac"]
            values["grpo/dual_clip_frac"] = loss_stats["dual_clip_frac"]
        else:
            for section in ("playbook", "feedback", "reflection", "solution"):
                values[f"teacher/{section}_frac"] = float(np.mean([section in it.sections for it in items])) \
                    if items else 0.0
        if update is not None:
            for key, value in update.stats.items():
                values[f"context/{key}"] = value
        for phase in PHASES:
            values[f"time/{phase}_s"] = timer.seconds.get(phase, 0.0)
        values["time/step_s"] = sum(timer.seconds.values())
        record = self.logger.log(self.global_step, "train", values) if self.logger else values
        if self.logger:
            self.logger.advance(self.global_step, {"reward": values["rollout/reward_mean"],
                                                   "loss": loss_stats["loss"]})
        return record

    def validate(self) -> dict[str, Any]:
        """Sample ``eval.n`` responses per validation prompt; log mean@n / best@n of both accuracies."""
        cfg = self.config
        record: dict[str, Any] = {}
        if self.val_tasks:
            start = time.perf_counter()
            seed = self.groups.shard_seed(derive_seed(cfg.train.seed, _PHASE_ID["val"], self.global_step))
            n = cfg.eval.n

            def work(shard: list[Task], _replica: int) -> list[list[Sample]]:
                if not shard:
                    return []
                got = collect_samples(self.backend, self.source, shard, n=n, temperature=cfg.eval.temperature,
                                      top_p=cfg.eval.top_p, max_tokens=cfg.eval.max_tokens or cfg.rollout.max_tokens,
                                      seed=seed, stop=cfg.rollout.stop)
                return [got[i * n:(i + 1) * n] for i in range(len(shard))]

            samples = [s for group in self.groups.run(self.val_tasks, work) for s in group]
            per_task = [[float(s.score.passed) for s in samples[i * n:(i + 1) * n]] for i in range(len(self.val_tasks))]
            per_case = [[float(s.score.score) for s in samples[i * n:(i + 1) * n]] for i in range(len(self.val_tasks))]
            record_val_scores(self.run_dir, self.global_step, [t.example_id for t in self.val_tasks], per_case)
            if self.records is not None:  # every reply, its score and feedback (records/val_<step>.jsonl.gz)
                self.records.write_validation(self.global_step, samples)
            metrics = summarize({"per_task": per_task, "per_test_case": per_case}, n=n)
            values = {f"val/{k}": v for k, v in metrics.items()}
            values["val/reward_mean"] = float(np.mean([s.reward for s in samples]))
            values["time/val_s"] = time.perf_counter() - start
            if distributed.is_main():
                record = self.logger.log(self.global_step, "val", values) if self.logger else values
        return record

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self) -> Path:
        """Checkpoint at the current outer-batch boundary (collective)."""
        partitioned = isinstance(self.teacher, PartitionedEmaTeacher)
        teacher_state = self.teacher.state_dict() if self.teacher else None
        torch_state = {"rng": ckpt.capture_rng(), "teacher": None if partitioned else teacher_state}
        json_state = {"global_step": self.global_step, "next_batch": self.next_batch,
                      "num_batches": self.num_batches,
                      "context": self.updater.state_dict() if self.updater is not None and distributed.is_main()
                      else None,
                      "schedule": self.schedule.state_dict() if self.schedule is not None else None}
        return ckpt.save_checkpoint(self.run_dir / "checkpoints", self.global_step, self.engine,
                                    tokenizer=self.tokenizer, torch_state=torch_state, json_state=json_state,
                                    keep=self.config.train.keep_checkpoints,
                                    rank_state={"teacher": teacher_state} if partitioned else None)

    def _resume(self, path: Path) -> None:
        torch_state, json_state = ckpt.load_checkpoint(path, self.engine)
        self.global_step = int(json_state["global_step"])
        self.next_batch = int(json_state["next_batch"])
        teacher_state = (torch_state.get("rank_state") or {}).get("teacher") \
            if isinstance(self.teacher, PartitionedEmaTeacher) else torch_state.get("teacher")
        if self.teacher is not None and teacher_state is not None:
            self.teacher.load_state_dict(teacher_state)
        if self.updater is not None and json_state.get("context") is not None:
            self.updater.load_state_dict(json_state["context"])
        ckpt.restore_rng(torch_state["rng"])
        if self.schedule is not None:
            if json_state.get("schedule") is not None:
                self.schedule.load_state_dict(json_state["schedule"])
            if self.schedule.is_grpo:
                self._enter_grpo()
            else:
                self._write_phase_file()
        if distributed.is_main():
            for name in ("metrics.jsonl", "playbook_history.jsonl", "val_scores.jsonl"):
                truncate_jsonl(self.run_dir / name, self.global_step)
            if self.updater is not None:
                (self.run_dir / "playbook.md").write_text(self.updater.playbook.render(), encoding="utf-8")
        self._push_weights()


_EMPTY_STATS: dict[str, float] = {"loss": 0.0, "divergence_sum": 0.0, "tokens": 0.0, "grad_norm": 0.0,
                                  "clip_frac": 0.0, "dual_clip_frac": 0.0, "skipped": 0.0}
"""Loss statistics of a step before any micro-batch (and of a skipped step, with skipped = 1)."""

_MEAN_KEYS = ("loss", "clip_frac", "dual_clip_frac", "skipped")
"""Statistics averaged over ranks (the others are sums, except grad_norm, which is already global)."""


def _grad_norm(module: torch.nn.Module) -> float:
    """Global L2 norm of the accumulated gradients (before clipping)."""
    norms = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _rollout_logprobs(chunk: Sequence[TrainItem], width: int) -> torch.Tensor | None:
    """[B, width] log-probs the engine gave each sampled response token (0 in padding), or None when a
    sample with a response has none (e.g. the transformers backend without log-probs)."""
    rows = []
    for item in chunk:
        length = len(item.student_ids) - item.student_start
        if length and (item.rollout_logprobs is None or len(item.rollout_logprobs) != length):
            return None
        rows.append(list(item.rollout_logprobs or []))
    out = torch.zeros((len(chunk), width), dtype=torch.float32)
    for row, values in enumerate(rows):
        out[row, :len(values)] = torch.tensor(values, dtype=torch.float32)
    return out


def _any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on at least one rank (every rank gets the same answer)."""
    return bool(distributed.all_reduce_cpu([float(flag)], op="max")[0])


def _all_reduce_stats(stats: dict[str, float]) -> dict[str, float]:
    """Sum token counts and divergence sums over ranks; average the loss and the fractions."""
    if distributed.world_size() == 1:
        return stats
    keys = sorted(stats)
    out = dict(zip(keys, distributed.all_reduce_cpu([stats[k] for k in keys])))
    for key in _MEAN_KEYS:
        if key in out:
            out[key] /= distributed.world_size()
    out["grad_norm"] = stats["grad_norm"]
    return out
