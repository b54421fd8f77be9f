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

The teacher therefore sees the context updated in the same step, as in the official code.
The method switch (``method.name``) changes only steps 3-7: SDPO/SDPO+ss build the SDPO teacher
prompt (demonstration or feedback, no playbook, no reflection), GRPO skips the teacher and uses the
clipped policy-gradient loss over groups of ``rollout.n`` responses.

Batch construction is exposed as pure functions so that it can be tested without a model:
:func:`sample_views`, :func:`choose_demonstrations` (which demonstration each sample gets),
:func:`build_teacher_items` / :func:`build_teacher_batch` (teacher sequences and the per-sample
distillation mask) and :func:`build_grpo_items` (group-normalised advantages).

With ``method.switch_to_grpo.success_rate`` set, a self-distillation run switches to GRPO (groups of
``method.switch_to_grpo.n``) at the first outer-batch boundary where the training success rate,
averaged over the last ``window`` outer batches, reaches the threshold (:mod:`resd_learner.schedule`).

Determinism: every sampling call gets a seed derived from ``train.seed``, the phase and the step, so
a resumed run draws exactly the samples an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resd_learner import checkpoint as ckpt
from resd_learner import distributed
from resd_learner.config import MethodConfig, RunConfig, dump_yaml
from resd_learner.envs import make_task_source
from resd_learner.metrics import MetricsLogger, truncate_jsonl
from resd_learner.models import load_tokenizer, resolve_model_path
from resd_learner.rollout import collect_samples, make_backend
from resd_learner.schedule import GrpoSwitch
from resd_learner.summary import print_run_summary, record_val_scores
from resd_learner.types import Sample, Task
from resd_learner.warm_start import warm_started_model

PHASES = ("rollout", "context", "teacher", "loss", "optim", "ema", "sync")


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers (run seed, phase id, step, ...); stable across processes."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0]) & 0x7FFFFFFF


_PHASE_ID = {"rollout": 1, "context": 2, "val": 3}


@dataclass
class TrainItem:
    """One sequence prepared for the loss: student ids, teacher ids, where each response starts."""

    student_ids: list[int]
    student_start: int
    teacher_ids: list[int] = field(default_factory=list)
    teacher_start: int = 0
    distill: bool = True
    weight: float = 1.0
    advantage: float = 0.0
    rollout_logprobs: list[float] | None = None
    sections: tuple[str, ...] = ()
    """Sections present in the teacher prompt (e.g. prompt, playbook, feedback, reflection, solution)."""
    skip_reason: str = ""
    """Why the sample has no loss (distill False): "no_response", "no_signal" or "teacher_too_long"."""

    @property
    def response_len(self) -> int:
        return len(self.student_ids) - self.student_start


@dataclass
class ContextResult:
    """The context update of one step and the demonstration chosen for each sample (same order)."""

    update: Any
    solutions: list[str]


def sample_views(samples: list[Sample], success_threshold: float) -> list[Any]:
    """What the context code sees of each sample (``SampleView``), in the same order.

    A sample succeeds when its reward is >= ``success_threshold``. As in the official reward code, a
    response that passes every test has no feedback ("").
    """
    from resd_learner.context import SampleView

    return [SampleView(example_id=s.task.example_id, group_index=s.group_index, prompt=s.task.prompt,
                       response=s.response_text, reward=s.reward, success=s.reward >= success_threshold,
                       feedback="" if s.score is None or s.score.passed else s.score.feedback)
            for s in samples]


def choose_demonstrations(views: list[Any], method: MethodConfig, buffer: Any = None) -> list[str]:
    """The demonstration ("" for none) each sample's teacher prompt gets, per method.

    - ``sdpo``: the first successful *peer* of the same rollout group; a sample's own success is never
      used and there is no cross-step memory (``buffer`` is ignored);
    - ``sdpo_ss``: the sample's own response if it succeeded, else the first successful peer;
    - ``resd``: own success, else a successful peer, else ``buffer``'s solution for the example id
      (``buffer`` = the :class:`~resd_learner.context.SolutionBuffer` *after* this step's successes
      were stored, or None without a buffer); with ``method.use_solution`` False there is none;
    - ``grpo``: none.

    Thinking is stripped from every demonstration.
    """
    from resd_learner.context import choose_demonstration

    if method.name == "grpo" or not method.use_solution:
        return [""] * len(views)
    memory = buffer if method.name == "resd" else None
    return [choose_demonstration(v, views, memory, self_success=method.distill_self_success) for v in views]


