"""Robust extraction of JSON objects and tags from free-form model output.

Owns text clean-up shared by the context updater: thinking removal, JSON object extraction
(whole text, fenced blocks, then brace-balanced scanning), the reflector's tag list and the curator's
operation list. Nothing here raises on model output: every parser returns a result object whose
``error`` says what was wrong (empty string when the output was usable).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

THINK_CLOSE = "</think>"
EMPTY_RESPONSE_SENTINEL = "INCORRECT_DUE_TO_EMPTY_RESPONSE"
VALID_TAGS = ("helpful", "harmful", "neutral")

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_PAIR_ID_FIRST = re.compile(r'"id"\s*:\s*"([^"]+)"\s*,\s*"tag"\s*:\s*"([^"]+)"')
_PAIR_TAG_FIRST = re.compile(r'"tag"\s*:\s*"([^"]+)"\s*,\s*"id"\s*:\s*"([^"]+)"')


def strip_thinking(text: str) -> str:
    """Return the text after the first ``</think>``; text without it is returned unchanged.

    This matches the official rule: a response cut off while still thinking is kept whole. A stray
    leading ``<think>`` with no closing tag is left in place for the same reason.
    """
    if not isinstance(text, str):
        return ""
    index = text.find(THINK_CLOSE)
    if index < 0:
        return text.strip()
    return text[index + len(THINK_CLOSE) :].strip()


def _balanced_objects(text: str) -> list[str]:
    """All top-level ``{...}`` substrings whose braces balance (quotes and escapes respected)."""
    found: list[str] = []
    depth = 0
    start = -1
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"' and depth > 0:
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                found.append(text[start : i + 1])
    return found


def extract_json_object(text: str) -> dict[str, Any] | None:
    """First JSON object found in ``text`` (thinking already stripped by the caller), else ``None``.

    Tried in order: the whole text; each fenced code block (any language tag); each brace-balanced
    object in the text. Only a ``dict`` counts; a list or scalar is ignored.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    candidates = [text.strip()]
    candidates += [m.group(2).strip() for m in _FENCE_RE.finditer(text)]
    candidates += _balanced_objects(text)
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


@dataclass
class TagParse:
    """Tags read from a reflector or success-tagger output.

    ``tags`` lists (entry id, tag) in output order, tag one of ``VALID_TAGS``; ``error`` is "" when the
    output was a usable JSON object (possibly with no tags), otherwise why it was not.
    ``invalid_items`` counts tag items that were dropped for having the wrong shape or tag value.
    """

    tags: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    invalid_items: int = 0
    used_fallback: bool = False

    @property
    def ok(self) -> bool:
        return not self.error


def parse_tags(text: str) -> TagParse:
    """Parse ``bullet_tags`` from a reflector/tagger output (thinking already stripped)."""
    if not isinstance(text, str) or not text.strip():
        return TagParse(error="empty output")
    if text.lstrip().startswith(EMPTY_RESPONSE_SENTINEL):
        return TagParse(error=f"output starts with {EMPTY_RESPONSE_SENTINEL}")
    obj = extract_json_object(text)
    if obj is None:
        return _regex_tags(text, "no JSON object found")
    raw = obj.get("bullet_tags", [])
    if not isinstance(raw, list):
        fallback = _regex_tags(text, f"bullet_tags is {type(raw).__name__}, expected a list")
        return fallback
    result = TagParse()
    for item in raw:
        if not isinstance(item, dict):
            result.invalid_items += 1
            continue
        entry_id, tag = item.get("id"), item.get("tag")
        if not isinstance(entry_id, str) or not isinstance(tag, str) or tag.strip().lower() not in VALID_TAGS:
            result.invalid_items += 1
            continue
        result.tags.append((entry_id.strip(), tag.strip().lower()))
    return result


def _regex_tags(text: str, reason: str) -> TagParse:
    """Fallback: find ``"id": "...", "tag": "..."`` pairs in either order; error if none are found."""
    pairs = [(m.group(1), m.group(2)) for m in _PAIR_ID_FIRST.finditer(text)]
    pairs += [(m.group(2), m.group(1)) for m in _PAIR_TAG_FIRST.finditer(text)]
    tags = [(i.strip(), t.strip().lower()) for i, t in pairs if t.strip().lower() in VALID_TAGS]
    if not tags:
        return TagParse(error=reason)
    return TagParse(tags=tags, used_fallback=True, invalid_items=len(pairs) - len(tags))


@dataclass
class AddOperation:
    """One ADD operation proposed by the curator (section as written by the model)."""

    section: str
    content: str


@dataclass
class CurationParse:
    """Operations read from a curator output.

    ``error`` is "" when the output was valid; a non-empty error means the whole output is dropped
    (``adds`` is then empty). ``ignored_ops`` counts valid non-ADD operations, which are not applied.
    """

    adds: list[AddOperation] = field(default_factory=list)
    ignored_ops: int = 0
    error: str = ""
    text: str = ""
    """The output that was parsed (set by the curator step, for the run records)."""

    @property
    def ok(self) -> bool:
        return not self.error


def parse_curation(text: str) -> CurationParse:
    """Validate a curator output (thinking already stripped); any violation drops the whole output.

    Rules: a JSON object with a list ``operations`` (``reasoning``, when present, must be a string);
    each operation a dict with a string ``type``; an ADD also needs non-empty string ``section`` and
    ``content``. Other types (UPDATE, MERGE, DELETE, ...) are counted in ``ignored_ops`` and not applied.
    """
    if not isinstance(text, str) or not text.strip():
        return CurationParse(error="empty output")
    if text.lstrip().startswith(EMPTY_RESPONSE_SENTINEL):
        return CurationParse(error=f"output starts with {EMPTY_RESPONSE_SENTINEL}")
    obj = extract_json_object(text)
    if obj is None:
        return CurationParse(error="no JSON object found")
    if "reasoning" in obj and not isinstance(obj["reasoning"], str):
        return CurationParse(error=f"reasoning is {type(obj['reasoning']).__name__}, expected a string")
    ops = obj.get("operations")
    if not isinstance(ops, list):
        return CurationParse(error=f"operations is {type(ops).__name__}, expected a list")
    result = CurationParse()
    for index, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("type"), str):
            return CurationParse(error=f"operation {index} is not an object with a string 'type'")
        if op["type"].strip().upper() != "ADD":
            result.ignored_ops += 1
            continue
        section, content = op.get("section"), op.get("content")
        if not isinstance(section, str) or not isinstance(content, str) or not content.strip():
            return CurationParse(
                error=f"ADD operation {index} needs string 'section' and non-empty 'content'"
            )
        result.adds.append(AddOperation(section=section, content=content))
    return result


def cap_middle(text: str, max_chars: int) -> str:
    """Keep at most ``max_chars`` characters: the head and the tail around a marker (0 = no cap)."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    marker = f"\n[... {len(text) - max_chars} characters omitted ...]\n"
    head = max_chars // 2
    tail = max_chars - head
    return text[:head] + marker + text[len(text) - tail :]
