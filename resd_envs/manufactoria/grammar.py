"""The line grammar of the Manufactoria DSL (``grammars/manufactoria.lark``) and a fast matcher built from it.

The lark file is the single definition of what a header line, a puller route line and a NEXT route
line look like. Parsing every line with lark's LALR parser costs ~40 us, so :func:`match_line` uses
regular expressions *generated from the loaded grammar*: each start rule's expansions (lark expands
the ``[optional]`` parts into alternatives) become one alternation of the terminals' own regexes.
Every terminal after a NAME or whitespace token starts with a character that NAME/whitespace cannot
contain, so regex backtracking accepts exactly what lark's longest-match lexer accepts; the test
suite cross-checks :func:`match_line` against :func:`lark_match_line` on random lines.

Lines are matched *stripped*, with Python's Unicode-aware ``\\w`` / ``\\s`` (as the reference does).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, NamedTuple

import lark

from resd_envs.assets import asset_path

#: The three line kinds, i.e. the start rules of the grammar.
LINE_RULES: tuple[str, ...] = ("header", "puller_route", "next_route")

#: Terminals whose text is reported to the caller (the others are punctuation or whitespace).
_FIELDS = ("NODE_TYPE", "NAME", "COLON", "CONDITION", "COMMENT")


class LineMatch(NamedTuple):
    """The named pieces of one matched line; absent optional pieces are None.

    Attributes:
        node_type: ``START``, ``PULLER_RB``, ... (header lines only).
        name: the node id of a header, or the target of a route.
        colon: True when a header carries the ``:`` after its id.
        condition: ``R``, ``B``, ``Y``, ``G`` or ``EMPTY`` (puller routes only).
    """

    node_type: str | None
    name: str | None
    colon: bool
    condition: str | None


@cache
def grammar_text() -> str:
    """The text of ``grammars/manufactoria.lark``."""
    return asset_path("grammars", "manufactoria.lark").read_text(encoding="utf-8")


@cache
def lark_parser() -> lark.Lark:
    """The LALR parser of the line grammar, one start rule per line kind (built once)."""
    return lark.Lark(grammar_text(), start=list(LINE_RULES), parser="lalr", lexer="contextual")


class _RuleMatcher(NamedTuple):
    pattern: re.Pattern[str]
    #: for each alternative (by its wrapper group index): the 0-based index in ``m.groups()`` of
    #: NODE_TYPE, NAME, COLON, CONDITION (-1 when the alternative lacks it)
    groups_by_alt: dict[int, tuple[int, int, int, int]]


_MATCHERS: dict[str, _RuleMatcher] = {}


def _new_match(values: tuple[Any, ...]) -> LineMatch:
    return tuple.__new__(LineMatch, values)


@cache
def _matchers() -> dict[str, _RuleMatcher]:
    parser = lark_parser()
    term_regex = {t.name: t.pattern.to_regexp() for t in parser.terminals}
    by_rule: dict[str, list[list[str]]] = {rule: [] for rule in LINE_RULES}
    for rule in parser.rules:
        origin = rule.origin.name
        if origin in by_rule:
            by_rule[origin].append([symbol.name for symbol in rule.expansion])
    matchers = {}
    for origin, expansions in by_rule.items():
        parts: list[str] = []
        groups_by_alt: dict[int, tuple[int, int, int, int]] = {}
        group = 0
        for expansion in expansions:
            group += 1
            wrapper = group
            fields: dict[str, int] = {}
            pieces = []
            for name in expansion:
                if name in _FIELDS:
                    group += 1
                    fields[name] = group
                    pieces.append(f"({term_regex[name]})")
                else:
                    pieces.append(f"(?:{term_regex[name]})")
            parts.append("(" + "".join(pieces) + ")")
            groups_by_alt[wrapper] = tuple(fields.get(f, 0) - 1 for f in ("NODE_TYPE", "NAME", "COLON", "CONDITION"))
        matchers[origin] = _RuleMatcher(re.compile("|".join(parts)), groups_by_alt)
    _MATCHERS.update(matchers)
    return matchers


def match_line(rule: str, stripped: str) -> LineMatch | None:
    """Match a stripped line against start rule ``rule``; None when the line is not of that form."""
    matcher = _MATCHERS.get(rule) or _matchers()[rule]
    m = matcher.pattern.fullmatch(stripped)
    if m is None:
        return None
    node_type, name, colon, condition = matcher.groups_by_alt[m.lastindex or 0]
    groups = m.groups()
    return _new_match(
        (
            groups[node_type] if node_type >= 0 else None,
            groups[name] if name >= 0 else None,
            colon >= 0,
            groups[condition] if condition >= 0 else None,
        )
    )


def lark_match_line(rule: str, stripped: str) -> LineMatch | None:
    """Same contract as :func:`match_line`, computed by lark's LALR parser (slow; used to cross-check)."""
    try:
        tree = lark_parser().parse(stripped, start=rule)
    except lark.exceptions.LarkError:
        return None
    tokens = {tok.type: str(tok) for tok in tree.children if isinstance(tok, lark.Token)}
    return LineMatch(tokens.get("NODE_TYPE"), tokens.get("NAME"), "COLON" in tokens, tokens.get("CONDITION"))
