"""Build the self-teacher's input ids: an enriched prompt followed by the student's response ids.

Owns the RESD teacher prompt (:func:`build_teacher_inputs`) and the SDPO baseline's
(:func:`build_sdpo_teacher_inputs`), including trimming to a token budget. Pure Python: the tokenizer
is duck-typed (``apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kw)`` must
return the text, ``encode(text, add_special_tokens=False)`` the ids; ``decode`` is optional).

RESD prompt layout (one user turn after the original system messages):
  role sentence (per template) + guidance; then the sections PROMPT, PLAYBOOK, PREVIOUS TRIAL,
  ENVIRONMENT FEEDBACK, REFLECTION, SUCCESSFUL TRIAL in this order (``layout="official"``; with
  ``lessons_first`` / ``task_last`` the same sections in other orders, ``prompts.teacher.SECTION_ORDERS``), each omitted when empty or
  disabled; then a closing instruction. As in the official code, the feedback is dropped when a
  solution is shown (``feedback_only_without_solution``).

Budget: ``max_length`` bounds the *prompt* tokens (everything before the response), like the
official ``max_reprompt_len``; the response ids are appended unchanged on top. When the prompt is
too long, sections are trimmed in the order playbook (whole lines, keeping the head), reflection
(head kept), feedback (head kept), solution (tail kept, where the final answer is), previous trial
(tail kept); the original prompt, the role/guidance/closing text and the assistant header are never
touched. Each trimmed section carries a marker saying how many characters were cut; a section
trimmed to nothing is dropped. If the untouchable parts alone exceed the budget,
:class:`TeacherPromptTooLong` is raised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .parsing import strip_thinking
from .prompts.teacher import (
    CLOSING,
    GUIDANCE,
    ROLE_SENTENCES,
    SDPO_CLOSING,
    SDPO_FEEDBACK_TEMPLATE,
    SDPO_SOLUTION_TEMPLATE,
    SECTION_ORDERS,
    SECTION_TEMPLATE,
    SECTION_TITLES,
    TRIM_MARKER,
)

TEMPLATES = tuple(ROLE_SENTENCES)
TEACHER_LAYOUTS = tuple(SECTION_ORDERS)
TRIM_ORDER = ("playbook", "reflection", "feedback", "solution", "previous_trial")
_KEEP_TAIL = {"solution", "previous_trial"}
_BY_LINE = {"playbook"}


class TeacherPromptTooLong(ValueError):
    """The parts of a teacher prompt that are never trimmed exceed ``max_length`` tokens."""


@dataclass
class TeacherInputs:
    """Teacher sequence for one sample.

    ``input_ids`` = enriched prompt ids + the response ids unchanged; ``response_start`` = index of the
    first response token (= number of prompt ids); ``trimmed`` = characters removed per section to fit
    the budget (only sections that were trimmed); ``sections`` = the sections present, in order;
    ``text`` = the rendered prompt (chat template applied) before the response.
    """

    input_ids: list[int]
    response_start: int
    trimmed: dict[str, int] = field(default_factory=dict)
    sections: tuple[str, ...] = ()
    text: str = ""


def template_for_env(env_id: str) -> str:
    """Template name for an env id: the first of manufactoria/bouncingsim/finer in it, else "generic"."""
    lowered = (env_id or "").lower()
    for name in ("manufactoria", "bouncingsim", "finer"):
        if name in lowered:
            return name
    return "generic"


# ---------------------------------------------------------------- helpers
def _check_common(
    prompt_messages: Sequence[dict[str, str]], response_ids: Sequence[int], max_length: int
) -> tuple[list[dict[str, str]], str]:
    """Validate inputs; return (system messages, prompt text of the last user message)."""
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise ValueError(
            f"max_length={max_length!r} must be a positive integer (teacher prompt token budget)"
        )
    if not isinstance(response_ids, (list, tuple)) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in response_ids
    ):
        raise TypeError("response_ids must be a list of ints (the student's sampled token ids)")
    if not isinstance(prompt_messages, (list, tuple)) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in prompt_messages
    ):
        raise TypeError("prompt_messages must be a list of {'role': str, 'content': str} dicts")
    users = [i for i, m in enumerate(prompt_messages) if m["role"] == "user"]
    if not users:
        raise ValueError("prompt_messages has no 'user' message; the teacher needs the original prompt")
    last = users[-1]
    system = [dict(m) for m in prompt_messages[:last] if m["role"] == "system"]
    return system, prompt_messages[last]["content"]


def _cut(full: str, units: list[str], keep: int, tail: bool) -> str:
    """Keep ``keep`` units (lines or characters) from the head (or tail) and add a trimming marker."""
    if keep <= 0:
        return ""
    kept = "".join(units[len(units) - keep :] if tail else units[:keep])
    marker = TRIM_MARKER.format(n=len(full) - len(kept))
    return f"{marker}\n{kept}" if tail else f"{kept.rstrip()}\n{marker}"


def _fit(
    bodies: dict[str, str],
    order: Sequence[str],
    count: Callable[[dict[str, str]], int],
    piece_len: Callable[[str], int],
    max_length: int,
) -> dict[str, int]:
    """Trim ``bodies`` in place, section by section in ``order``, until ``count(bodies) <= max_length``.

    For each section the cut is estimated from the section's own tokens-per-unit ratio (units are lines
    for the playbook, characters otherwise) plus a small margin, then verified by re-tokenising the
    whole prompt; on a miss the margin doubles. This needs a handful of tokenisations instead of a
    full search, at the price of cutting slightly more than strictly necessary. Returns characters
    removed per trimmed section. Raises :class:`TeacherPromptTooLong`.
    """
    trimmed: dict[str, int] = {}
    n = count(bodies)
    for name in order:
        if n <= max_length:
            break
        full = bodies.get(name, "")
        if not full:
            continue
        bodies[name] = ""
        n_empty = count(bodies)
        if n_empty > max_length:
            trimmed[name] = len(full)
            n = n_empty
            continue
        units = full.splitlines(keepends=True) if name in _BY_LINE else list(full)
        tail = name in _KEEP_TAIL
        units_per_token = len(units) / max(1, piece_len(full))
        overflow, margin, keep = n - max_length, 8 + (n - max_length) // 50, 0
        while True:
            keep = len(units) - math.ceil((overflow + margin) * units_per_token)
            if keep <= 0:
                keep = 0
                bodies[name] = ""  # known to fit (n_empty)
                break
            bodies[name] = _cut(full, units, keep, tail)
            if count(bodies) <= max_length:
                break
            margin *= 2
        kept = "".join(units[len(units) - keep :] if tail else units[:keep]) if keep else ""
        trimmed[name] = len(full) - len(kept)
        n = count(bodies)
    if n > max_length:
        raise TeacherPromptTooLong(
            f"the teacher prompt needs {n} tokens even with every trimmable section removed, but "
            f"max_length is {max_length}; raise the teacher prompt budget (it must exceed the longest "
            f"student prompt plus about 300 tokens of instructions)"
        )
    return trimmed


class _Encoder:
    """Applies the chat template and encodes; remembers the last rendering to avoid re-tokenising it."""

    def __init__(self, tokenizer: Any, system: list[dict[str, str]], chat_template_kwargs: dict | None):
        for name in ("apply_chat_template", "encode"):
            if not callable(getattr(tokenizer, name, None)):
                raise TypeError(
                    f"tokenizer has no {name}(); pass a Hugging Face tokenizer (or a duck-typed one)"
                )
        self.tokenizer, self.system, self.kwargs = tokenizer, system, dict(chat_template_kwargs or {})
        self._last: tuple[str, str, list[int]] | None = None  # (user text, rendered text, ids)

    def render(self, user: str) -> tuple[str, list[int]]:
        """(chat-templated text, its ids) for a user turn after the system messages."""
        if self._last is not None and self._last[0] == user:
            return self._last[1], self._last[2]
        messages = self.system + [{"role": "user", "content": user}]
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.kwargs
        )
        if not isinstance(text, str):
            raise TypeError("tokenizer.apply_chat_template(..., tokenize=False) must return a string")
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        self._last = (user, text, ids)
        return text, ids

    def piece_len(self, text: str) -> int:
        """Token count of a bare text fragment (no chat template)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def ids(self, user: str) -> list[int]:
        return self.render(user)[1]


