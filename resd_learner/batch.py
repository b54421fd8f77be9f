"""Batch building: from scored rollouts to the packed tensors of one micro-batch.

Pure functions, testable without a model:

- :func:`sample_views`: what the context code sees of each sample (built **once** per step by the
  trainer and shared by the context update, the demonstration choice and the teacher inputs);
- :func:`choose_demonstrations`: which demonstration ("" for none) each sample's teacher gets;
- :func:`build_teacher_items`: the teacher sequence and distillation mask of each sample (SDPO,
  SDPO+ss, RESD);
- :func:`build_grpo_items`: group-normalised advantages (GRPO);
- :func:`pack`, :func:`gather_positions`, :func:`response_targets`: right-padded id/attention tensors
  and the positions that predict each response token — the one place where student and teacher
  sequences are aligned token by token;
- :func:`teacher_shared_prefix`: the token prefix all of a step's teacher sequences share.

The trainer (``trainer.py``) calls these in order; nothing here reads the trainer's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from resd_learner.config import MethodConfig
from resd_learner.context import (
    ContextUpdate,
    SampleView,
    SolutionBuffer,
    TeacherPromptTooLong,
    build_sdpo_teacher_inputs,
    build_teacher_inputs,
    choose_demonstration,
)
from resd_learner.grpo import group_advantages
from resd_learner.shared_prefix import shared_prefix_length
from resd_learner.types import Sample

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SELF_DISTILLATION_METHODS: tuple[str, ...] = ("resd", "sdpo", "sdpo_ss")
"""Methods whose loss distils a teacher (every method but GRPO)."""


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

    update: ContextUpdate | None
    """RESD's update (reflections, playbook, stats); None for SDPO / SDPO+ss."""
    views: list[SampleView]
    """The step's :func:`sample_views` (built once, shared by the context update and the teacher inputs)."""
    solutions: list[str]


def sample_views(samples: Sequence[Sample], success_threshold: float) -> list[SampleView]:
    """What the context code sees of each sample, in the same order.

    A sample succeeds when its reward is >= ``success_threshold``. As in the official reward code, a
    response that passes every test has no feedback (""); otherwise the view carries the env's
    privileged feedback when it offers one (:attr:`Score.context_feedback`), else its normal feedback,
    and the policy-safe feedback in ``policy_feedback``.
    """
    views = []
    for s in samples:
        failed = s.score is not None and not s.score.passed
        views.append(SampleView(example_id=s.task.example_id, group_index=s.group_index, prompt=s.task.prompt,
                                response=s.response_text, reward=s.reward, success=s.reward >= success_threshold,
                                feedback=s.score.context_feedback if failed else "",
                                policy_feedback=s.score.feedback if failed else ""))
    return views


def choose_demonstrations(views: Sequence[SampleView], method: MethodConfig,
                          buffer: SolutionBuffer | None = None) -> list[str]:
    """The demonstration ("" for none) each sample's teacher prompt gets, per method.

    - ``sdpo``: the first successful *peer* of the same rollout group; a sample's own success is never
      used and there is no cross-step memory (``buffer`` is ignored);
    - ``sdpo_ss``: the sample's own response if it succeeded, else the first successful peer;
    - ``resd``: own success, else a successful peer, else ``buffer``'s solution for the example id
      (``buffer`` = the solution buffer *after* this step's successes were stored, or None without a
      buffer); with ``method.use_solution`` False there is none;
    - ``grpo``: none.

    Thinking is stripped from every demonstration.
    """
    if method.name == "grpo" or not method.use_solution:
        return [""] * len(views)
    memory = buffer if method.name == "resd" else None
    return [choose_demonstration(v, views, memory, self_success=method.distill_self_success) for v in views]


def build_teacher_items(samples: Sequence[Sample], views: Sequence[SampleView], *, method: MethodConfig,
                        tokenizer: PreTrainedTokenizerBase, solutions: Sequence[str],
                        reflections: Sequence[str] | None = None, playbook: str = "",
                        chat_template_kwargs: dict[str, object] | None = None) -> list[TrainItem]:
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
    if method.name not in SELF_DISTILLATION_METHODS:
        raise ValueError(f"build_teacher_items is for self-distillation methods, got method.name={method.name!r}")
    count = len(samples)
    reflections = list(reflections) if reflections is not None else [""] * count
    if not (len(views) == len(solutions) == len(reflections) == count):
        raise ValueError(f"views ({len(views)}), solutions ({len(solutions)}) and reflections "
                         f"({len(reflections)}) must be aligned with the {count} samples")
    return [_teacher_item(samples[i], views[i].feedback, solutions[i], reflections[i], playbook, method, tokenizer,
                          chat_template_kwargs) for i in range(count)]


def _no_response_item(sample: Sample) -> TrainItem:
    """A placeholder for a sample without response tokens (nothing was generated): no loss."""
    return TrainItem(student_ids=sample.prompt_ids[-1:] or [0], student_start=1, distill=False,
                     skip_reason="no_response")