def build_teacher_items(samples: list[Sample], views: list[Any], *, method: MethodConfig, tokenizer: Any,
                        solutions: list[str], reflections: list[str] | None = None, playbook: str = "",
                        chat_template_kwargs: dict[str, Any] | None = None) -> list[TrainItem]:
    """Teacher sequences and distillation masks for self-distillation samples (same order as ``samples``).

    ``views``, ``solutions`` and ``reflections`` are aligned with ``samples`` (from
    :func:`sample_views`, :func:`choose_demonstrations` and the context update). ``playbook`` is the
    playbook text *after* this step's update (RESD only).

    Mask (``item.distill``), following the official trainer: a sample is distilled only when its
    teacher sees a privileged signal —
    - SDPO / SDPO+ss: a demonstration, else non-empty environment feedback;
    - RESD: a demonstration, non-empty feedback (shown only when there is no demonstration) or a
      non-empty reflection; the playbook and the previous trial alone do not count.
    A sample with an empty response, or whose untrimmable prompt parts exceed
    ``method.max_teacher_length``, is not distilled either. ``skip_reason`` says why.

    Returns:
        TrainItems with ``student_ids`` = prompt + response ids, ``teacher_ids`` = enriched prompt +
        the same response ids, ``sections`` = the teacher prompt's sections; weight 1.0.
    """
    if method.name not in ("resd", "sdpo", "sdpo_ss"):
        raise ValueError(f"build_teacher_items is for self-distillation methods, got method.name={method.name!r}")
    count = len(samples)
    reflections = reflections if reflections is not None else [""] * count
    if not (len(views) == len(solutions) == len(reflections) == count):
        raise ValueError(f"views ({len(views)}), solutions ({len(solutions)}) and reflections "
                         f"({len(reflections)}) must be aligned with the {count} samples")
    return [_teacher_item(samples[i], views[i].feedback, solutions[i], reflections[i], playbook, method, tokenizer,
                          chat_template_kwargs) for i in range(count)]


def build_teacher_batch(samples: list[Sample], *, method: MethodConfig, tokenizer: Any, buffer: Any = None,
                        reflections: list[str] | None = None, playbook: str = "",
                        chat_template_kwargs: dict[str, Any] | None = None) -> list[TrainItem]:
    """:func:`sample_views` → :func:`choose_demonstrations` → :func:`build_teacher_items` for one batch.

    ``buffer``, ``reflections`` and ``playbook`` are the context state after this step's update.
    """
    views = sample_views(samples, method.success_threshold)
    solutions = choose_demonstrations(views, method, buffer)
    return build_teacher_items(samples, views, method=method, tokenizer=tokenizer, solutions=solutions,
                               reflections=reflections, playbook=playbook, chat_template_kwargs=chat_template_kwargs)


