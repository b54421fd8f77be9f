"""Seeded fuzzing: tens of thousands of random and malformed programs and tapes.

Checks that only the documented errors ever escape, nothing hangs, the parser agrees with an
independent oracle written from the spec's regular expressions (§1), and the fast interpreter agrees
with the step-by-step one. Runtime is kept well under 60 s.
"""

from __future__ import annotations

import random
import re

import pytest

import resd_envs
from resd_envs import manufactoria as mf
from resd_envs.core.results import ERROR_TYPES
from resd_envs.manufactoria.grammar import LINE_RULES, lark_match_line, match_line
from resd_envs.manufactoria.parser import Factory, parse_lines
from resd_envs.manufactoria.scan import scan, symbol_table

TYPES = ["START", "END", "PULLER_RB", "PULLER_YG", "PAINTER_RED", "PAINTER_BLUE", "PAINTER_YELLOW", "PAINTER_GREEN"]
_HEADER = re.compile(r"(" + "|".join(TYPES) + r")\s+(\w+)(:?)\s*(?:#.*)?")
_PULL = re.compile(r"\[([RBYG]|EMPTY)\]\s+(\w+)\s*(?:#.*)?")
_NEXT = re.compile(r"NEXT\s+(\w+)\s*(?:#.*)?")


def oracle(text: str) -> tuple[str, int | None] | dict[str, tuple]:
    """An independent re-statement of spec §1: a category + line, or {id: (type, routes)}."""
    lines = text.strip().split("\n")
    if lines and lines[0].strip() == "```":
        lines = lines[1:]
    if lines and lines[-1].strip() == "```":
        lines = lines[:-1]
    kept = [(ln, i + 1) for i, ln in enumerate(lines) if ln.strip() and not ln.strip().startswith("#")]
    if not kept:
        return ("empty_program", None)
    nodes: dict[str, tuple] = {}
    lines_of: dict[str, int] = {}
    i = 0
    while i < len(kept):
        raw, num = kept[i]
        m = _HEADER.fullmatch(raw.strip())
        if not m:
            return ("invalid_node_declaration", num)
        kind, nid, colon = m.groups()
        if kind == "END" and colon:
            return ("end_has_colon", num)
        if kind != "END" and not colon:
            return ("missing_colon", num)
        if nid in nodes:
            return ("duplicate_node_id", num)
        if kind == "START" and nid != "start":
            return ("start_id_not_start", num)
        if kind == "END" and nid != "end":
            return ("end_id_not_end", num)
        routes = []
        i += 1
        while i < len(kept) and kept[i][0][:4] == "    " or i < len(kept) and kept[i][0][:1] == "\t":
            line, rnum = kept[i][0].strip(), kept[i][1]
            if kind.startswith("PULLER"):
                r = _PULL.fullmatch(line)
                if not r:
                    return ("invalid_puller_route", rnum)
                routes.append((r.group(1), r.group(2)))
            elif kind == "END":
                return ("end_has_routes", rnum)
            else:
                r = _NEXT.fullmatch(line)
                if not r:
                    return ("invalid_next_route", rnum)
                routes.append((None, r.group(1)))
            i += 1
        if kind == "START" and len(routes) != 1:
            return ("start_route_count", num)
        if kind.startswith("PAINTER") and len(routes) != 1:
            return ("painter_route_count", num)
        allowed = {"PULLER_RB": "RB", "PULLER_YG": "YG"}.get(kind)
        if allowed and any(c != "EMPTY" and c not in allowed for c, _ in routes):
            return ("invalid_condition_for_puller", num)
        nodes[nid] = (kind, tuple(routes))
        lines_of[nid] = num
    if "start" not in nodes or nodes["start"][0] != "START":
        return ("missing_start", None)
    if "end" not in nodes or nodes["end"][0] != "END":
        return ("missing_end", None)
    for nid, (_, routes) in nodes.items():
        if any(t not in ("NONE", "END") and t not in nodes for _, t in routes):
            return ("undefined_reference", lines_of[nid])
    return nodes


def random_program(rng: random.Random, plain: bool = False) -> str:
    """A random program; ``plain``: in the layout :func:`scan` takes (4-space indent, no comments)."""
    n = rng.randint(1, 12)
    ids = ["start", "end"] + [rng.choice(["n", "s", "q_", "é", "x"]) + str(i) for i in range(n)]
    targets = ids + ["NONE", "NONE", "end", "END", "start"]
    blocks = [f"START start:\n    NEXT {rng.choice(ids[2:])}", "END end"]
    for nid in ids[2:]:
        kind = rng.choice(TYPES[2:])
        if kind.startswith("PULLER"):
            colours = "RB" if kind == "PULLER_RB" else "YG"
            conds = rng.sample([colours[0], colours[1], "EMPTY"], rng.randint(0, 3))
            routes = [f"[{c}] {rng.choice(targets)}" for c in conds]
        else:
            routes = [f"NEXT {rng.choice(targets)}"]
        indent = "    " if plain else rng.choice(["    ", "\t", "        ", "    \t"])
        comment = "" if plain else rng.choice(["", "", " # c", "# x"])
        blocks.append("\n".join([f"{kind} {nid}:{comment}"] + [indent + r for r in routes]))
    rng.shuffle(blocks)
    text = rng.choice(["\n", "\n\n"] if plain else ["\n", "\n\n", "\n# note\n"]).join(blocks)
    return rng.choice(["", "```\n"]) + text + rng.choice(["", "\n```", "\n"])