def _teacher_item(sample: Sample, feedback: str, solution: str, reflection: str, playbook: str,
                  method: MethodConfig, tokenizer: PreTrainedTokenizerBase,
                  chat_template_kwargs: dict[str, object] | None) -> TrainItem:
    if not sample.response_ids:  # nothing was generated (prompt too long): no loss for this sample
        return _no_response_item(sample)
    item = TrainItem(student_ids=sample.prompt_ids + sample.response_ids, student_start=len(sample.prompt_ids),
                     rollout_logprobs=sample.logprobs)
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
                use_playbook=method.use_playbook, use_solution=method.use_solution,
                use_previous_trial=method.use_previous_trial, layout=method.teacher_layout, **common)
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


def build_grpo_items(samples: Sequence[Sample], group_size: int, method: MethodConfig) -> list[TrainItem]:
    """GRPO training items: group-normalised advantages, no teacher (same order as ``samples``).

    ``samples`` holds ``group_size`` rollouts per prompt, contiguously (as ``collect_samples`` returns
    them). Advantage = (reward - group mean) / (group std + 1e-6) (std off with
    ``method.grpo_normalize_std=False``); a sample with an empty response gets no loss.
    """
    advantages = group_advantages([s.reward for s in samples], group_size,
                                  normalize_std=method.grpo_normalize_std).tolist()
    items = []
    for sample, advantage in zip(samples, advantages):
        if not sample.response_ids:
            items.append(_no_response_item(sample))
            continue
        items.append(TrainItem(student_ids=sample.prompt_ids + sample.response_ids,
                               student_start=len(sample.prompt_ids), advantage=float(advantage),
                               rollout_logprobs=sample.logprobs))
    return items


def has_loss(items: Sequence[TrainItem]) -> bool:
    """Whether any item contributes a loss term (a distilled sample, or a GRPO sample with a response)."""
    return any(it.distill and it.response_len > 0 for it in items)


# -- packing ------------------------------------------------------------------------------------
@dataclass
class Packed:
    """Right-padded sequences of one micro-batch.

    ``ids`` / ``attention``: [B, T]; ``positions``: [B, R], the position predicting each response
    token (``start - 1 + j`` predicts response token j); ``mask``: [B, R] float, 1 on response tokens.
    """

    ids: torch.Tensor
    attention: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor


def pack(sequences: Sequence[Sequence[int]], starts: Sequence[int], pad: int,
         device: torch.device | str = "cpu") -> Packed:
    """Pack sequences whose responses start at ``starts`` (each >= 1) into :class:`Packed` tensors."""
    if len(sequences) != len(starts) or not sequences:
        raise ValueError(f"pack needs one start per sequence and at least one sequence, got {len(sequences)} "
                         f"sequences and {len(starts)} starts")
    width = max(len(s) for s in sequences)
    resp = max(1, max(len(s) - st for s, st in zip(sequences, starts)))
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    positions = torch.zeros((len(sequences), resp), dtype=torch.long)
    mask = torch.zeros((len(sequences), resp), dtype=torch.float32)
    for row, (seq, start) in enumerate(zip(sequences, starts)):
        if start < 1:
            raise ValueError("a sequence must have at least one prompt token before its response")
        ids[row, :len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        attention[row, :len(seq)] = 1
        length = len(seq) - start
        positions[row, :length] = torch.arange(start - 1, start - 1 + length)
        mask[row, :length] = 1.0
    return Packed(ids.to(device), attention.to(device), positions.to(device), mask.to(device))


def pack_student(items: Sequence[TrainItem], pad: int, device: torch.device | str = "cpu") -> Packed:
    """The student sequences of ``items``; the mask is zero on rows that are not distilled."""
    packed = pack([it.student_ids for it in items], [it.student_start for it in items], pad, device)
    keep = torch.tensor([float(it.distill) for it in items], device=packed.mask.device)
    packed.mask = packed.mask * keep[:, None]
    return packed


def pack_teacher(items: Sequence[TrainItem], pad: int, device: torch.device | str = "cpu") -> Packed:
    """The teacher sequences of ``items`` (a non-distilled row repeats its student sequence, masked out)."""
    return pack([it.teacher_ids if it.distill else it.student_ids for it in items],
                [it.teacher_start if it.distill else it.student_start for it in items], pad, device)


def teacher_shared_prefix(items: Sequence[TrainItem]) -> int:
    """How many leading tokens the teacher sequences of the distilled ``items`` share (0: none worth sharing).

    The prefix stops before the first position any of them reads (``teacher_start - 1``), so every
    hidden state the loss needs lies after it (:func:`resd_learner.shared_prefix.shared_prefix_length`).
    """
    distilled = [it for it in items if it.distill and it.teacher_ids]
    return shared_prefix_length([it.teacher_ids for it in distilled], [it.teacher_start - 1 for it in distilled])


def gather_positions(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``states[b, positions[b, j]]`` for [B, T, D] states and [B, R] positions → [B, R, D]."""
    index = positions.to(states.device)[..., None].expand(-1, -1, states.shape[-1])
    return states.gather(1, index)


def response_targets(items: Sequence[TrainItem], width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The response token ids [B, width] (0 in padding)."""
    targets = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        response = it.student_ids[it.student_start:]
        targets[row, :len(response)] = torch.tensor(response, dtype=torch.long)
    return targets.to(device)