def _finish(
    encoder: _Encoder,
    user: str,
    response_ids: Sequence[int],
    trimmed: dict[str, int],
    sections: tuple[str, ...],
) -> TeacherInputs:
    text, prompt_ids = encoder.render(user)
    return TeacherInputs(
        input_ids=list(prompt_ids) + list(response_ids),
        response_start=len(prompt_ids),
        trimmed=trimmed,
        sections=sections,
        text=text,
    )


# ------------------------------------------------------------------- RESD
def _section_order(layout: str) -> tuple[str, ...]:
    try:
        return SECTION_ORDERS[layout]
    except KeyError:
        raise ValueError(f"unknown teacher layout {layout!r}; use one of {list(TEACHER_LAYOUTS)}") from None


def render_resd_prompt(bodies: dict[str, str], template: str, layout: str = "official") -> str:
    """The user-turn text of the RESD teacher prompt for the given section bodies, in ``layout``'s order."""
    parts = [ROLE_SENTENCES[template], GUIDANCE]
    parts += [
        SECTION_TEMPLATE.format(title=SECTION_TITLES[name], body=bodies[name])
        for name in _section_order(layout)
        if bodies.get(name)
    ]
    parts.append(CLOSING[template])
    return "\n\n".join(parts)


def build_teacher_inputs(
    tokenizer: Any,
    *,
    prompt_messages: Sequence[dict[str, str]],
    response_ids: Sequence[int],
    feedback: str = "",
    reflection: str = "",
    playbook: str = "",
    solution: str = "",
    template: str = "generic",
    max_length: int,
    previous_trial: str | None = None,
    use_feedback: bool = True,
    use_reflection: bool = True,
    use_playbook: bool = True,
    use_solution: bool = True,
    use_previous_trial: bool = True,
    feedback_only_without_solution: bool = True,
    chat_template_kwargs: dict[str, Any] | None = None,
    layout: str = "official",
) -> TeacherInputs:
    """RESD teacher inputs for one sample (see the module docstring for layout and trimming).

    ``previous_trial`` defaults to the response decoded from ``response_ids`` (thinking stripped) when
    the tokenizer has ``decode``; pass the response text to avoid decoding. ``solution`` should come
    from :func:`choose_demonstration` (thinking already stripped). ``chat_template_kwargs`` go to
    ``apply_chat_template`` (e.g. ``{"enable_thinking": True}``). ``layout`` orders the sections
    (:data:`TEACHER_LAYOUTS`; ``sections`` follows it); trimming is the same in every layout.
    """
    order = _section_order(layout)
    if template not in ROLE_SENTENCES:
        raise ValueError(
            f"unknown teacher template {template!r}; use one of {list(TEMPLATES)} "
            "(template_for_env(env_id) picks one)"
        )
    system, prompt = _check_common(prompt_messages, response_ids, max_length)
    if use_previous_trial and previous_trial is None and callable(getattr(tokenizer, "decode", None)):
        previous_trial = tokenizer.decode(list(response_ids), skip_special_tokens=True)
    solution = (solution or "").strip() if use_solution else ""
    drop_feedback = not use_feedback or (feedback_only_without_solution and bool(solution))
    bodies = {
        "prompt": prompt,
        "playbook": (playbook or "").strip() if use_playbook else "",
        "previous_trial": strip_thinking(previous_trial or "") if use_previous_trial else "",
        "feedback": "" if drop_feedback else (feedback or "").strip(),
        "reflection": (reflection or "").strip() if use_reflection else "",
        "solution": solution,
    }
    encoder = _Encoder(tokenizer, system, chat_template_kwargs)
    trimmed = _fit(
        bodies,
        TRIM_ORDER,
        lambda b: len(encoder.ids(render_resd_prompt(b, template, layout))),
        encoder.piece_len,
        max_length,
    )
    sections = tuple(name for name in order if bodies.get(name))
    return _finish(encoder, render_resd_prompt(bodies, template, layout), response_ids, trimmed, sections)


