"""Fast path of the parser for programs in the plain layout, and the symbol tables the runner uses.

The plain layout is what the prompt teaches and what most answers look like: every header at column 0
as ``KIND id:`` (``END end`` without a colon), every route on its own line as four spaces, ``[C]`` or
``NEXT``, one space and a target; single spaces; blank lines only between blocks; no comments, tabs,
carriage returns or non-ASCII ids; optionally wrapped in bare fences. :func:`scan` recognises such a
program with one regular-expression match, which also checks the rules local to a block (kinds, colons,
START/END ids, route kinds and counts, puller colours), splits it with ``str`` methods, and checks the
rest (duplicate ids, START/END present, references). It returns None for anything else, valid or not, and
:func:`~resd_envs.manufactoria.parser.parse` then runs the full line-by-line parser, which alone
raises errors. So :func:`scan` never decides an error, and a program it accepts is one the full parser
accepts with the same nodes (the fuzz tests check both claims on random programs).

The symbol table (``table``) is the form :func:`~resd_envs.manufactoria.machine.run` executes for
programs without painters: ``table[id]`` maps each colour the node consumes to its target (``NONE`` when
it has no route for that colour) and ``"EMPTY"`` to where the robot goes without consuming (the first
``[EMPTY]`` route of a puller, else ``NONE``; the NEXT target of START). END and a node named ``NONE``
are left out: the runner stops at ``end``, ``NONE`` and unknown ids.
"""

from __future__ import annotations

import re
from operator import itemgetter
from typing import Any, NamedTuple

_ID = r"[0-9A-Za-z_]+"
_NEXT = rf"\n    NEXT {_ID}"
_BLOCK = (
    rf"(?:END end|START start:{_NEXT}|PAINTER_(?:RED|BLUE|YELLOW|GREEN) {_ID}:{_NEXT}"
    rf"|PULLER_RB {_ID}:(?:\n    \[(?:[RB]|EMPTY)\] {_ID})*|PULLER_YG {_ID}:(?:\n    \[(?:[YG]|EMPTY)\] {_ID})*)"
)
#: A whole plain program (after stripping and removing bare fences): each block's header, route kinds,
#: colours and route count, and the START and END ids, are checked by the pattern itself.
PLAIN = re.compile(rf"{_BLOCK}(?:\n+{_BLOCK})*")

#: For each puller kind: the two colours it consumes.
PULLERS: dict[str, tuple[str, str]] = {"PULLER_RB": ("R", "B"), "PULLER_YG": ("Y", "G")}
_PAINTERS = frozenset({"PAINTER_RED", "PAINTER_BLUE", "PAINTER_YELLOW", "PAINTER_GREEN"})
_TERMINAL_TARGETS = ("NONE", "END", "end")
_first, _second, _targets = itemgetter(0), itemgetter(1), itemgetter(slice(3, None, 2))
_new = tuple.__new__

#: One entry of a symbol table: colour -> target when the node consumes it, ``"EMPTY"`` -> target
#: otherwise; other keys (a node kind) are never single characters and so never match a symbol.
SymbolEntry = dict[str, str]


class Plain(NamedTuple):
    """A program :func:`scan` accepted (and checked completely).

    Attributes:
        flat: the program with each block on one line: ``kind id cond target cond target ...``
            (conditions without brackets, ``NEXT`` for NEXT routes), blank lines kept as empty lines;
            its first line is line 1 (as in the parser, an opening fence is not counted).
        blocks: the tokens of each block, in definition order.
    """

    flat: str
    blocks: list[list[str]]


def _complete(entry: SymbolEntry) -> None:
    """Give a puller's entry its missing colours and ``EMPTY`` (all to ``NONE``); a START entry its NEXT."""
    if "START" in entry:  # {START: start, NEXT: target}
        entry["EMPTY"] = entry.pop("NEXT")
        return
    for kind, (own_a, own_b) in PULLERS.items():
        if kind in entry:
            entry.setdefault(own_a, "NONE")
            entry.setdefault(own_b, "NONE")
            entry.setdefault("EMPTY", "NONE")


def scan(text: str) -> Plain | None:
    """The flat form of a plain-layout program, or None (not plain, or not valid).

    Apart from the pattern, only C-level ``str``/``map``/``zip``/``set`` calls: ids are each block's second
    token, route targets every other token from the fourth.
    """
    body = text.strip()
    if body.startswith("```\n"):
        body = body[4:]
    if body.endswith("\n```"):
        body = body[:-4]
    if PLAIN.fullmatch(body) is None:
        return None
    flat = body.replace("\n    ", " ").replace("[", "").replace("]", "").replace(":", "")
    blocks = list(map(str.split, filter(None, flat.split("\n"))))
    kind_of = dict(zip(map(_second, blocks), map(_first, blocks)))
    if len(kind_of) != len(blocks) or kind_of.get("start") != "START" or kind_of.get("end") != "END":
        return None  # a duplicate id, or no START / END node
    if set().union(*map(_targets, blocks)).difference(kind_of, _TERMINAL_TARGETS):
        return None  # an undefined reference
    return _new(Plain, (flat, blocks))


def plain_table(plain: Plain) -> dict[str, SymbolEntry] | None:
    """The symbol table of a program :func:`scan` accepted; None when it has painters or a repeated
    route condition (rare; the compiled engine of :mod:`.machine` runs those).

    Each block ``kind id c1 t1 c2 t2 ...`` becomes the dict ``{kind: id, c1: t1, ...}``, completed by
    :func:`_complete`.
    """
    if "PAINTER_" in plain.flat:
        return None
    blocks = plain.blocks
    tokens = list(map(iter, blocks))
    entries = list(map(dict, map(zip, tokens, tokens)))
    if 2 * sum(map(len, entries)) != sum(map(len, blocks)):
        return None  # a dict is shorter than its block: a repeated condition
    table = dict(zip(map(_second, blocks), entries))
    del table["end"]
    table.pop("NONE", None)
    for entry in entries:
        if len(entry) != 4:  # a complete puller entry has its kind, two colours and EMPTY
            _complete(entry)
    return table


def symbol_table(nodes: dict[str, Any]) -> dict[str, SymbolEntry] | None:
    """The symbol table of parsed nodes (:class:`~resd_envs.manufactoria.parser.Node`), None with painters."""
    table: dict[str, SymbolEntry] = {}
    for node in nodes.values():
        kind = node.kind
        if kind in _PAINTERS:
            return None
        if kind in PULLERS:
            entry = {kind: node.id}
            for route in reversed(node.routes):  # the first route of a condition wins
                entry[route.condition] = route.target
            _complete(entry)
            table[node.id] = entry
        elif kind == "START":
            table[node.id] = {kind: node.id, "EMPTY": node.routes[0].target}
    table.pop("NONE", None)
    return table
