"""Find the tag answer inside a model response (reasoning models included).

:func:`extract_answer` returns the comma-separated answer string it found and how it found it. It
never raises and never alters the answer pieces themselves (scoring is ACE's exact comparison), it
only removes what surrounds the answer. The rules, tried in this order on the text left after the
last closing thinking tag:

1. the last ``<answer>...</answer>`` block (RESD's format; an unclosed ``<answer>`` takes the rest);
2. a JSON object with a ``final_answer`` field (ACE's generator format): the whole text, a fenced
   ```json block, an embedded ``{...}`` object, or a bare ``"final_answer": "..."`` pair;
3. the last ``\\boxed{...}``;
4. the last "final answer is/:" phrase, or a line starting with ``Answer:``, ``Tags:`` or
   ``Output US GAAP tags:`` (the rest of that line, or the next non-empty line);
5. the last non-empty line that names at least one valid tag; failing that, the last non-empty line.

After that, wrapping is peeled off the answer: code fences, backticks, bold markers, matching quotes
or brackets, and a JSON list (its items are joined with commas). A response that ends inside an
unclosed ``<think>`` block has no answer (it was most likely cut off while reasoning).

Cost: every rule is linear in the response length and nothing recurses on the response's structure:
``<answer>`` blocks are paired by one left-to-right pass over the tag positions, and JSON is decoded
only when the text nests brackets at most :data:`MAX_JSON_DEPTH` deep (the decoder recurses per level).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from resd_envs.finer.labels import LABELS, canonical_label

_THINK_CLOSE_RE = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
_THINK_OPEN_RE = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
_ANSWER_OPEN_RE = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE_RE = re.compile(r"</answer>", re.IGNORECASE)
_FENCE_RE = re.compile(r"```[a-zA-Z]*[ \t]*\n?(.*?)```", re.DOTALL)
_FINAL_PAIR_RE = re.compile(
    r"""["']?final_answer["']?\s*:\s*"""  # the key, then one of four value forms:
    r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'"""  # "double" or 'single' quoted
    r"""|(\[[^\]]*\])|([^,}\n][^}\n]*))""",  # [a list] or bare text
    re.IGNORECASE,
)
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_FINAL_PHRASE_RE = re.compile(r"final answer\s*(?:is\b[ \t]*[:：]?|[:：])[ \t]*([^\n]*)", re.IGNORECASE)
_LABEL_LINE_RE = re.compile(
    r"^[ \t>*#_-]*(?:final\s+)?(?:answers?|tags|output us gaap tags)[ \t*_]*[:：][ \t*_]*([^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
#: Inputs longer than this are cut to their last part before searching (bounds the work per call).
MAX_SCAN_CHARS = 200_000
#: How many ``{`` positions (from the end) are tried as the start of an embedded JSON object.
_MAX_JSON_STARTS = 64
#: Deepest bracket nesting handed to the JSON decoder (deeper text is not read as JSON).
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class Extraction:
    """What :func:`extract_answer` found.

    Attributes:
        answer: the answer string (comma-separated tags), or None when no answer was found.
        method: which rule matched: ``"answer_tag"``, ``"json"``, ``"boxed"``, ``"final_answer_phrase"``,
            ``"label_line"``, ``"tag_line"``, ``"last_line"``; or, with no answer, ``"empty"`` or
            ``"unterminated_thinking"``.
        thinking_removed: whether a thinking block was cut off the front.
    """

    answer: str | None
    method: str
    thinking_removed: bool = False


def extract_answer(response: str, labels: tuple[str, ...] = LABELS) -> Extraction:
    """Locate the tag answer in ``response`` (any string; never raises).

    Args:
        response: the full model output, possibly with thinking, prose, JSON or markup.
        labels: valid tag names, used only by the last-line fallback to prefer a line naming tags.
    """
    text = response if isinstance(response, str) else str(response)
    if len(text) > MAX_SCAN_CHARS:
        text = text[-MAX_SCAN_CHARS:]
    body, removed = _strip_thinking(text)
    if body is None:
        return Extraction(None, "unterminated_thinking", True)
    if not body.strip():
        return Extraction(None, "empty", removed)
    for method, finder in _FINDERS:
        found = finder(body, labels)
        if found is not None:
            cleaned = clean_answer(found)
            if cleaned or method == "answer_tag":
                return Extraction(cleaned, method, removed)
    lines = [line for line in body.splitlines() if line.strip()]
    return Extraction(clean_answer(lines[-1]), "last_line", removed)


def clean_answer(text: str) -> str:
    """Peel wrapping off an answer string; the comma-separated pieces themselves are kept as written."""
    answer = text.strip()
    for _ in range(4):  # wrappers can nest, e.g. **`A,B`**
        before = answer
        fence = _FENCE_RE.fullmatch(answer)
        if fence:
            answer = fence.group(1).strip()
        for mark in ("**", "__", "`"):
            if len(answer) > 2 * len(mark) and answer.startswith(mark) and answer.endswith(mark):
                answer = answer[len(mark):-len(mark)].strip()
        if answer.startswith("[") and answer.endswith("]"):
            answer = _join_json_list(answer)
        elif len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "\"'":
            answer = answer[1:-1].strip()
        if answer == before:
            break
    return answer


# -- the rules ----------------------------------------------------------------------------------
def _strip_thinking(text: str) -> tuple[str | None, bool]:
    """Text after the last closing thinking tag; None if a thinking block is opened and never closed."""
    closes = list(_THINK_CLOSE_RE.finditer(text))
    if closes:
        return text[closes[-1].end():], True
    opened = _THINK_OPEN_RE.search(text)
    if opened:
        before = text[:opened.start()]
        return (before, True) if before.strip() else (None, True)
    return text, False


def _answer_tag(body: str, labels: tuple[str, ...] = LABELS) -> str | None:
    """The last ``<answer>...</answer>`` block, as non-overlapping leftmost-shortest matching finds it.

    One pass over the open and close tag positions (linear; a regex ``<answer>(.*?)</answer>`` rescans
    the rest of the text from every unclosed ``<answer>``, which is quadratic).
    """
    opens = [m.span() for m in _ANSWER_OPEN_RE.finditer(body)]
    if not opens:
        return None
    closes = [m.span() for m in _ANSWER_CLOSE_RE.finditer(body)]
    last: tuple[int, int] | None = None
    position, c = 0, 0
    for start, end in opens:
        if start < position:
            continue
        while c < len(closes) and closes[c][0] < end:
            c += 1
        if c == len(closes):
            break
        last = (end, closes[c][0])
        position = closes[c][1]
        c += 1
    if last is not None:
        return body[last[0]:last[1]]
    return body[opens[-1][1]:]


def _json_field(body: str, labels: tuple[str, ...] = LABELS) -> str | None:
    candidates = [body.strip()] + [m.group(1).strip() for m in _FENCE_RE.finditer(body)][::-1]
    for candidate in candidates:
        value = _final_answer_of(_loads(candidate))
        if value is not None:
            return value
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(body) if ch == "{"][-_MAX_JSON_STARTS:]
    if bracket_depth(body) > MAX_JSON_DEPTH:
        starts = []
    for start in reversed(starts):
        try:
            obj, _ = decoder.raw_decode(body, start)
        except ValueError:
            continue
        value = _final_answer_of(obj)
        if value is not None:
            return value
    pairs = list(_FINAL_PAIR_RE.finditer(body))
    if not pairs:
        return None
    double, single, array, bare = pairs[-1].groups()
    if double is not None:
        return _unescape(double, '"')
    if single is not None:
        return _unescape(single, "'")
    if array is not None:
        return _join_json_list(array)
    return bare.strip().rstrip(",").strip()