def _teacher_item(sample: Sample, feedback: str, solution: str, reflection: str, playbook: str,
                  method: MethodConfig, tokenizer: Any, chat_template_kwargs: dict[str, Any] | None) -> TrainItem:
    from resd_learner.context import TeacherPromptTooLong, build_sdpo_teacher_inputs, build_teacher_inputs

    if not sample.response_ids:  # nothing was generated (prompt too long): no loss for this sample
        return TrainItem(student_ids=sample.prompt_ids[-1:] or [0], student_start=1, distill=False,
                         skip_reason="no_response")
    item = TrainItem(student_ids=sample.prompt_ids + sample.response_ids, student_start=len(sample.prompt_ids))
    solution = (solution or "").strip() if method.use_solution else ""
    feedback = (feedback or "").strip() if method.use_feedback else ""
    reflection = (reflection or "").strip() if method.name == "resd" and method.use_reflection else ""
    if not (solution or feedback or reflection):  # no privileged signal: the official mask is 0
        item.distill, item.skip_reason = False, "no_signal"
        return item
    common = dict(prompt_messages=list(sample.task.messages), response_ids=sample.response_ids,
                  max_length=method.max_teacher_length, chat_template_kwargs=chat_template_kwargs)
    try:
        if method.name == "resd":
            inputs = build_teacher_inputs(
                tokenizer, feedback=feedback, reflection=reflection, playbook=playbook, solution=solution,
                template=method.teacher_template, previous_trial=sample.response_text,
                use_feedback=method.use_feedback, use_reflection=method.use_reflection,
                use_playbook=method.use_playbook, use_solution=method.use_solution, **common)
        else:
            inputs = build_sdpo_teacher_inputs(tokenizer, solution=solution, feedback=feedback,
                                               use_feedback=method.use_feedback, **common)
    except TeacherPromptTooLong:
        item.distill, item.skip_reason = False, "teacher_too_long"
        return item
    if inputs is None:  # cannot happen after the signal check above; kept as a guard of the contract
        item.distill, item.skip_reason = False, "no_signal"
        return item
    item.teacher_ids, item.teacher_start = list(inputs.input_ids), int(inputs.response_start)
    item.sections = tuple(inputs.sections)
    if len(item.teacher_ids) - item.teacher_start != item.response_len:
        raise RuntimeError("the teacher sequence does not end with the student's response ids; "
                           "build_teacher_inputs must append response_ids unchanged")
    return item


def build_grpo_items(samples: list[Sample], group_size: int, method: MethodConfig) -> list[TrainItem]:
    """GRPO training items: group-normalised advantages, no teacher (same order as ``samples``).

    ``samples`` holds ``group_size`` rollouts per prompt, contiguously (as ``collect_samples`` returns
    them). Advantage = (reward - group mean) / (group std + 1e-6) (std off with
    ``method.grpo_normalize_std=False``); a sample with an empty response gets no loss.
    """
    from resd_learner.grpo import group_advantages

    advantages = group_advantages([s.reward for s in samples], group_size,
                                  normalize_std=method.grpo_normalize_std).tolist()
    items = []
    for sample, advantage in zip(samples, advantages):
        if not sample.response_ids:
            items.append(TrainItem(student_ids=sample.prompt_ids[-1:] or [0], student_start=1, distill=False,
                                   skip_reason="no_response"))
            continue
        items.append(TrainItem(student_ids=sample.prompt_ids + sample.response_ids,
                               student_start=len(sample.prompt_ids), advantage=float(advantage),
                               rollout_logprobs=sample.logprobs))
    return items


