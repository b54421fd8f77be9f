"""Reflect: run the student in diagnostic mode on failed samples, and tag entries for successes.

Owns building the reflector and success-tagger messages and turning one batched ``generate`` call
into :class:`Reflection` results. Counts are applied by the updater, not here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from .parsing import EMPTY_RESPONSE_SENTINEL, TagParse, cap_middle, parse_tags, strip_thinking
from .prompts import for_layout
from .prompts.reflector import EMPTY_FEEDBACK, EMPTY_PLAYBOOK, REFLECTOR_TEMPLATES
from .prompts.success_tagger import SUCCESS_TAGGER_TEMPLATES
from .types import Generate, SampleView, SchemaArg

logger = logging.getLogger(__name__)


@dataclass
class Reflection:
    """Outcome of one reflector (or success-tagger) call.

    ``text`` is the output with thinking stripped ("" if the output was empty or the empty-response
    sentinel); it is used as the reflection whether or not its JSON parsed, as in the official code.
    ``parse`` holds the tags and, if the output was unusable JSON, the error.
    """

    text: str
    parse: TagParse = field(default_factory=TagParse)


def _user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def _sample_slots(sample: SampleView, max_slot_chars: int, remove_thinking: bool) -> dict[str, str]:
    """The capped ``prompt`` and ``response`` slots shared by the reflector and success-tagger prompts."""
    response = strip_thinking(sample.response) if remove_thinking else sample.response
    return {
        "prompt": cap_middle(sample.prompt, max_slot_chars),
        "response": cap_middle(response, max_slot_chars) or "(empty response)",
    }


def reflector_messages(
    sample: SampleView, playbook_text: str, *, max_slot_chars: int, remove_thinking: bool = True,
    layout: str = "official",
) -> list[dict[str, str]]:
    """Chat messages asking for a diagnosis of one failed ``sample`` (``layout``: a
    ``context.prompt_layout``)."""
    return _user(
        for_layout(REFLECTOR_TEMPLATES, layout).format(
            **_sample_slots(sample, max_slot_chars, remove_thinking),
            feedback=cap_middle(sample.feedback, max_slot_chars) or EMPTY_FEEDBACK,
            playbook=playbook_text or EMPTY_PLAYBOOK,
        )
    )


def success_tagger_messages(
    sample: SampleView, playbook_text: str, *, max_slot_chars: int, remove_thinking: bool = True,
    layout: str = "official",
) -> list[dict[str, str]]:
    """Chat messages asking which entries helped a correct ``sample`` (``layout``: a
    ``context.prompt_layout``)."""
    return _user(
        for_layout(SUCCESS_TAGGER_TEMPLATES, layout).format(
            **_sample_slots(sample, max_slot_chars, remove_thinking), playbook=playbook_text
        )
    )


def run_batch(
    generate: Generate, batch: list[list[dict[str, str]]], *, what: str, schema: SchemaArg = None
) -> list[str]:
    """Call ``generate`` once for ``batch``; check the answer's shape (a backend bug, so it raises).

    With a ``schema`` the call is ``generate(batch, schema=schema)`` (the backend constrains every
    completion to that JSON schema); without one it is ``generate(batch)``.
    Non-string completions are treated as empty outputs (logged), not as errors.
    """
    if not batch:
        return []
    outputs = generate(batch) if schema is None else generate(batch, schema=schema)
    if not isinstance(outputs, (list, tuple)) or len(outputs) != len(batch):
        got = len(outputs) if isinstance(outputs, (list, tuple)) else type(outputs).__name__
        raise ValueError(
            f"the context updater's generate callable returned {got} completions for {len(batch)} "
            f"{what} prompts; it must return exactly one string per message list, in order"
        )
    cleaned = []
    for i, out in enumerate(outputs):
        if not isinstance(out, str):
            logger.warning(
                "%s output %d is %s, not a string; treating it as empty", what, i, type(out).__name__
            )
            out = ""
        cleaned.append(out)
    return cleaned


def interpret(raw: str, *, what: str, remove_thinking: bool = True) -> Reflection:
    """Strip thinking, parse tags, and log (never raise) when the output is unusable."""
    text = strip_thinking(raw) if remove_thinking else raw.strip()
    parse = parse_tags(text)
    if text.lstrip().startswith(EMPTY_RESPONSE_SENTINEL):
        text = ""
    if parse.error:
        logger.warning("skipping tags of a malformed %s output (%s): %.200r", what, parse.error, text)
    return Reflection(text=text, parse=parse)


def reflect(
    generate: Generate,
    samples: Sequence[SampleView],
    playbook_text: str,
    *,
    max_slot_chars: int,
    remove_thinking: bool = True,
    schema: SchemaArg = None,
    layout: str = "official",
) -> list[Reflection]:
    """One reflector prompt per sample (all failed), sent in a single ``generate`` call (under ``schema``)."""
    batch = [
        reflector_messages(s, playbook_text, max_slot_chars=max_slot_chars, remove_thinking=remove_thinking,
                           layout=layout)
        for s in samples
    ]
    raw = run_batch(generate, batch, what="reflector", schema=schema)
    return [interpret(r, what="reflector", remove_thinking=remove_thinking) for r in raw]


def tag_successes(
    generate: Generate,
    samples: Sequence[SampleView],
    playbook_text: str,
    *,
    max_slot_chars: int,
    remove_thinking: bool = True,
    schema: SchemaArg = None,
    layout: str = "official",
) -> list[Reflection]:
    """One success-tagger prompt per correct sample, sent in a single ``generate`` call (under ``schema``)."""
    batch = [
        success_tagger_messages(
            s, playbook_text, max_slot_chars=max_slot_chars, remove_thinking=remove_thinking, layout=layout
        )
        for s in samples
    ]
    raw = run_batch(generate, batch, what="success-tagger", schema=schema)
    return [interpret(r, what="success-tagger", remove_thinking=remove_thinking) for r in raw]
