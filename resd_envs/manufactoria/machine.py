"""Running robots through a parsed factory, with the DELTA reference's exact semantics.

Semantics (the reference's, including its quirks):

* the tape is a queue: pullers remove the front symbol, painters append at the end; any characters may
  appear on a tape, those other than R/B/Y/G simply never match a puller branch;
* each iteration appends the current id to the path (``steps`` = path length), then: id ``NONE`` ->
  reject (even if a node is called ``NONE``); id ``end`` -> accept; an id that is not a defined node
  (only ``END`` can get here) -> reject; otherwise the node executes;
* a puller whose colour pair contains the front symbol consumes it and takes the first route with that
  colour (NONE if none); on an empty tape or a foreign front symbol it consumes nothing and takes the
  first ``[EMPTY]`` route (NONE if none);
* at most 1000 iterations: if the 1000th iteration executes a node, the robot is rejected
  (``max_iterations``, ``steps`` 1000) with the tape as it is after that node.

:func:`run` is fast. Programs without painters are run symbol by symbol on their symbol table (see
:mod:`.scan`; built by the parser, nothing to compile), as long as a run stays short: a tape longer
than :data:`_SYMBOL_TAPE_LIMIT` or more than :data:`_SYMBOL_IDLE_LIMIT` executed nodes hand the run
over (and every later run of that factory) to the compiled engine. For that engine the factory is compiled (lazily, memoised per node and front symbol) into "macro
transitions": the whole run of non-consuming nodes up to the next consumption, terminal, or painted
symbol on an empty tape. Long runs take two macros per step; non-consuming loops are solved
arithmetically, and consuming loops are caught by Brent cycle detection on the (node, tape) state,
skipping whole cycles. Verdicts, output tapes and step counts are exactly the literal interpreter's. :func:`trace` is
the plain step-by-step interpreter (it also records the path) and is the reference the tests compare
:func:`run` against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from resd_envs.manufactoria.parser import PAINT_COLOUR, UNSET, Factory, parse
from resd_envs.manufactoria.scan import SymbolEntry

#: Most iterations a robot may use (the reference's ``max_iterations``).
MAX_ITERATIONS = 1000

ACCEPT, NONE, UNKNOWN, LOOP = -1, -2, -3, -4
_TERMINAL_REJECTION = {NONE: "routed_to_none", UNKNOWN: "unknown_node"}
#: Front-symbol classes: the empty tape, the four colours, anything else.
_CLASSES = ("", "R", "B", "Y", "G", None)
_CLASS_OF = {"R": 1, "B": 2, "Y": 3, "G": 4}
#: Snapshot the state for cycle detection only after this many executed nodes (short runs skip it).
_CYCLE_CHECK_AFTER = 64


class RunResult(NamedTuple):
    """Outcome of one robot, with the fields of the golden file (a named tuple: cheap to build).

    Attributes:
        result: ``"accept"`` or ``"reject"``.
        output_tape: the tape when the robot stopped (for accepted and rejected robots).
        steps: length of the reference's path: START, every executed node, and the final id
            (``NONE``, ``end`` or the unknown id); 1000 when the iteration limit was hit.
        rejection: ``"routed_to_none"``, ``"max_iterations"``, ``"unknown_node"`` or None if accepted.
    """

    result: str
    output_tape: str
    steps: int
    rejection: str | None

    @property
    def accepted(self) -> bool:
        return self.result == "accept"


@dataclass(frozen=True)
class TraceStep:
    """One iteration of :func:`trace`: the node executed, what it did, and where it sent the robot."""

    node: str
    kind: str
    front: str | None
    action: str
    target: str
    tape_after: str


@dataclass(frozen=True)
class Trace:
    """The full path of one robot (first ``keep`` iterations at most; ``result`` is always complete)."""

    result: RunResult
    steps: tuple[TraceStep, ...]
    final_id: str | None


# -- compilation ------------------------------------------------------------------------------
class _Program:
    """A factory compiled for :func:`run`.

    ``one_step[node][cls]`` = (1 if the node consumes, next node index or terminal code) for each front
    symbol class. ``rows[node]`` maps a front character ("" = empty tape) to the node's macro transition
    ``(nodes executed, symbols painted, 1 if it consumed, next node / terminal / LOOP)``; rows are filled
    lazily from the per-class memo tables ``memo[cls][node]`` the first time a (node, symbol) occurs.
    ``pairs[node]`` does the same for two consecutive consuming macros (keyed by the two front symbols).
    """

    __slots__ = ("names", "paint", "one_step", "start", "rows", "memo", "pairs")

    def __init__(self, names: tuple[str, ...], paint: tuple[str, ...], one_step: tuple[Any, ...], start: int) -> None:
        self.names = names
        self.paint = paint
        self.one_step = one_step
        self.start = start
        self.rows: list[dict[str, tuple[int, str, int, int]]] = [{} for _ in names]
        self.memo: list[list[Any]] = [[None] * len(names) for _ in _CLASSES]
        #: pairs[node][two front characters] = two macros in one (used on long runs)
        self.pairs: list[dict[str, tuple[int, str, int, int]]] = [{} for _ in names]


def compile_factory(factory: Factory) -> _Program:
    """The transition tables of ``factory`` (built once per factory and cached on it)."""
    if factory._compiled:
        return factory._compiled[0]
    names = tuple(factory.nodes)
    index = {name: i for i, name in enumerate(names)}

    def resolve(target: str) -> int:
        if target == "NONE":
            return NONE
        if target == "end":
            return ACCEPT
        return index.get(target, UNKNOWN)

    paint, one_step = [], []
    for name in names:
        node = factory.nodes[name]
        paint.append(PAINT_COLOUR.get(node.kind, ""))
        if node.kind == "START" or node.kind in PAINT_COLOUR:
            nxt = resolve(node.routes[0].target)
            one_step.append(tuple((0, nxt) for _ in _CLASSES))
            continue
        if node.kind == "END":  # unreachable: the id ``end`` is accepted before its node runs
            one_step.append(tuple((0, ACCEPT) for _ in _CLASSES))
            continue
        first: dict[str, int] = {}
        for route in node.routes:
            first.setdefault(route.condition or "", resolve(route.target))
        empty_target = first.get("EMPTY", NONE)
        own = ("R", "B") if node.kind == "PULLER_RB" else ("Y", "G")
        one_step.append(tuple((1, first.get(c, NONE)) if c in own else (0, empty_target) for c in _CLASSES))
    program = _Program(names, tuple(paint), tuple(one_step), index["start"])
    factory._compiled.append(program)
    return program


_LOOP_MACRO = (0, "", 0, LOOP)


def _macro(program: _Program, node: int, front: str) -> tuple[int, str, int, int]:
    """The macro transition of ``node`` with front character ``front`` (memoised; fills ``rows``).

    A macro follows non-consuming nodes until a node consumes, routes to a terminal, or (on an empty
    tape) paints. Nodes that can only cycle without consuming get ``LOOP``. Each (node, class) is
    computed once, so compiling is linear in the program size even for long chains.
    """
    cls = _CLASS_OF.get(front, 5) if front else 0
    memo = program.memo[cls]
    if memo[node] is None:
        one_step, paint = program.one_step, program.paint
        stack: list[int] = []
        on_stack: set[int] = set()
        current = node
        while True:
            if memo[current] is not None:
                tail = memo[current]
                break
            if current in on_stack:
                tail = _LOOP_MACRO
                break
            consumed, nxt = one_step[current][cls]
            if consumed or nxt < 0 or (cls == 0 and paint[current]):
                tail = memo[current] = (1, paint[current], consumed, nxt)
                break
            on_stack.add(current)
            stack.append(current)
            current = nxt
        for current in reversed(stack):
            if tail[3] != LOOP:
                if tail[0] >= MAX_ITERATIONS:  # longer than any run: _run_out steps through it
                    tail = (MAX_ITERATIONS + 1, "", tail[2], tail[3])
                else:
                    tail = (tail[0] + 1, paint[current] + tail[1], tail[2], tail[3])
            memo[current] = tail
    macro = memo[node]
    program.rows[node][front] = macro
    return macro


_NO_PAIR = (0, "", 0, LOOP)


def _pair(program: _Program, node: int, front2: str) -> tuple[int, str, int, int]:
    """Two macros in one when the first consumes ``front2[0]`` and the second sees ``front2[1]``.

    Valid only while at least two symbols are on the tape (painting then never changes the front).
    ``_NO_PAIR`` (zero nodes) when the first macro does not consume or either one ends in a loop.
    """
    first = program.rows[node].get(front2[0]) or _macro(program, node, front2[0])
    pair = _NO_PAIR
    if first[2] and first[3] >= 0:
        second = program.rows[first[3]].get(front2[1]) or _macro(program, first[3], front2[1])
        if second[3] != LOOP:
            pair = (first[0] + second[0], first[1] + second[1], 1 + second[2], second[3])
    program.pairs[node][front2] = pair
    return pair


def _compiled(factory_or_text: Factory | str) -> _Program:
    factory = parse(factory_or_text) if isinstance(factory_or_text, str) else factory_or_text
    if not isinstance(factory, Factory):
        raise TypeError(f"run() needs a Factory or program text, got {type(factory_or_text).__name__}")
    return compile_factory(factory)


# -- fast execution ---------------------------------------------------------------------------
def run(factory_or_text: Factory | str, tape: str) -> RunResult:
    """Run one robot with input ``tape`` through a factory (or program text, parsed first).

    Raises:
        ManufactoriaSyntaxError: when given program text that does not parse.
        TypeError: when ``tape`` is not a string.
    """
    if not isinstance(tape, str):
        raise TypeError(f"a tape must be a str such as 'RBYG', got {type(tape).__name__}")
    factory = factory_or_text
    if type(factory) is not Factory:
        if isinstance(factory, str):
            factory = parse(factory)
        elif not isinstance(factory, Factory):
            raise TypeError(f"run() needs a Factory or program text, got {type(factory).__name__}")
    table = factory.table
    if table is not None:
        if table is UNSET:
            table = factory.table = factory.symbol_table()
        if table is not None:
            result = _run_symbols(table, tape)
            if result is not None:
                return result
            factory.table = None  # runs of this program get long: the compiled engine from now on
    if factory._compiled:
        return _run(factory._compiled[0], tape)
    return _run(compile_factory(factory), tape)


#: The symbol runner takes tapes up to this length ...
_SYMBOL_TAPE_LIMIT = 256
#: ... and hands over once this many nodes have executed (so it never reaches MAX_ITERATIONS).
_SYMBOL_IDLE_LIMIT = 300
_new = tuple.__new__


def _run_symbols(table: dict[str, SymbolEntry], tape: str) -> RunResult | None:
    """A run of a painter-free program on its symbol table; None when the run gets long.

    Each symbol is consumed by the first node on the robot's way that takes its colour; nodes that do
    not take it send the robot on without consuming. A run stays under
    ``_SYMBOL_TAPE_LIMIT + _SYMBOL_IDLE_LIMIT + 1`` (< ``MAX_ITERATIONS``) executed nodes.
    """
    if len(tape) > _SYMBOL_TAPE_LIMIT:
        return None
    get = table.get
    node = "start"
    executed = pos = 0
    for symbol in tape:
        while True:
            entry = get(node)
            if entry is None:
                return _stop(node, tape[pos:], executed + 1)
            executed += 1
            target = entry.get(symbol)
            if target is not None:
                node = target
                break
            if executed > _SYMBOL_IDLE_LIMIT:
                return None
            node = entry["EMPTY"]
        pos += 1
    while True:
        entry = get(node)
        if entry is None:
            return _stop(node, "", executed + 1)
        executed += 1
        if executed > _SYMBOL_IDLE_LIMIT:
            return None
        node = entry["EMPTY"]


def _stop(node: str, tape: str, steps: int) -> RunResult:
    """The result of a robot that reached id ``node``, which is not a node of the symbol table."""
    if node == "end":
        return _new(RunResult, ("accept", tape, steps, None))
    if node == "NONE":
        return _new(RunResult, ("reject", tape, steps, "routed_to_none"))
    return _new(RunResult, ("reject", tape, steps, "unknown_node"))


def _run(program: _Program, tape: str) -> RunResult:
    rows = program.rows
    node = program.start
    executed = pos = 0
    size = len(tape)
    # Plain macro stepping for short runs.
    while executed < _CYCLE_CHECK_AFTER:
        if node < 0:
            return _finish(node, tape[pos:], executed + 1)
        front = tape[pos] if pos < size else ""
        nexec, painted, consumed, nxt = rows[node].get(front) or _macro(program, node, front)
        if nxt == LOOP or executed + nexec > MAX_ITERATIONS:
            return _run_out(program, node, tape[pos:], executed)
        executed += nexec
        if consumed:
            pos += 1
        if painted:
            tape += painted
            size += len(painted)
        node = nxt
    return _run_long(program, node, tape[pos:], executed)


def _run_long(program: _Program, node: int, tape: str, executed: int) -> RunResult:
    """Continue a long run two macros at a time, detecting a repeated (node, tape) state (Brent).

    The step function (a pair of macros when two symbols are on the tape, else one) depends only on
    the state, so a repeated state means the run cycles until the limit: whole cycles are skipped.
    """
    rows, pairs = program.rows, program.pairs
    pos, size = 0, len(tape)
    power, lam = 1, 0
    mark_node, mark_tape, mark_exec = node, tape, executed
    detect = True
    while True:
        if executed >= MAX_ITERATIONS:
            return RunResult("reject", tape[pos:], MAX_ITERATIONS, "max_iterations")
        if node < 0:
            return _finish(node, tape[pos:], executed + 1)
        if pos + 1 < size:
            front = tape[pos : pos + 2]
            nexec, painted, consumed, nxt = pairs[node].get(front) or _pair(program, node, front)
            if not nexec:
                front = front[0]
                nexec, painted, consumed, nxt = rows[node].get(front) or _macro(program, node, front)
        else:
            front = tape[pos] if pos < size else ""
            nexec, painted, consumed, nxt = rows[node].get(front) or _macro(program, node, front)
        if nxt == LOOP or executed + nexec > MAX_ITERATIONS:
            return _run_out(program, node, tape[pos:], executed)
        executed += nexec
        pos += consumed
        if painted:
            tape += painted
            size += len(painted)
        node = nxt
        if pos > 256:
            tape, size, pos = tape[pos:], size - pos, 0
        if not detect:
            continue
        if node == mark_node and size - pos == len(mark_tape) and tape[pos:] == mark_tape:
            # The state repeats every (executed - mark_exec) nodes: skip whole cycles, keep the tape.
            period = executed - mark_exec
            executed += (MAX_ITERATIONS - executed) // period * period
            detect = False
            continue
        lam += 1
        if lam == power:
            mark_node, mark_tape, mark_exec = node, tape[pos:], executed
            power *= 2
            lam = 0


def _finish(code: int, tape: str, steps: int) -> RunResult:
    if code == ACCEPT:
        return RunResult("accept", tape, steps, None)
    return RunResult("reject", tape, steps, _TERMINAL_REJECTION[code])


def _run_out(program: _Program, node: int, tape: str, executed: int) -> RunResult:
    """Finish a run node by node from ``node``: used when the limit falls inside a macro or a loop.

    While nothing is consumed and the front symbol class is unchanged, the node sequence is periodic;
    whole periods are skipped at once (appending what one period paints), so this costs at most a few
    periods of single steps.
    """
    one_step, paint = program.one_step, program.paint
    seen: dict[int, tuple[int, int]] = {}
    front = _CLASS_OF.get(tape[0], 5) if tape else 0
    while executed < MAX_ITERATIONS:
        if node < 0:
            return _finish(node, tape, executed + 1)
        cls = _CLASS_OF.get(tape[0], 5) if tape else 0
        if cls != front:
            seen.clear()
            front = cls
        if node in seen:
            then, size = seen[node]
            period = executed - then
            turns = (MAX_ITERATIONS - executed) // period
            tape += tape[size:] * turns
            executed += turns * period
            seen.clear()
            if executed >= MAX_ITERATIONS:
                break
        seen[node] = (executed, len(tape))
        consumed, nxt = one_step[node][cls]
        if consumed:
            tape = tape[1:]
            seen.clear()
        elif paint[node]:
            tape += paint[node]
        executed += 1
        node = nxt
    return RunResult("reject", tape, MAX_ITERATIONS, "max_iterations")


# -- step-by-step execution with a path -----------------------------------------------------------


def trace(factory_or_text: Factory | str, tape: str, *, keep: int = MAX_ITERATIONS) -> Trace:
    """Run one robot one node at a time, recording up to ``keep`` executed steps.

    This is the literal interpreter (no shortcuts); :func:`run` must always agree with it.
    """
    if not isinstance(tape, str):
        raise TypeError(f"a tape must be a str such as 'RBYG', got {type(tape).__name__}")
    factory = parse(factory_or_text) if isinstance(factory_or_text, str) else factory_or_text
    program = _compiled(factory)
    names, paint, one_step = program.names, program.paint, program.one_step
    kinds = tuple(factory.nodes[name].kind for name in names)
    steps: list[TraceStep] = []
    node, executed = program.start, 0
    while executed < MAX_ITERATIONS:
        if node < 0:
            return Trace(_finish(node, tape, executed + 1), tuple(steps), _target_name(program, node))
        front = tape[0] if tape else None
        consumed, nxt = one_step[node][_CLASS_OF.get(front, 5) if front else 0]
        if consumed:
            tape = tape[1:]
        elif paint[node]:
            tape += paint[node]
        executed += 1
        if len(steps) < keep:
            if consumed:
                action = f"pulled {front}"
            elif paint[node]:
                action = f"painted {paint[node]}"
            elif kinds[node].startswith("PULLER"):
                action = "tape empty" if front is None else f"front {front} left on tape"
            else:
                action = "start"
            steps.append(TraceStep(names[node], kinds[node], front, action, _target_name(program, nxt), tape))
        node = nxt
    return Trace(RunResult("reject", tape, MAX_ITERATIONS, "max_iterations"), tuple(steps), None)


def _target_name(program: _Program, code: int) -> str:
    if code >= 0:
        return program.names[code]
    return {ACCEPT: "end", NONE: "NONE"}.get(code, "END")
