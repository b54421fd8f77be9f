"""Template echo: text a model copied from the format example of its own prompt instead of writing content.

The reflector and curator prompts show the expected JSON with example values ("your step-by-step
analysis", "the lesson", ...). A small model, above all under a JSON schema, often fills the fields
with those values or a prefix of them (measured on SmolLM2-135M: 50 of 52 playbook entries were "the
lesson"). Such text carries no information about the attempt, and in the teacher prompt it made the
self-teacher worse (docs/finer_mini.md). This module recognises it; the updater drops it when
``context.drop_template_echo`` is on.

Rule: a text is an echo when its normalised form (lower case, runs of non-alphanumerics collapsed to
one space) is empty, or is a prefix, at a word boundary or inside the last word, of the normalised
form of an example value or a JSON key of the prompts (a key with underscores reads as words;
every key counts, "bullet_tags" too: with the example values taken away, the model wrote key names
into the fields, ``benchmarks/context_prompt_probe.py``), or a near copy of one (:func:`is_near_copy`:
its first two words, then at most half of its words off).

Playbook additions can be empty of content in two more ways (measured on SmolLM2-135M, whose
curator wrote ``<answer>ShareBasedComp<#``, ``<answer><answer><answer>``, ``employee service``,
``numberOfRealEstatePrinps``): a **copy**, a verbatim fragment of the task prompt or of the attempt
the addition is about (the curator prompt already forbids copying task-specific values), and a
**fragment**, fewer than :data:`MIN_LESSON_WORDS` words, which cannot state a rule. :func:`is_non_lesson`
recognises both; the updater drops such additions when ``context.drop_non_lessons`` is on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from .parsing import extract_json_object
from .playbook import SECTION_KEYS
from .prompts.curator import CURATOR_TEMPLATE
from .prompts.reflector import REFLECTOR_TEMPLATE
from .prompts.success_tagger import SUCCESS_TAGGER_TEMPLATE
from .schemas import REFLECTION_FIELDS

_VALUE = re.compile(r'"([a-z_]+)"\s*:\s*"([^"{}]*)"')
_KEY = re.compile(r'"([a-z_]+)"\s*:')
_NON_WORD = re.compile(r"[^0-9a-z]+")
_NON_ALNUM = re.compile(r"[^0-9a-z]")
_LETTER = re.compile(r"[A-Za-z]")
MIN_LESSON_WORDS = 3
"""Fewest words (whitespace-separated pieces with a letter) a playbook lesson can have."""


def normalise(text: str) -> str:
    """Lower case, every run of characters other than ASCII letters and digits replaced by one space."""
    return _NON_WORD.sub(" ", text.lower()).strip()


@lru_cache(maxsize=1)
def template_phrases() -> tuple[str, ...]:
    """The normalised example values and keys of the reflector, success-tagger and curator prompts,
    plus the playbook section keys (which the curator prompt lists)."""
    phrases = set()
    for template in (REFLECTOR_TEMPLATE, CURATOR_TEMPLATE, SUCCESS_TAGGER_TEMPLATE):
        for key, value in _VALUE.findall(template):
            phrases.update({normalise(key), normalise(value)})
        phrases.update(normalise(key) for key in _KEY.findall(template))  # also keys of lists ("bullet_tags")
    phrases.update(normalise(key) for key in (*SECTION_KEYS, *REFLECTION_FIELDS))
    return tuple(sorted(p for p in phrases if p))


@lru_cache(maxsize=1)
def _phrase_words() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each template phrase with its words, split once."""
    return tuple((phrase, tuple(phrase.split())) for phrase in template_phrases())


def is_template_echo(text: str) -> bool:
    """Whether ``text`` says nothing beyond (a beginning of) an example value or key of the prompts, or
    a garbled copy of one (:func:`is_near_copy`)."""
    norm = normalise(text)
    if not norm:
        return True
    words = norm.split()
    return any(phrase.startswith(norm) or is_near_copy(words, split) for phrase, split in _phrase_words())


def is_near_copy(words: Sequence[str], phrase: Sequence[str]) -> bool:
    """Whether ``words`` copy the opening of ``phrase`` (both normalised, split into words) and then
    drift: they start with the phrase's first two words, are at most one word longer than it, and at
    most half of them differ from the phrase's word at the same place (a word past its end counts as
    different). Measured on SmolLM2-135M under the ``shared_first`` prompt layout: "what exactly was
    it" for "what exactly was wrong", "why it could" for "why it happened"; in float32 runs with the
    official layout "what exactly was OK". A field that only opens like an example and then says
    something ("why it failed: the tag counts shares, not dollars") is longer than that, or differs in
    most words."""
    if len(words) < 2 or len(phrase) < 2 or len(words) > len(phrase) + 1:
        return False
    if words[0] != phrase[0] or words[1] != phrase[1]:
        return False
    differing = sum(i >= len(phrase) or word != phrase[i] for i, word in enumerate(words))
    return differing <= len(words) // 2


def reflection_is_echo(text: str) -> bool:
    """Whether a reflector output is a JSON object whose analysis fields (those present) are all echoes.

    Output that is not such a JSON object is not judged here (it may be free-form analysis).
    """
    obj: dict[str, Any] | None = extract_json_object(text) if text else None
    if obj is None:
        return False
    fields = [obj[name] for name in REFLECTION_FIELDS if isinstance(obj.get(name), str)]
    return bool(fields) and all(is_template_echo(value) for value in fields)


def compact(text: str) -> str:
    """Lower case with every character other than ASCII letters and digits removed (spacing and markup
    ignored, so ``EmployeeService`` and ``employee service`` compare equal)."""
    return _NON_ALNUM.sub("", text.lower())


def copies_source(text: str, sources: Iterable[str]) -> bool:
    """Whether ``text`` says nothing beyond a verbatim fragment of one of ``sources`` (the task prompt
    and the attempt it is about): its :func:`compact` form is empty or a substring of a source's."""
    norm = compact(text)
    return not norm or any(norm in compact(source) for source in sources)


def word_count(text: str) -> int:
    """Whitespace-separated pieces of ``text`` that contain an ASCII letter (what a lesson's length counts)."""
    return sum(1 for piece in text.split() if _LETTER.search(piece))


def is_non_lesson(text: str, sources: Iterable[str]) -> bool:
    """Whether a playbook addition states nothing: under :data:`MIN_LESSON_WORDS` words, or a copy
    (:func:`copies_source`) of the task prompt or the attempt in ``sources``."""
    return word_count(text) < MIN_LESSON_WORDS or copies_source(text, sources)
