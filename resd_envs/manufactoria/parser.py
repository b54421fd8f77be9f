"""Program text -> :class:`Factory`, accepting and rejecting exactly what the DELTA reference does.

Pipeline (see ``docs/manufactoria.md`` and the spec it follows):

1. strip the whole text, split on ``\\n``; drop a first and/or last line that is exactly three backticks;
2. drop blank lines and lines whose stripped form starts with ``#`` (line numbers still count them);
3. group the rest into blocks: a header line plus every following line that starts with four spaces or
   a tab (its routes); each stripped line is matched with the lark line grammar (:mod:`.grammar`);
4. per block, in this order: header form, colon rule, duplicate id, START/END id, each route line, the
   block's route count / puller colours; after all blocks: START present, END present, references.

The first problem found is raised as :class:`ManufactoriaSyntaxError` with a ``category`` (the golden
file's names), the 1-based ``line`` (None for whole-program errors) and the reference's ``message``.

Speed: programs in the plain layout (see :mod:`.scan`) are recognised and checked by :func:`.scan.scan`
with one regular-expression match and ``str`` methods; everything else (comments, tabs, odd spacing,
and every invalid program) goes through the line-by-line pipeline above, which alone raises errors.
A parsed plain program keeps its flat form and builds its :class:`Node` objects when ``nodes`` is
first read. Nothing is cached across calls: every call parses its text.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, NamedTuple

from resd_envs.errors import ResdEnvError
from resd_envs.manufactoria.grammar import match_line
from resd_envs.manufactoria.scan import Plain, SymbolEntry, plain_table, scan, symbol_table

NODE_TYPES: tuple[str, ...] = (
    "START", "END", "PULLER_RB", "PULLER_YG", "PAINTER_RED", "PAINTER_BLUE", "PAINTER_YELLOW", "PAINTER_GREEN",
)
PULLER_COLOURS: dict[str, frozenset[str]] = {
    "PULLER_RB": frozenset({"R", "B", "EMPTY"}),
    "PULLER_YG": frozenset({"Y", "G", "EMPTY"}),
}
PAINT_COLOUR: dict[str, str] = {"PAINTER_RED": "R", "PAINTER_BLUE": "B", "PAINTER_YELLOW": "Y", "PAINTER_GREEN": "G"}

#: Every error category :func:`parse` can raise, in the golden file's spelling.
ERROR_CATEGORIES: tuple[str, ...] = (
    "empty_program", "invalid_node_declaration", "end_has_colon", "missing_colon", "duplicate_node_id",
    "start_id_not_start", "end_id_not_end", "invalid_puller_route", "invalid_next_route", "end_has_routes",
    "start_route_count", "painter_route_count", "invalid_condition_for_puller", "missing_start", "missing_end",
    "undefined_reference",
)


class ManufactoriaSyntaxError(ResdEnvError):
    """A program the reference parser rejects.

    Attributes:
        category: one of :data:`ERROR_CATEGORIES`.
        line: 1-based line number (after the whole text is stripped and an opening ``` line removed),
            or None for whole-program errors (empty program, missing START/END).
        message: the reference's message without the ``Line N:`` prefix.
        text: the offending stripped line, when there is one.
    """

    def __init__(self, category: str, message: str, line: int | None = None, text: str | None = None) -> None:
        self.category = category
        self.line = line
        self.message = message
        self.text = text
        super().__init__(f"Line {line}: {message}" if line else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.category, self.message, self.line, self.text))


class Route(NamedTuple):
    """One route line: ``condition`` is R/B/Y/G/EMPTY for pullers, None for NEXT routes."""

    condition: str | None
    target: str
    line: int


class Node(NamedTuple):
    """One parsed node (block) of a program: id, type (``PULLER_RB``...), routes, header line."""

    id: str
    kind: str
    routes: tuple[Route, ...]
    line: int


#: Marks a symbol table not built yet (None means: the program has painters, or runs long).
UNSET: Any = object()


class Factory:
    """A parsed program: ``nodes`` (id -> :class:`Node`) in definition order, ids unique.

    Run it with :func:`.machine.run`. Compare factories by their ``nodes`` (``==`` is identity). The
    remaining attributes are the runner's private, lazily filled state.
    """

    __slots__ = ("_nodes", "_plain", "_compiled", "table")

    def __init__(self, nodes: dict[str, Node]) -> None:
        self._nodes: dict[str, Node] | None = nodes
        self._plain: Plain | None = None
        self._compiled: list[Any] = []
        #: symbol table for :func:`.machine.run` (see :mod:`.scan`): UNSET, a table, or None
        self.table: dict[str, SymbolEntry] | None = UNSET

    @classmethod
    def from_plain(cls, plain: Plain) -> Factory:
        """A factory of a program :func:`.scan.scan` accepted (nodes are built on first use)."""
        factory = cls.__new__(cls)
        factory._nodes = None
        factory._plain = plain
        factory._compiled = []
        factory.table = UNSET
        return factory

    def symbol_table(self) -> dict[str, SymbolEntry] | None:
        """The program's symbol table for :func:`.machine.run` (None: run it with the compiled engine)."""
        if self._plain is not None:
            return plain_table(self._plain)
        return symbol_table(self.nodes)

    @property
    def nodes(self) -> dict[str, Node]:
        if self._nodes is None:
            assert self._plain is not None
            self._nodes = _nodes_of(self._plain)
        return self._nodes

    @property
    def node_count(self) -> int:
        """How many nodes the program defines, without building the :class:`Node` objects."""
        if self._nodes is not None:
            return len(self._nodes)
        assert self._plain is not None
        return len(self._plain.blocks)

    def __repr__(self) -> str:
        return f"Factory(nodes={self.nodes!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Factory, (self.nodes,))


def _nodes_of(plain: Plain) -> dict[str, Node]:
    """The :class:`Node` objects of a plain program (each block's routes follow its header line)."""
    new = tuple.__new__
    nodes: dict[str, Node] = {}
    line = 1
    for entry in plain.flat.split("\n"):
        if not entry:
            line += 1
            continue
        parts = entry.split(" ")
        kind = parts[0]
        count = (len(parts) - 2) >> 1
        conds = parts[2::2] if kind in PULLER_COLOURS else repeat(None, count)
        routes = tuple(map(new, repeat(Route), zip(conds, parts[3::2], range(line + 1, line + 1 + count))))
        nodes[parts[1]] = new(Node, (parts[1], kind, routes, line))
        line += 1 + count
    return nodes


def split_lines(text: str) -> list[str]:
    """Steps 1-2 of the pre-processing: the numbered lines (index + 1 = line number)."""
    lines = text.strip().split("\n")
    if lines and lines[0].strip() == "```":
        lines = lines[1:]
    if lines and lines[-1].strip() == "```":
        lines = lines[:-1]
    return lines


def parse(text: str) -> Factory:
    """Parse Manufactoria program text.

    Raises:
        ManufactoriaSyntaxError: the first problem, in the reference's order.
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"a Manufactoria program must be a str, got {type(text).__name__}")
    plain = scan(text)
    if plain is not None:
        return Factory.from_plain(plain)
    return parse_lines(text)


def parse_lines(text: str) -> Factory:
    """The line-by-line parser (the specification; :func:`parse` uses it for all but plain programs)."""
    kept = []
    for number, raw in enumerate(split_lines(text), start=1):
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            kept.append((raw, stripped, number))
    if not kept:
        raise ManufactoriaSyntaxError("empty_program", "Empty program")

    nodes: dict[str, Node] = {}
    has_start = has_end = False
    i, count = 0, len(kept)
    while i < count:
        _, stripped, number = kept[i]
        header = match_line("header", stripped)
        if header is None:
            raise ManufactoriaSyntaxError(
                "invalid_node_declaration", f"Invalid node declaration: {stripped}", number, stripped
            )
        kind, node_id = header.node_type, header.name
        assert kind is not None and node_id is not None  # guaranteed by the grammar
        if kind == "END" and header.colon:
            raise ManufactoriaSyntaxError("end_has_colon", "END nodes should not have a colon", number, stripped)
        if kind != "END" and not header.colon:
            raise ManufactoriaSyntaxError("missing_colon", f"{kind} nodes must have a colon", number, stripped)
        if node_id in nodes:
            raise ManufactoriaSyntaxError("duplicate_node_id", f"Duplicate node ID: {node_id}", number, stripped)
        if kind == "START":
            if node_id != "start":
                raise ManufactoriaSyntaxError("start_id_not_start", "START node must have ID 'start'", number, stripped)
            has_start = True
        elif kind == "END":
            if node_id != "end":
                raise ManufactoriaSyntaxError("end_id_not_end", "END node must have ID 'end'", number, stripped)
            has_end = True
        routes = []
        i += 1
        while i < count and (kept[i][0].startswith("    ") or kept[i][0].startswith("\t")):
            routes.append(_parse_route(kind, kept[i][1], kept[i][2]))
            i += 1
        _check_routes(kind, routes, number, stripped)
        nodes[node_id] = Node(node_id, kind, tuple(routes), number)

    if not has_start:
        raise ManufactoriaSyntaxError("missing_start", "Program must have a START node")
    if not has_end:
        raise ManufactoriaSyntaxError("missing_end", "Program must have an END node")
    for node in nodes.values():
        for route in node.routes:
            if route.target not in ("NONE", "END") and route.target not in nodes:
                raise ManufactoriaSyntaxError(
                    "undefined_reference",
                    f"Node '{node.id}' references undefined node '{route.target}'",
                    node.line,
                    route.target,
                )
    return Factory(nodes)


def _parse_route(kind: str, stripped: str, number: int) -> Route:
    if kind in PULLER_COLOURS:
        found = match_line("puller_route", stripped)
        if found is None:
            raise ManufactoriaSyntaxError(
                "invalid_puller_route", f"Invalid puller route format: {stripped}", number, stripped
            )
        return Route(found.condition, found.name or "", number)
    if kind == "END":
        raise ManufactoriaSyntaxError("end_has_routes", "END nodes cannot have routes", number, stripped)
    found = match_line("next_route", stripped)
    if found is None:
        raise ManufactoriaSyntaxError("invalid_next_route", f"Invalid NEXT route format: {stripped}", number, stripped)
    return Route(None, found.name or "", number)


def _check_routes(kind: str, routes: list[Route], number: int, stripped: str) -> None:
    if kind == "START" and len(routes) != 1:
        raise ManufactoriaSyntaxError(
            "start_route_count", "START node must have exactly one NEXT route", number, stripped
        )
    if kind in PAINT_COLOUR and len(routes) != 1:
        raise ManufactoriaSyntaxError(
            "painter_route_count", "PAINTER nodes must have exactly one NEXT route", number, stripped
        )
    allowed = PULLER_COLOURS.get(kind)
    if allowed is not None:
        # The reference iterates a set here, so with two different wrong colours the one it names
        # depends on PYTHONHASHSEED; we name the first wrong colour in route order.
        for route in routes:
            if route.condition not in allowed:
                raise ManufactoriaSyntaxError(
                    "invalid_condition_for_puller",
                    f"Invalid condition '{route.condition}' for {kind}",
                    number,
                    stripped,
                )
