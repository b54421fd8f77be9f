"""Parent side of the result channel: parse and validate the child's JSON lines.

The child shares its interpreter with model code, so every line is treated as hostile input:
bounded size, strict message shapes, a strict order (``hello``, ``begin -1``, import result,
then ``begin i`` / result for i = 0, 1, ...), and values that must be nested lists of int/float.
Any deviation raises :class:`ProtocolViolation`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

MAX_VALUE_DEPTH = 32
#: Integers must satisfy ``abs(n) < INT_LIMIT`` (the child rejects larger ones as format errors, so a
#: larger one on the channel is forged; it could overflow float arithmetic in scoring).
INT_LIMIT = 2 ** 63
_TAGGED = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_RESULT_KINDS = ("ok", "error", "format", "timeout", "memory")


class ProtocolViolation(Exception):
    """The result channel carried something the child code never writes (tampering or damage)."""


def decode_value(raw: Any, depth: int = 0) -> Any:
    """Validate one returned value: nested lists of int/float, NaN/inf tagged as ``{"$f": ...}``."""
    kind = type(raw)
    if kind is float:
        if not math.isfinite(raw):  # e.g. 1e999 parses as inf; the child tags non-finite floats
            raise ProtocolViolation("an untagged non-finite number")
        return raw
    if kind is int:
        if not -INT_LIMIT < raw < INT_LIMIT:
            raise ProtocolViolation("an integer out of range")
        return raw
    if kind is list:
        if depth >= MAX_VALUE_DEPTH:
            raise ProtocolViolation("value nested too deeply")
        return [decode_value(item, depth + 1) for item in raw]
    if kind is dict and len(raw) == 1 and raw.get("$f") in _TAGGED:
        return _TAGGED[raw["$f"]]
    raise ProtocolViolation(f"value contains a {kind.__name__}, not a number")


def parse_line(line: bytes) -> dict[str, Any]:
    """Decode one JSON line into a message dict with a known ``k`` field."""
    try:
        message = json.loads(line.decode("ascii"), parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError, MemoryError) as exc:
        raise ProtocolViolation(f"unreadable line on the result channel ({exc.__class__.__name__})") from None
    if type(message) is not dict or not isinstance(message.get("k"), str):
        raise ProtocolViolation("a line on the result channel is not a message")
    return message


def _reject_constant(name: str) -> Any:
    raise ValueError(f"bare {name} is not allowed")


@dataclass
class Transcript:
    """Ordered record of what the child reported, built one message at a time.

    ``import_status`` is None until the top level finished, then one of ``_RESULT_KINDS``;
    ``results`` holds ``(kind, value_or_message)`` for calls 0..k-1; ``current`` is the index of
    the phase that began and has not reported yet (-1 = top level), else None.
    """

    n_calls: int
    hello: dict[str, Any] | None = None
    fatal: str | None = None
    import_status: str | None = None
    import_message: str = ""
    results: list[tuple[str, Any]] = field(default_factory=list)
    current: int | None = None
    ended: bool = False

    def add(self, message: dict[str, Any]) -> None:
        """Validate ``message`` against the expected order and record it."""
        kind = message["k"]
        if self.ended:
            raise ProtocolViolation("message after the end of the run")
        if self.hello is None:
            self._first(kind, message)
        elif kind == "begin":
            self._begin(message)
        elif kind in _RESULT_KINDS:
            self._result(kind, message)
        elif kind == "end" and self.current is None:
            self.ended = True
        else:
            raise ProtocolViolation(f"unexpected message {kind!r}")

    def _first(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "fatal" and isinstance(message.get("msg"), str):
            self.fatal = message["msg"]
            self.ended = True
        elif kind == "hello" and all(type(message.get(k)) is int for k in ("pid", "uid", "pidns")):
            self.hello = message
        else:
            raise ProtocolViolation("the child did not start with a hello message")

    def _next_index(self) -> int:
        return -1 if self.import_status is None else len(self.results)

    def _begin(self, message: dict[str, Any]) -> None:
        index = message.get("i")
        expected = self._next_index()
        if type(index) is not int or self.current is not None or index != expected or index >= self.n_calls:
            raise ProtocolViolation(f"out-of-order begin message for call {index!r}")
        if index >= 0 and self.import_status != "ok":
            raise ProtocolViolation("a call began although the program did not load")
        self.current = index

    def _result(self, kind: str, message: dict[str, Any]) -> None:
        index = message.get("i")
        if type(index) is not int or self.current is None or index != self.current:
            raise ProtocolViolation(f"result for call {index!r} that was not running")
        self.current = None
        if index == -1:
            if kind == "format":
                raise ProtocolViolation("a format result for the top level")
            self.import_status = kind
            self.import_message = _text(message) if kind == "error" else ""
            return
        if kind == "ok":
            payload: Any = decode_value(message.get("v"))
        elif kind in ("error", "format"):
            payload = _text(message)
        else:
            payload = ""
        self.results.append((kind, payload))

    @property
    def loaded(self) -> bool:
        """True once the top level ran and the function was found."""
        return self.import_status == "ok"


def _text(message: dict[str, Any]) -> str:
    text = message.get("msg")
    if not isinstance(text, str):
        raise ProtocolViolation("an error message without text")
    return text[:2000]