# ------------------------------------------------------------------- SDPO
def render_sdpo_prompt(bodies: dict[str, str]) -> str:
    """The user-turn text of the SDPO teacher prompt."""
    text = bodies["prompt"]
    if bodies.get("solution"):
        text += SDPO_SOLUTION_TEMPLATE.format(solution=bodies["solution"])
    if bodies.get("feedback"):
        text += SDPO_FEEDBACK_TEMPLATE.format(feedback=bodies["feedback"])
    return text + SDPO_CLOSING


def build_sdpo_teacher_inputs(
    tokenizer: Any,
    *,
    prompt_messages: Sequence[dict[str, str]],
    response_ids: Sequence[int],
    solution: str = "",
    feedback: str = "",
    max_length: int,
    use_feedback: bool = True,
    feedback_only_without_solution: bool = True,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> TeacherInputs | None:
    """SDPO teacher inputs: the original prompt + a successful peer's solution, else the feedback.

    Returns ``None`` when there is neither a solution nor usable feedback: the caller then gives the
    sample a distillation mask of 0 (no loss), as SDPO does. Over budget, the feedback is trimmed
    first, then the solution; the prompt never.
    """
    system, prompt = _check_common(prompt_messages, response_ids, max_length)
    solution = (solution or "").strip()
    feedback = (feedback or "").strip() if use_feedback else ""
    if solution and feedback_only_without_solution:
        feedback = ""
    if not solution and not feedback:
        return None
    bodies = {"prompt": prompt, "solution": solution, "feedback": feedback}
    encoder = _Encoder(tokenizer, system, chat_template_kwargs)
    trimmed = _fit(
        bodies,
        ("feedback", "solution"),
        lambda b: len(encoder.ids(render_sdpo_prompt(b))),
        encoder.piece_len,
        max_length,
    )
    sections = tuple(name for name in ("prompt", "solution", "feedback") if bodies.get(name))
    return _finish(encoder, render_sdpo_prompt(bodies), response_ids, trimmed, sections)
