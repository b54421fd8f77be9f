"""The result channel (parent side) and the child's pure helpers, tested in-process."""

from __future__ import annotations

import json
import math
from collections import namedtuple

import pytest

from resd_envs.sandbox import child
from resd_envs.sandbox.protocol import ProtocolViolation, Transcript, decode_value, parse_line


def _feed(transcript: Transcript, *lines: str) -> Transcript:
    for line in lines:
        transcript.add(parse_line(line.encode()))
    return transcript


HELLO = '{"k":"hello","pid":2,"uid":65534,"pidns":1,"netns":2,"hashseed":0}'


def test_valid_transcript_is_recorded_in_order() -> None:
    t = _feed(Transcript(2), HELLO, '{"k":"begin","i":-1}', '{"k":"ok","i":-1}',
              '{"k":"begin","i":0}', '{"k":"ok","i":0,"v":[[1.5,{"$f":"nan"}]]}',
              '{"k":"begin","i":1}', '{"k":"error","i":1,"msg":"line 1, in f: boom"}', '{"k":"end"}')
    assert t.loaded and t.ended and t.current is None
    assert t.results[0][0] == "ok" and math.isnan(t.results[0][1][0][1])
    assert t.results[1] == ("error", "line 1, in f: boom")


@pytest.mark.parametrize(
    "lines",
    [
        ['{"k":"begin","i":-1}'],  # no hello first
        [HELLO, '{"k":"begin","i":0}'],  # call before the top level
        [HELLO, '{"k":"begin","i":-1}', '{"k":"ok","i":-1}', '{"k":"ok","i":0,"v":[1]}'],  # never began
        [HELLO, '{"k":"begin","i":-1}', '{"k":"ok","i":-1}', '{"k":"begin","i":1}'],  # skipped index
        [HELLO, '{"k":"begin","i":-1}', '{"k":"ok","i":-1}', '{"k":"begin","i":0}',
         '{"k":"ok","i":0,"v":"passed"}'],  # not numbers
        [HELLO, '{"k":"begin","i":-1}', '{"k":"ok","i":-1}', '{"k":"begin","i":0}',
         '{"k":"ok","i":0,"v":[true]}'],  # bool
        [HELLO, '{"k":"end"}', '{"k":"begin","i":-1}'],  # after the end
        [HELLO, '{"k":"begin","i":5}'],  # beyond the number of calls
        [HELLO, '{"k":"passed"}'],  # unknown kind
        [HELLO, '{"k":"begin","i":true}'],
    ],
)
def test_out_of_order_or_malformed_messages_are_violations(lines: list[str]) -> None:
    with pytest.raises(ProtocolViolation):
        _feed(Transcript(2), *lines)


@pytest.mark.parametrize("line", [b"NaN", b"[1,2]", b'{"k":1}', b"{not json", b"\xff", b"[" * 100000])
def test_parse_line_rejects_garbage(line: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        parse_line(line)


def test_decode_value_accepts_only_numbers() -> None:
    assert decode_value([1, 2.5, [3]]) == [1, 2.5, [3]]
    assert decode_value({"$f": "-inf"}) == -math.inf
    for bad in (True, None, "1", {"$f": "zero"}, {"x": 1}, _nest(40)):
        with pytest.raises(ProtocolViolation):
            decode_value(bad)


def _nest(depth: int) -> list:
    value: list = [1.0]
    for _ in range(depth):
        value = [value]
    return value


def test_child_to_plain_reads_base_values_only() -> None:
    class Sneaky(float):
        def __float__(self) -> float:
            return 99.0

    Point = namedtuple("Point", "x y")
    assert child.to_plain([Point(Sneaky(1.25), 3), (4,)]) == [[1.25, 3], [4]]
    for bad, fragment in ((True, "bool"), ([None], "NoneType"), ({"a": 1}, "dict"), (_nest(40), "deeper")):
        with pytest.raises(child.FormatProblem, match=fragment):
            child.to_plain(bad)


def test_child_encode_and_quote_are_valid_json() -> None:
    plain = [1, -0.0, 1e300, float("nan"), [float("inf"), float("-inf")]]
    decoded = decode_value(json.loads(child.encode(plain)))
    assert decoded[:3] == [1, -0.0, 1e300] and math.isnan(decoded[3]) and decoded[4] == [math.inf, -math.inf]
    for text in ('quote " and \\ back', "tab\tnew\nline", "é😀\udc80", ""):
        assert json.loads(child.quote(text)) == text


def test_describe_exception_keeps_only_program_frames() -> None:
    source = "def f(t):\n    return g(t)\n\ndef g(t):\n    return {}[t]\n"
    namespace: dict = {}
    exec(compile(source, child.PROGRAM_FILENAME, "exec"), namespace)
    try:
        namespace["f"]("key")
    except KeyError as exc:
        text = child.describe_exception(exc, source.splitlines())
    assert text.splitlines()[0] == "line 5, in g: KeyError: 'key'"
    assert "f (line 2) -> g (line 5)" in text
    assert __file__ not in text
