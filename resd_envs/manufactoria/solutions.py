"""Built-in reference solutions: a correct factory for every 'has' problem, built from a DFA.

Each problem's language is recognised by a small deterministic automaton over R, B, Y, G:

* ``contains_count``: a counter automaton; the state is the tuple of counts seen so far, each capped
  at its requirement;
* ``contains_ordered``: a subsequence automaton; the state is how much of the pattern is matched;
* ``contains_substring``: a KMP automaton; the state is the longest pattern prefix ending here.

The accepting state is absorbing in all three, so the factory routes to ``end`` as soon as it is
reached. Every other state becomes two nodes: a ``PULLER_RB`` that reads R/B and hands Y, G and the
empty tape to its ``[EMPTY]`` branch, and a ``PULLER_YG`` that reads Y/G and rejects on an empty tape.
A robot therefore spends at most two iterations per symbol (far below the 1000-iteration limit for
the test tapes, which have at most 39 symbols).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from typing import Any

from resd_envs.errors import ConfigError
from resd_envs.manufactoria.problems import COLOURS, Problem

State = Hashable


def dfa(problem: Problem) -> tuple[list[State], State, Callable[[State], bool], Callable[[State, str], State]]:
    """(states, initial state, is_accepting, step) of the problem's automaton."""
    if problem.family == "contains_count":
        needs = [(c, int(k)) for c, k in problem.params["requirements"]]
        states: list[State] = list(itertools.product(*(range(k + 1) for _, k in needs)))

        def count_step(state: State, symbol: str) -> State:
            return tuple(min(k, n + (symbol == c)) for (c, k), n in zip(needs, state))  # type: ignore[union-attr]

        return states, states[0], lambda s: all(n == k for (_, k), n in zip(needs, s)), count_step  # type: ignore[arg-type]
    seq = problem.params["sequence"]
    m = len(seq)
    if problem.family == "contains_ordered":
        return list(range(m + 1)), 0, lambda s: s == m, lambda s, c: s + 1 if s < m and seq[s] == c else s
    if problem.family == "contains_substring":
        table = _kmp_table(seq)
        return list(range(m + 1)), 0, lambda s: s == m, lambda s, c: m if s == m else table[s][c]
    raise ConfigError(f"no reference solution for family {problem.family!r}; expected a 'has' family")


def _kmp_table(seq: str) -> list[dict[str, int]]:
    """delta[i][c] = length of the longest prefix of seq that is a suffix of seq[:i] + c (i < len(seq))."""
    table = []
    for i in range(len(seq)):
        row = {}
        for c in COLOURS:
            text = seq[:i] + c
            k = min(len(text), len(seq))
            while k and not text.endswith(seq[:k]):
                k -= 1
            row[c] = k
        table.append(row)
    return table


def solution_program(problem: Problem) -> str:
    """Program text of a correct factory for ``problem``."""
    states, initial, accepting, step = dfa(problem)
    live = [s for s in states if not accepting(s)]
    names = {s: f"s{i}" for i, s in enumerate(live)}

    def target(state: State, symbol: str) -> str:
        nxt = step(state, symbol)
        return "end" if accepting(nxt) else names[nxt]

    lines = ["START start:", f"    NEXT {names[initial]}", ""]
    for state in live:
        name = names[state]
        lines += [
            f"PULLER_RB {name}:",
            f"    [R] {target(state, 'R')}",
            f"    [B] {target(state, 'B')}",
            f"    [EMPTY] {name}_yg",
            "",
            f"PULLER_YG {name}_yg:",
            f"    [Y] {target(state, 'Y')}",
            f"    [G] {target(state, 'G')}",
            "    [EMPTY] NONE",
            "",
        ]
    lines.append("END end")
    return "\n".join(lines)


_APPROACH = {
    "contains_count": "count each required colour (capped at what is needed) in a grid of states",
    "contains_ordered": "track how much of the pattern has been seen in order, skipping other symbols",
    "contains_substring": "track the longest prefix of the pattern that ends at the current symbol (KMP)",
}


def reference_response(problem: Problem, task: dict[str, Any] | None = None) -> str:
    """A full model-style response: a short plan, then the program in a ```manufactoria fence."""
    program = solution_program(problem)
    states = program.count("PULLER_RB ")
    return (
        f"Plan: read the tape one symbol at a time and {_APPROACH[problem.family]}. Each state is a "
        f"PULLER_RB that hands Y, G and the empty tape to a PULLER_YG; {states} states are needed. As soon "
        "as the condition holds the robot is routed to end; an exhausted tape before that goes to NONE.\n\n"
        f"```manufactoria\n{program}\n```\n"
    )
