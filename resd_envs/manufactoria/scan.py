"""Fast path of the parser for programs in the plain layout, and the symbol tables the runner uses.

The plain layout is what the prompt teaches and what most answers look like: every header at column 0
as ``KIND id:`` (``END end`` without a colon), every route on its own line as four spaces, ``[C]`` or
``NEXT``, one space and a target; single spaces; blank lines only between blocks; no comments, tabs,
carriage returns or non-ASCII ids; optionally wrapped in bare fences. :func:`scan` recognises such a
program with one regular-expression match, splits it with ``str`` methods, and checks every rule of
the parser (kinds, colons, START/END ids, route kinds and counts, puller colours, duplicate ids,
START/END present, references). It returns None for anything else, valid or not, and
:func:`~resd_envs.manufactoria.parser.parse` then runs the full line-by-line parser, which alone
raises errors. So :func:`scan` never decides an error, and a program it accepts is one the full parser
accepts with the same nodes (the fuzz tests check both claims on random programs).

The symbol table (``table``) is the form :func:`~resd_envs.manufactoria.machine.run` executes for
programs without painters: ``table[id] = (moves, otherwise)`` where ``moves`` maps each colour the node
consumes to its target (``NONE`` when it has no route for that colour) and ``otherwise`` is where the
robot goes without consuming (the first ``[EMPTY]`` route of a puller, else ``NONE``; the NEXT target of
START). END and a node named ``NONE`` are left out: the runner stops at ``end``, ``NONE`` and unknown ids.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: Node kinds whose header carries a colon in the plain layout (all but END).
_COLON_KINDS = ("START", "PULLER_RB", "PULLER_YG", "PAINTER_RED", "PAINTER_BLUE", "PAINTER_YELLOW", "PAINTER_GREEN")
_ID = r"[0-9A-Za-z_]+"
_BLOCK = rf"(?:END end|(?:{'|'.join(_COLON_KINDS)}) {_ID}:(?:\n    (?:\[(?:[RBYG]|EMPTY)\]|NEXT) {_ID})*)"
#: A whole plain program (after stripping and removing bare fences).
PLAIN = re.compile(rf"{_BLOCK}(?:\n+{_BLOCK})*")

#: For each puller kind: the colours it consumes and the route conditions it may use.
PULLERS: dict[str, tuple[str, str, frozenset[str]]] = {
    "PULLER_RB": ("R", "B", frozenset({"R", "B", "EMPTY"})),
    "PULLER_YG": ("Y", "G", frozenset({"Y", "G", "EMPTY"})),
}
_PAINTERS = frozenset({"PAINTER_RED", "PAINTER_BLUE", "PAINTER_YELLOW", "PAINTER_GREEN"})
_NO_MOVES: dict[str, str] = {}
_TERMINAL_TARGETS = ("NONE", "END", "end")

#: One entry of a symbol table: (colour -> target when consumed, target otherwise).
SymbolEntry = tuple[dict[str, str], str]


class Plain(NamedTuple):
    """A program :func:`scan` accepted.

    Attributes:
        flat: the program with each block on one line: ``kind id cond target cond target ...``
            (conditions without brackets, ``NEXT`` for NEXT routes), blank lines kept as empty lines.
        first_line: the line number of the first line of ``flat`` (2 after an opening fence).
        table: the symbol table, or None when the program has painters.
    """

    flat: str
    first_line: int
    table: dict[str, SymbolEntry] | None


def puller_entry(kind: str, conds: list[str], targets: list[str]) -> SymbolEntry:
    """Symbol-table entry of a puller: the first route of each condition wins."""
    own_a, own_b, _ = PULLERS[kind]
    moves = dict(zip(conds[::-1], targets[::-1]))
    otherwise = moves.pop("EMPTY", "NONE")
    if own_a not in moves:
        moves[own_a] = "NONE"
    if own_b not in moves:
        moves[own_b] = "NONE"
    return moves, otherwise


def scan(text: str) -> Plain | None:
    """The flat form and symbol table of a plain-layout program, or None (not plain, or not valid)."""
    body = text.strip()
    first_line = 1
    if body.startswith("```\n"):
        body = body[4:]
        first_line = 2
    if body.endswith("\n```"):
        body = body[:-4]
    if PLAIN.fullmatch(body) is None:
        return None
    flat = body.replace("\n    ", " ").replace("[", "").replace("]", "").replace(":", "")
    entries = flat.split("\n")
    table: dict[str, SymbolEntry] = {}
    targets: set[str] = set()
    add_targets = targets.update
    has_start = has_end = painted = False
    for entry in entries:
        if not entry:
            continue
        parts = entry.split(" ")
        puller = PULLERS.get(parts[0])
        if puller is not None:
            conds = parts[2::2]
            node_targets = parts[3::2]
            moves = dict(zip(conds, node_targets))
            if len(moves) != len(conds) or not puller[2].issuperset(moves):
                return None  # a repeated condition (valid, rare: left to the full parser) or a wrong colour
            add_targets(node_targets)
            otherwise = moves.pop("EMPTY", "NONE")
            if len(moves) != 2:
                moves.setdefault(puller[0], "NONE")
                moves.setdefault(puller[1], "NONE")
            table[parts[1]] = (moves, otherwise)
        elif parts[0] == "END":  # the pattern allows only ``END end``, without routes
            has_end = True
        else:
            if len(parts) != 4 or parts[2] != "NEXT":
                return None
            targets.add(parts[3])
            if parts[0] == "START":
                if parts[1] != "start":
                    return None
                has_start = True
            else:
                painted = True
            table[parts[1]] = (_NO_MOVES, parts[3])
    headers = len(entries) - entries.count("")
    if not (has_start and has_end) or "end" in table or len(table) + 1 != headers:  # +1: END; else duplicates
        return None
    if targets.difference(table, _TERMINAL_TARGETS):
        return None
    if painted:
        return Plain(flat, first_line, None)
    table.pop("NONE", None)
    return Plain(flat, first_line, table)


def symbol_table(nodes: dict) -> dict[str, SymbolEntry] | None:
    """The symbol table of parsed nodes (:class:`~resd_envs.manufactoria.parser.Node`), None with painters."""
    table: dict[str, SymbolEntry] = {}
    for node in nodes.values():
        kind = node.kind
        if kind in _PAINTERS:
            return None
        if kind in PULLERS:
            routes = node.routes
            table[node.id] = puller_entry(kind, [r.condition for r in routes], [r.target for r in routes])
        elif kind == "START":
            table[node.id] = (_NO_MOVES, node.routes[0].target)
    table.pop("NONE", None)
    return table