def _boxed(body: str, labels: tuple[str, ...] = LABELS) -> str | None:
    found = _BOXED_RE.findall(body)
    if not found:
        return None
    return re.sub(r"\\text\{([^{}]*)\}", r"\1", found[-1])


def _final_phrase(body: str, labels: tuple[str, ...] = LABELS) -> str | None:
    found = [m.group(1) for m in _FINAL_PHRASE_RE.finditer(body)]
    for value in reversed(found):
        if any(ch.isalnum() for ch in value):
            return value
    return None


def _label_line(body: str, labels: tuple[str, ...] = LABELS) -> str | None:
    matches = list(_LABEL_LINE_RE.finditer(body))
    if not matches:
        return None
    last = matches[-1]
    if last.group(1).strip():
        return last.group(1)
    for line in body[last.end():].splitlines():
        if line.strip():
            return line
    return None


def _tag_line(body: str, labels: tuple[str, ...]) -> str | None:
    for line in reversed(body.splitlines()):
        cleaned = clean_answer(line)
        if any(canonical_label(piece, labels) for piece in cleaned.split(",")):
            return line
    return None


_FINDERS = (
    ("answer_tag", _answer_tag),
    ("json", _json_field),
    ("boxed", _boxed),
    ("final_answer_phrase", _final_phrase),
    ("label_line", _label_line),
    ("tag_line", _tag_line),
)


# -- helpers ------------------------------------------------------------------------------------
def bracket_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text`` (brackets inside strings count too; linear)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}" and depth:
            depth -= 1
    return deepest


def _loads(text: str) -> object:
    """``json.loads`` or None; text nested deeper than MAX_JSON_DEPTH is not decoded (no recursion)."""
    if bracket_depth(text) > MAX_JSON_DEPTH:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _final_answer_of(obj: object) -> str | None:
    if not isinstance(obj, dict):
        return None
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == "final_answer":
            if isinstance(value, list):
                return ",".join(str(item) for item in value)
            return value if isinstance(value, str) else json.dumps(value)
    return None


def _join_json_list(text: str) -> str:
    value = _loads(text)
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        return ",".join(str(item) for item in value)
    inner = text[1:-1]
    return ",".join(piece.strip().strip("\"'") for piece in inner.split(","))


def _unescape(text: str, quote: str) -> str:
    if quote == '"':
        value = _loads(f'"{text}"')
        if isinstance(value, str):
            return value
    return text.replace("\\" + quote, quote)