NOISE = ["", " ", "\t", "  ", ":", "::", "#", "[", "]", "[R]", "NEXT", "END", "end", "NONE", "é", "\u00a0", "\r", "`",
         "```", "x-y", "START", "PULLER_RB", "[EMPTY]", "\x1c", "0", "\n", "    ", "  [G] a", "PAINTER_RED p:"]


def mutate(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        op = rng.randrange(6)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines[i] = lines[i].lstrip() if rng.random() < 0.5 else "  " + lines[i]
        elif op == 2 and lines[i]:
            j = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + rng.choice(NOISE) + lines[i][j + 1:]
        elif op == 3:
            lines.insert(i, rng.choice(NOISE))
        elif op == 4:
            lines[i] = lines[i].upper() if rng.random() < 0.5 else lines[i].lower()
        else:
            k = rng.randrange(len(lines))
            lines[i], lines[k] = lines[k], lines[i]
    return "\n".join(lines)


def test_fuzz_parser_matches_oracle_and_run_matches_trace() -> None:
    rng = random.Random(20260601)
    parsed = errors = runs = 0
    for _ in range(12000):
        text = random_program(rng)
        if rng.random() < 0.6:
            text = mutate(rng, text)
        want = oracle(text)
        try:
            factory = mf.parse(text)
        except mf.ManufactoriaSyntaxError as error:
            assert error.category in mf.ERROR_CATEGORIES
            assert (error.category, error.line) == want, text
            errors += 1
            continue
        parsed += 1
        assert isinstance(want, dict), (text, want)
        assert {k: (n.kind, tuple((r.condition, r.target) for r in n.routes)) for k, n in factory.nodes.items()} == want
        for _ in range(3):
            length = rng.choice([0, 1, 3, 8, 20, 40, 40, 1200]) if rng.random() < 0.9 else rng.randint(900, 1100)
            tape = "".join(rng.choice("RBYGRBYGx") for _ in range(length))
            fast = mf.run(factory, tape)
            assert fast == mf.trace(factory, tape, keep=0).result, (text, tape)
            runs += 1
    assert parsed > 2000 and errors > 2000 and runs > 6000


def test_fuzz_plain_scanner_agrees_with_line_parser() -> None:
    """scan() accepts only what the line parser accepts, with the same nodes and symbol table."""
    rng = random.Random(77)
    accepted = declined_valid = 0
    for _ in range(8000):
        text = random_program(rng, plain=rng.random() < 0.8)
        if rng.random() < 0.5:
            text = mutate(rng, text)
        plain = scan(text)
        try:
            want = parse_lines(text)
        except mf.ManufactoriaSyntaxError:
            assert plain is None, text
            continue
        if plain is None:
            declined_valid += 1
            continue
        accepted += 1
        got = Factory.from_plain(plain)
        assert got.nodes == want.nodes, text
        table = got.symbol_table()
        if table is not None:
            assert table == symbol_table(want.nodes), text
        assert mf.parse(text).nodes == want.nodes
    assert accepted > 800 and declined_valid > 100, (accepted, declined_valid)


def test_fuzz_lines_fast_matcher_equals_lark() -> None:
    rng = random.Random(5)
    alphabet = ["[", "]", "R", "B", "Y", "G", "EMPTY", " ", "\t", "#", ":", "a", "é", "_", "1", "NEXT", "START",
                "END", "PULLER_RB", "PAINTER_RED", "\u00a0", "\r", "-", "x"]
    for _ in range(4000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))).strip()
        for rule in LINE_RULES:
            assert match_line(rule, line) == lark_match_line(rule, line), (rule, line)


def test_fuzz_evaluate_never_raises() -> None:
    fam = resd_envs.family("resd/Manufactoria-Has-v0")
    tasks = fam.tasks("train")
    rng = random.Random(11)
    for i in range(2500):
        task = tasks[i % len(tasks)]
        body = mutate(rng, random_program(rng)) if rng.random() < 0.7 else "".join(
            rng.choice(NOISE + ["a", "b", "\n"]) for _ in range(rng.randint(0, 60)))
        wrapper = rng.choice(["{}", "```manufactoria\n{}\n```", "<think>```\n{}```</think>\n```manufactoria\n{}\n```",
                              "Here:\n```\n{}\n```", "```python\n{}\n```", "```manufactoria\n{}"])
        response = wrapper.replace("{}", body)
        for detail in ("full", "summary", "minimal"):
            ev = fam.evaluate(task, response, detail=detail, max_chars=rng.choice([0, 200, 4000]))
            assert ev.error_type is None or ev.error_type in ERROR_TYPES
            assert ev.feedback and 0.0 <= ev.score <= 1.0


@pytest.mark.parametrize("bad", [None, 3, b"bytes"])
def test_evaluate_tolerates_non_string_responses(bad: object) -> None:
    fam = resd_envs.family("resd/Manufactoria-Has-v0")
    ev = fam.evaluate(fam.tasks("test")[0], bad)  # type: ignore[arg-type]
    assert ev.score == 0.0 and ev.error_type in ("no_code", "parse_error")
