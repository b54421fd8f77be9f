"""Configuration of the context updater (reflect, curate, concise, solution buffer).

Owns only the :class:`ContextConfig` dataclass and its validation. Defaults follow the official RESD
scripts (docs/official-defaults.md §5, §9): a global playbook, concise every 4 updates, post-curation concise on,
success tagging on, every failure curated, no content de-duplication. The per-task budget and concise method are set by the run
configs (200/staleness Manufactoria, 120/staleness BouncingSim-Easy and Finer, 150/prioritized
BouncingSim-Medium).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .schemas import STRUCTURED_OUTPUT_MODES

CONCISE_METHODS = ("staleness", "prioritized")
PROMPT_LAYOUTS = ("official", "shared_first")


@dataclass
class ContextConfig:
    """Settings of :class:`resd_learner.context.updater.ContextUpdater`."""

    enabled: bool = True
    """Run reflect / tag / curate / concise at all. When False, ``update`` only fills the solution buffer."""
    reflect: bool = True
    """Ask the student (diagnostic mode) for a reflection on every failed sample."""
    curate: bool = True
    """Turn each reflection into new playbook entries (needs ``reflect``)."""
    solution_buffer: bool = True
    """Keep the latest first successful response per example id (used as a demonstration later)."""
    playbook_budget: int = 120
    """Maximum number of playbook entries (``max_bullets`` in the official code)."""
    concise_method: str = "staleness"
    """Concise strategy: "staleness" or "prioritized" (paper Appendix D)."""
    concise_frequency: int = 4
    """Frequency trigger: concise (without the budget) at the start of every update whose index is a
    positive multiple of this number. 0 disables the frequency trigger."""
    concise_after_curation: bool = True
    """After curation, concise with the budget enforced if the playbook exceeds ``playbook_budget``."""
    tag_successes: bool = True
    """Ask the student to tag the entries that helped a correct sample (only counts change)."""
    deduplicate: bool = False
    """Skip additions whose normalised text equals an existing entry or an earlier addition of the step.
    Off by default, as in the official code (which has no content de-duplication)."""
    drop_template_echo: bool = False
    """Treat text copied from the prompts' format example as no content (``context/echo.py``): a
    reflection whose analysis fields all echo it becomes empty (not curated unless
    ``curate_all_failures``, never shown to the teacher), and such an ADD is skipped. Off by default,
    as in the official code; the quickstart turns it on (SmolLM2-135M fills the fields with the
    examples, and in the teacher prompt that text made the teacher worse: docs/finer_mini.md)."""
    drop_non_lessons: bool = False
    """Skip an ADD that states nothing (``context/echo.py``, :func:`is_non_lesson`): fewer than three
    words, or a verbatim fragment of the task prompt or of the attempt it was written about (which the
    curator prompt already forbids). Off by default, as in the official code; the quickstart turns it
    on (SmolLM2-135M's curator added pieces of failed answers such as ``<answer>ShareBasedComp<#``, the
    success tagger marked them helpful dozens of times, and the teacher pulled the student toward the
    invented tags they spell: held-out -0.158 with them, -0.010 without on the seed that kept one;
    docs/finer_mini.md)."""
    curate_all_failures: bool = True
    """Curate every failed sample, as the official code does (an empty or unusable reflection still
    reaches the curator). False curates only failures with a non-empty reflection."""
    remove_thinking: bool = True
    """Strip ``<think>…</think>`` from responses and from model outputs before use."""
    max_reflection_tokens: int = 4096
    """Generation cap the trainer should pass to its backend for reflector, tagger and curator calls.
    The updater itself never counts tokens; it only forwards this value as documentation of intent."""
    temperature: float | None = None
    """Sampling temperature of the reflector, success-tagger and curator calls; None = the rollout
    temperature (the official behaviour: one sampling setting for every student generation). A small
    model writes coherent context at a lower value (the quickstart uses 0.3; docs/finer_mini.md)."""
    structured_output: str = "auto"
    """Generate reflector, success-tagger and curator outputs under their JSON schemas
    (``context/schemas.py``): "on", "off" (the official free-form generation, read by the lenient
    parser) or "auto" (on where the backend supports it: vLLM, or the hf backend with xgrammar)."""
    extractive_lessons: bool = False
    """The reflector's ``key_insight`` and each curator ADD's ``content`` must be one clause of the failed
    attempt's feedback (``context/extractive.py``): the model chooses the lesson and whether and where to
    add it, the environment's feedback supplies the words. For models too small to write a lesson
    (SmolLM2-135M echoed the prompt's format examples under three prompt formats); needs structured
    output (``structured_output`` auto with a backend that supports it, or on). A failure whose feedback
    has no clause of three or more words gets no reflector or curator call. Off by default: the
    official reflector and curator write free text."""
    prompt_layout: str = "official"
    """Order of the reflector, success-tagger and curator prompts (``context/prompts/__init__.py``):
    "official" gives the sample's sections first and the shared ones (playbook, reply format) after them,
    in the official order; "shared_first" puts the instructions, the reply format and the playbook
    snapshot, which every call of a step shares, before the sample, so a prefix-caching engine (vLLM)
    computes them once per step. The same words either way. Official by default: it changes what a small
    model writes (SmolLM2-135M copied the format example with a word changed, or wrote tag fragments,
    and the quickstart's context step took longer; docs/learner.md, "Context prompt layout")."""
    max_slot_chars: int = 16000
    """Character cap for each long text slot (prompt, response, feedback, reflection) inside reflector,
    tagger and curator prompts; longer texts keep their head and tail around a trimming marker. This
    keeps those prompts bounded (the official code crashes when they overflow). 0 disables the cap."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` listing every invalid field with the value and the fix."""
        problems: list[str] = []
        if self.concise_method not in CONCISE_METHODS:
            problems.append(
                f"context.concise_method={self.concise_method!r} is unknown; "
                f"use one of {list(CONCISE_METHODS)}"
            )
        if not isinstance(self.playbook_budget, int) or self.playbook_budget < 1:
            problems.append(
                f"context.playbook_budget={self.playbook_budget!r} must be a positive integer (e.g. 120)"
            )
        if not isinstance(self.concise_frequency, int) or self.concise_frequency < 0:
            problems.append(
                f"context.concise_frequency={self.concise_frequency!r} must be an integer >= 0 "
                "(0 disables it)"
            )
        for name in ("max_reflection_tokens", "max_slot_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                problems.append(f"context.{name}={value!r} must be an integer >= 0")
        if self.temperature is not None and (isinstance(self.temperature, bool)
                                             or not isinstance(self.temperature, (int, float))
                                             or self.temperature < 0):
            problems.append(f"context.temperature={self.temperature!r} must be a number >= 0 (0 = greedy) or null "
                            "(use the rollout temperature)")
        if self.structured_output not in STRUCTURED_OUTPUT_MODES:
            problems.append(
                f"context.structured_output={self.structured_output!r} is unknown; "
                f"use one of {list(STRUCTURED_OUTPUT_MODES)}"
            )
        if self.prompt_layout not in PROMPT_LAYOUTS:
            problems.append(
                f"context.prompt_layout={self.prompt_layout!r} is unknown; use one of {list(PROMPT_LAYOUTS)}"
            )
        if self.extractive_lessons and self.structured_output == "off":
            problems.append(
                "context.extractive_lessons=True needs schema-constrained generation (the schema restricts the "
                "lesson to clauses of the feedback); set context.structured_output=auto or on"
            )
        if self.curate and not self.reflect and self.enabled:
            problems.append(
                "context.curate=True needs context.reflect=True (curation reads the reflections); "
                "set context.curate=False or context.reflect=True"
            )
        if problems:
            raise ValueError("invalid ContextConfig:\n  - " + "\n  - ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON/YAML friendly)."""
        return asdict(self)