class Timer:
    """Accumulates wall time per phase name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
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

    def __init__(self, config: RunConfig, *, llm: Any = None, fail_after_step: int | None = None) -> None:
        self.config = config
        self.run_dir = Path(config.train.run_dir)
        self.fail_after_step = fail_after_step
        if distributed.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.global_step = 0
        self.next_batch = 0
        distributed.init_distributed(config.distributed.backend, config.distributed.master_port)
        self._seed_everything(config.train.seed)
        self.model_dir = resolve_model_path(config.model.path, config.model.cache_dir)
        self.model_dir = warm_started_model(self.model_dir, config.warm_start, env_id=config.env.id,
                                            train_split=config.env.train_split, num_train=config.env.num_train,
                                            family_kwargs=dict(config.env.kwargs), cache_dir=config.model.cache_dir)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.source = make_task_source(config.env)
        self.train_tasks = self.source.tasks(config.env.train_split, config.env.num_train)
        validates = config.train.val_every > 0 or config.train.val_before_train or config.train.val_after_train
        self.val_tasks = self.source.tasks(config.env.val_split, config.env.num_val) if validates else []
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
        self.backend = make_backend(config.rollout, self.model_dir, self.tokenizer, dtype=config.model.dtype,
                                    enable_thinking=config.model.enable_thinking, seed=config.train.seed,
                                    llm=llm) if distributed.is_main() else None
        self.updater = self._build_updater() if config.method.name == "resd" else None
        self.logger: MetricsLogger | None = None
        self._context_calls = 0

    # -- construction ---------------------------------------------------------------------------
    def _seed_everything(self, seed: int) -> None:
        import random

        import torch

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _build_models(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        cfg = self.config
        model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=torch.float32)
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        model.config.use_cache = False
        self.teacher = None
        if cfg.method.uses_teacher:
            from resd_learner.teacher import EmaTeacher

            self.teacher = EmaTeacher(model, rate=cfg.teacher.rate, update_every=cfg.teacher.update_every)
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
        self.engine, self.optimizer, self.scheduler = distributed.build_engine(
            model, cfg.optim, zero_stage=cfg.distributed.zero_stage, micro_batch_size=micro,
            grad_accum=self.grad_accum, bf16=cfg.model.dtype == "bfloat16")

    def _build_updater(self) -> Any:
        from resd_learner.context import ContextUpdater

        return ContextUpdater(self.config.context, self._context_generate, seed=self.config.train.seed)

    def _context_generate(self, chats: list[list[dict[str, str]]]) -> list[str]:
        """The student in diagnostic mode (reflector / tagger / curator calls), training sampling settings."""
        cfg = self.config
        self._context_calls += 1
        seed = derive_seed(cfg.train.seed, _PHASE_ID["context"], self.global_step, self._context_calls)
        gens = self.backend.generate(chats, n=1, temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                     max_tokens=max(1, cfg.context.max_reflection_tokens), seed=seed)
        return [g[0].text for g in gens]

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, resume_from: str | Path | None = None) -> dict[str, Any]:
        """Run the stream to the end (or resume it from a checkpoint directory); returns the last metrics."""
        cfg = self.config
        if resume_from is not None:
            self._resume(Path(resume_from))
        elif distributed.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for name in ("metrics.jsonl", "playbook_history.jsonl", "val_scores.jsonl"):
                (self.run_dir / name).unlink(missing_ok=True)
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
        """One inner iteration on ``tasks``: rollout → context → teacher → loss → step → EMA → push."""
        timer = Timer()
        self.global_step += 1
        with timer("rollout"):
            samples = self._rollout(tasks)
        with timer("context"):
            context = self._update_context(samples)
        with timer("teacher"):
            items = self._build_items(samples, context)
        loss_stats = self._optimize(items, timer)
        if self.teacher is not None:
            with timer("ema"):
                self.teacher.update(self.engine.module)
        with timer("sync"):
            self._push_weights()
        return self._log_step(samples, context.update if context else None, items, loss_stats, timer)

    # -- phases -----------------------------------------------------------------------------------
    def _rollout(self, tasks: list[Task]) -> list[Sample]:
        cfg = self.config
        samples = None
        if distributed.is_main():
            seed = derive_seed(cfg.train.seed, _PHASE_ID["rollout"], self.global_step)
            samples = collect_samples(self.backend, self.source, tasks, n=self.rollout_n,
                                      temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                      max_tokens=cfg.rollout.max_tokens, seed=seed)
        return _broadcast(samples)

    def _views(self, samples: list[Sample]) -> list[Any]:
        return sample_views(samples, self.config.method.success_threshold)

    def _update_context(self, samples: list[Sample]) -> ContextResult | None:
        """RESD's context update (main rank), then each sample's demonstration; both sent to every rank.

        SDPO / SDPO+ss get only the demonstrations (same-group peers); GRPO gets None.
        """
        if self.method_name == "grpo":
            return None
        result = None
        if distributed.is_main():
            self._context_calls = 0
            views = self._views(samples)
            update = None
            if self.updater is not None:
                update = self.updater.update(self.global_step, views)  # also stores this step's successes
                self._write_context_outputs(update)
            buffer = self.updater.solutions if self.updater is not None and self.config.context.solution_buffer \
                else None
            result = ContextResult(update=update, solutions=choose_demonstrations(views, self.config.method, buffer))
        return _broadcast(result)

    def _write_context_outputs(self, update: Any) -> None:
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
        views = self._views(samples)
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
        from resd_learner.rebalance import success_rate_weights

        return success_rate_weights([s.reward for s in samples], threshold=method.success_threshold,
                                    alpha=method.success_alpha, beta=method.success_beta).tolist()

    def _optimize(self, items: list[TrainItem], timer: Timer) -> dict[str, float]:
        """Forward/backward every micro-batch of this rank's items, then the optimizer step."""
        self.engine.train()
        totals = {"loss": 0.0, "divergence_sum": 0.0, "tokens": 0.0, "grad_norm": 0.0}
        micro = self.micro_batch_size
        for start in range(0, self.grad_accum * micro, micro):
            chunk = items[start:start + micro]
            loss, stats = self._micro_batch_loss(chunk, timer)
            with timer("loss"):
                self.engine.backward(loss)
            with timer("optim"):
                if self.engine.is_gradient_accumulation_boundary() and self.config.distributed.zero_stage == 0:
                    totals["grad_norm"] = _grad_norm(self.engine.module)  # DeepSpeed records it only under ZeRO
                self.engine.step()
            totals["loss"] += float(loss.detach()) / self.grad_accum
            totals["divergence_sum"] += stats["divergence_sum"]
            totals["tokens"] += stats["tokens"]
        if self.config.distributed.zero_stage > 0:
            totals["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        return _all_reduce_stats(totals)

    def _micro_batch_loss(self, chunk: list[TrainItem], timer: Timer) -> tuple[Any, dict[str, float]]:
        """Scalar loss of one micro-batch (already divided by nothing: DeepSpeed scales by 1/grad_accum)."""
        import torch

        from resd_learner.loss import aggregate_loss

        cfg = self.config
        device = self.engine.device
        pad = self.tokenizer.pad_token_id or 0
        s_ids, s_att, s_pos, mask = _pack([it.student_ids for it in chunk], [it.student_start for it in chunk],
                                          pad, device)
        mask = mask * torch.tensor([float(it.distill) for it in chunk], device=device)[:, None]
        if self.method_name == "grpo":
            with timer("loss"):
                per_token = self._policy_loss(chunk, s_ids, s_att, s_pos, mask)
                loss = aggregate_loss(per_token, mask, mode=cfg.loss.aggregation)
            return loss, {"divergence_sum": 0.0, "tokens": float(mask.sum())}
        with timer("teacher"):
            t_ids, t_att, t_pos, _ = _pack([it.teacher_ids if it.distill else it.student_ids for it in chunk],
                                           [it.teacher_start if it.distill else it.student_start for it in chunk],
                                           pad, device)
            t_hidden, t_head = self.teacher.hidden_and_head(t_ids, t_att)
            t_hidden = _gather_positions(t_hidden, t_pos)
        with timer("loss"):
            per_token = self._distill_loss(s_ids, s_att, s_pos, t_hidden, t_head, mask)
            weights = torch.tensor([it.weight for it in chunk], dtype=torch.float32, device=device)
            loss = aggregate_loss(per_token, mask, sample_weights=weights, mode=cfg.loss.aggregation)
        return loss, {"divergence_sum": float((per_token.detach() * mask).sum()), "tokens": float(mask.sum())}

    def _distill_loss(self, s_ids: Any, s_att: Any, s_pos: Any, t_hidden: Any, t_head: Any, mask: Any) -> Any:
        """Per-token [B, R] divergence: chunked over hidden states (ZeRO 0-2) or, under ZeRO-3, from
        logits of the response span only (the partitioned head cannot be chunked outside the engine)."""
        from resd_learner.loss import chunked_f_divergence_loss, f_divergence_loss

        cfg = self.config
        model = self.engine.module
        options = cfg.loss.loss_kwargs()
        if cfg.distributed.zero_stage == 3:
            # The tied head is partitioned and must be used inside the engine's forward (used outside it,
            # ZeRO-3 loses part of the tied weight's gradient). Ask for logits on the response span only.
            import torch

            first, last = int(s_pos.min()), int(s_pos.max())
            keep = torch.arange(first, last + 1, device=s_ids.device)
            span = self.engine(input_ids=s_ids, attention_mask=s_att, logits_to_keep=keep).logits
            logits = _gather_positions(span, s_pos - first)
            teacher_logits = t_hidden.to(t_head.dtype) @ t_head.T
            return f_divergence_loss(logits, teacher_logits.to(logits.device), mask, **options)
        hidden = model.base_model(input_ids=s_ids, attention_mask=s_att, use_cache=False).last_hidden_state
        head = model.get_output_embeddings().weight
        return chunked_f_divergence_loss(_gather_positions(hidden, s_pos), t_hidden.to(hidden.device), head,
                                         t_head.to(hidden.device), mask, chunk_size=cfg.loss.chunk_size, **options)

    def _policy_loss(self, chunk: list[TrainItem], s_ids: Any, s_att: Any, s_pos: Any, mask: Any) -> Any:
        """GRPO per-token clipped surrogate (on-policy: old log-probs = current, detached)."""
        import torch

        from resd_learner.grpo import clipped_policy_loss
        from resd_learner.loss import rollout_correction_weights

        method = self.config.method
        logits = _gather_positions(self.engine(input_ids=s_ids, attention_mask=s_att).logits, s_pos)
        targets = _response_targets(chunk, s_pos.shape[1], s_ids.device)
        logprobs = torch.log_softmax(logits.float() / self.config.loss.temperature, dim=-1)
        logprobs = logprobs.gather(-1, targets[..., None]).squeeze(-1)
        advantages = torch.tensor([it.advantage for it in chunk], dtype=torch.float32, device=s_ids.device)
        per_token = clipped_policy_loss(logprobs, logprobs.detach(), advantages[:, None].expand_as(logprobs), mask,
                                        clip_low=method.grpo_clip_low, clip_high=method.grpo_clip_high,
                                        dual_clip=method.grpo_dual_clip)
        if all(it.rollout_logprobs for it in chunk):
            rollout = torch.zeros_like(logprobs)
            for row, it in enumerate(chunk):
                rollout[row, :len(it.rollout_logprobs)] = torch.tensor(it.rollout_logprobs, dtype=torch.float32)
            per_token = per_token * rollout_correction_weights(logprobs.detach(), rollout) * mask
        return per_token

    def _push_weights(self) -> None:
        weights = distributed.full_state_dict(self.engine)
        if self.backend is not None:
            self.backend.push_weights(weights)

    # -- metrics ----------------------------------------------------------------------------------
    def _log_step(self, samples: list[Sample], update: Any, items: list[TrainItem], loss_stats: dict[str, float],
                  timer: Timer) -> dict[str, Any]:
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
            "teacher/distilled_frac": float(np.mean([it.distill for it in items])) if items else 0.0,
            "method/phase": self.schedule.phase_index if self.schedule is not None else int(self.method_name == "grpo"),
            "method/name": self.method_name,
        }
        if self.method_name != "grpo":
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
        from resd_learner.evaluate import summarize

        cfg = self.config
        record: dict[str, Any] = {}
        if distributed.is_main() and self.val_tasks:
            start = time.perf_counter()
            seed = derive_seed(cfg.train.seed, _PHASE_ID["val"], self.global_step)
            samples = collect_samples(self.backend, self.source, self.val_tasks, n=cfg.eval.n,
                                      temperature=cfg.eval.temperature, top_p=cfg.eval.top_p,
                                      max_tokens=cfg.eval.max_tokens or cfg.rollout.max_tokens, seed=seed)
            n = cfg.eval.n
            per_task = [[float(s.score.passed) for s in samples[i * n:(i + 1) * n]] for i in range(len(self.val_tasks))]
            per_case = [[float(s.score.score) for s in samples[i * n:(i + 1) * n]] for i in range(len(self.val_tasks))]
            record_val_scores(self.run_dir, self.global_step, [t.example_id for t in self.val_tasks], per_case)
            metrics = summarize({"per_task": per_task, "per_test_case": per_case}, n=n)
            values = {f"val/{k}": v for k, v in metrics.items()}
            values["val/reward_mean"] = float(np.mean([s.reward for s in samples]))
            values["time/val_s"] = time.perf_counter() - start
            record = self.logger.log(self.global_step, "val", values) if self.logger else values
        distributed.barrier()
        return record

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self) -> Path:
        """Checkpoint at the current outer-batch boundary (collective)."""
        from resd_learner.checkpoint import capture_rng

        torch_state = {"rng": capture_rng(), "teacher": self.teacher.state_dict() if self.teacher else None}
        json_state = {"global_step": self.global_step, "next_batch": self.next_batch,
                      "num_batches": self.num_batches,
                      "context": self.updater.state_dict() if self.updater is not None and distributed.is_main()
                      else None,
                      "schedule": self.schedule.state_dict() if self.schedule is not None else None}
        return ckpt.save_checkpoint(self.run_dir / "checkpoints", self.global_step, self.engine,
                                    tokenizer=self.tokenizer, torch_state=torch_state, json_state=json_state,
                                    keep=self.config.train.keep_checkpoints)

    def _resume(self, path: Path) -> None:
        torch_state, json_state = ckpt.load_checkpoint(path, self.engine)
        self.global_step = int(json_state["global_step"])
        self.next_batch = int(json_state["next_batch"])
        if self.teacher is not None and torch_state.get("teacher") is not None:
            self.teacher.load_state_dict(torch_state["teacher"])
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


