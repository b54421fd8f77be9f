"""Extractive lessons: the reflector and curator choose a lesson among the sentences of the env feedback.

For a model too small to write a lesson (SmolLM2-135M filled every free-text field with the prompt's
format examples under three prompt formats: ``benchmarks/context_prompt_probe.py``), this mode keeps
the reflect → curate → tag → concise loop and changes only what the model may emit: the reflection's
``key_insight`` and each curator ADD's ``content`` are restricted, by the JSON schema, to one of the
**lesson candidates** of the failed attempt, the clauses of its feedback. The model chooses which
clause (and, as curator, whether to add it and under which section); the text itself is the
environment's. The success tagger and concise step then judge the entries as usual. Off by default
(``context.extractive_lessons``); the official behaviour is the free-form one.

Clause rule (:func:`lesson_candidates`), for any env's feedback: split at line breaks and sentence ends
(``.``, ``!`` or ``?`` followed by white space), then at a label colon (``": "``), then take each
parenthesised aside out as a clause of its own; strip white space and a final ``.``; drop a clause that
quotes something (text in double, single or back quotes): it states a fact of one task (``Goodwill is
not the right tag for "2.84"``, an input and its expected output), and the playbook is shared by every
task; keep clauses of at least :data:`~resd_learner.context.echo.MIN_LESSON_WORDS` words and at most :data:`MAX_LESSON_CHARS`
characters (or the bound the caller gives: the updater passes the length that fits the generation
budget, :func:`~resd_learner.context.schemas.field_chars`), the first :data:`MAX_CANDIDATES` distinct
ones, in feedback order. The updater cuts them from the policy-safe feedback
(:attr:`~resd_learner.context.types.SampleView.lesson_source`): the playbook is shared by every task,
so a clause revealing one task's expected output ("The correct tag is ...") is never offered. Example:
``"No answer read: name exactly one of the candidate tags, copied exactly, inside <answer></answer>
(none of the candidates was named)."`` gives ``["No answer read", "name exactly one of the candidate
tags, copied exactly, inside <answer></answer>", "none of the candidates was named"]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .echo import MIN_LESSON_WORDS, word_count
from .playbook import SECTION_KEYS
from .schemas import tag_slots, tags_schema

MAX_LESSON_CHARS = 300
"""Longest clause offered as a lesson (longer ones are usually lists of test cases, not rules)."""
MAX_CANDIDATES = 8
"""Most clauses offered per failed attempt (keeps the grammar small and the choice readable)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_LABEL = re.compile(r":\s+")
_ASIDE = re.compile(r"\(([^()]*)\)")
_QUOTED = re.compile(r"\"[^\"]*\"|`[^`]*`|(?<![A-Za-z])'[^']*'(?![A-Za-z])")
"""A quoted span; an apostrophe inside a word ("don't") opens none."""


def _clean(clause: str) -> str:
    return clause.strip().rstrip(".").strip()


def lesson_candidates(feedback: str, max_chars: int = MAX_LESSON_CHARS) -> list[str]:
    """The clauses of ``feedback`` a reflector or curator may choose as a lesson (rule in the module doc),
    each at most ``max_chars`` characters."""
    clauses: list[str] = []
    for sentence in _SENTENCE_END.split(feedback or ""):
        for part in _LABEL.split(sentence):
            asides = _ASIDE.findall(part)
            clauses.append(_ASIDE.sub(" ", part))
            clauses.extend(asides)
    out: list[str] = []
    for clause in clauses:
        text = " ".join(_clean(clause).split())
        if _QUOTED.search(text) or word_count(text) < MIN_LESSON_WORDS or len(text) > min(max_chars, MAX_LESSON_CHARS):
            continue
        if text not in out:
            out.append(text)
        if len(out) == MAX_CANDIDATES:
            break
    return out


def reflection_schema(candidates: Sequence[str], entry_ids: Sequence[str], *, max_tokens: int) -> dict[str, Any]:
    """Schema of an extractive reflection: ``key_insight`` (one of ``candidates``) and ``bullet_tags``
    (:func:`~resd_learner.context.schemas.tag_slots` items for an output capped at ``max_tokens``).

    Raises:
        ValueError: ``candidates`` is empty (such an attempt gets no reflector call).
    """
    if not candidates:
        raise ValueError("an extractive reflection needs at least one lesson candidate")
    return {"type": "object",
            "properties": {"key_insight": {"type": "string", "enum": list(candidates)},
                           "bullet_tags": tags_schema(entry_ids, tag_slots(entry_ids, max_tokens))},
            "required": ["key_insight", "bullet_tags"], "additionalProperties": False}


def curation_schema(candidates: Sequence[str]) -> dict[str, Any]:
    """Schema of an extractive curator output: at most one ADD (none is allowed) whose ``content`` is one
    of ``candidates`` (one lesson per failure; a second clause of the same feedback adds little, and
    several long clauses would not fit the generation budget).

    Raises:
        ValueError: ``candidates`` is empty (such an attempt gets no curator call).
    """
    if not candidates:
        raise ValueError("an extractive curation needs at least one lesson candidate")
    operation = {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": ["ADD"]},
                       "section": {"type": "string", "enum": list(SECTION_KEYS)},
                       "content": {"type": "string", "enum": list(candidates)}},
        "required": ["type", "section", "content"],
        "additionalProperties": False,
    }
    return {"type": "object",
            "properties": {"operations": {"type": "array", "items": operation, "maxItems": 1}},
            "required": ["operations"], "additionalProperties": False}