def _pack(sequences: list[list[int]], starts: list[int], pad: int, device: Any) -> tuple[Any, Any, Any, Any]:
    """Right-padded ids [B, T], attention [B, T], the positions predicting each response token [B, R]
    (position ``start - 1 + j`` predicts response token j) and the response mask [B, R]."""
    import torch

    width = max(len(s) for s in sequences)
    resp = max(1, max(len(s) - st for s, st in zip(sequences, starts)))
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    positions = torch.zeros((len(sequences), resp), dtype=torch.long)
    mask = torch.zeros((len(sequences), resp), dtype=torch.float32)
    for row, (seq, start) in enumerate(zip(sequences, starts)):
        if start < 1:
            raise ValueError("a sequence must have at least one prompt token before its response")
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention[row, :len(seq)] = 1
        length = len(seq) - start
        positions[row, :length] = torch.arange(start - 1, start - 1 + length)
        mask[row, :length] = 1.0
    return ids.to(device), attention.to(device), positions.to(device), mask.to(device)


def _gather_positions(states: Any, positions: Any) -> Any:
    """``states[b, positions[b, j]]`` for [B, T, D] states and [B, R] positions → [B, R, D]."""
    index = positions.to(states.device)[..., None].expand(-1, -1, states.shape[-1])
    return states.gather(1, index)


def _response_targets(chunk: list[TrainItem], width: int, device: Any) -> Any:
    """The response token ids [B, R] (0 in padding)."""
    import torch

    targets = torch.zeros((len(chunk), width), dtype=torch.long)
    for row, it in enumerate(chunk):
        response = it.student_ids[it.student_start:]
        targets[row, :len(response)] = torch.tensor(response, dtype=torch.long)
    return targets.to(device)


def _grad_norm(module: Any) -> float:
    """Global L2 norm of the accumulated gradients (before clipping)."""
    import torch

    norms = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _broadcast(obj: Any) -> Any:
    """Send a picklable object from rank 0 to every rank (identity with one process)."""
    if distributed.world_size() == 1:
        return obj
    import torch.distributed as dist

    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def _all_reduce_stats(stats: dict[str, float]) -> dict[str, float]:
    """Sum token counts and divergence sums over ranks; average the loss."""
    if distributed.world_size() == 1:
        return stats
    import torch
    import torch.distributed as dist

    keys = sorted(stats)
    values = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    out = dict(zip(keys, values.tolist()))
    out["loss"] /= distributed.world_size()
    out["grad_norm"] = stats["grad_norm"]
    return out
