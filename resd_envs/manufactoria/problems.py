"""The 874 'has' problems: parameters, predicates, the train/test split, and seeded test cases.

Parameters are enumerated systematically (colours ordered R, B, Y, G), exactly as DELTA's generator
does at the 'easy' level:

* ``contains_count`` (194): 1, 2 or 3 distinct colours with counts >= 1 and total <= 6;
* ``contains_ordered`` (340) and ``contains_substring`` (340): every pattern of length 1..4.

The split reproduces DELTA's ensemble step: ``random.Random(42)`` permutes each family's list with
``sample`` (in the order count, ordered, substring), the concatenation is shuffled, the first 742 are
train and the last 132 test. Test cases follow DELTA's constructions, but every problem draws from
its own RNG seeded by ``sha256(TEST_SEED + task_id)``, so the set is identical on every machine.
Each tape is labelled by the predicate, never by the construction's intent.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from resd_envs.errors import ConfigError

COLOURS = "RBYG"
COLOUR_NAMES = {"R": "red", "B": "blue", "Y": "yellow", "G": "green"}
FAMILIES: tuple[str, ...] = ("contains_count", "contains_ordered", "contains_substring")
#: DELTA's ensemble seed and train fraction (int(874 * 0.85) = 742 train problems).
SPLIT_SEED = 42
TRAIN_FRACTION = 0.85
#: Seed string of the per-problem test-case RNGs; changing it changes the task set (bump the version).
TEST_SEED = "resd/Manufactoria-Has-v0/tests"
MAX_TESTS = 35
MIN_EACH_KIND = 3


@dataclass(frozen=True)
class Problem:
    """One 'has' problem: its family and parameters, in the split file's JSON form."""

    family: str
    params: dict[str, Any]

    @property
    def task_id(self) -> str:
        if self.family == "contains_count":
            return "has-count-" + "-".join(f"{c}{k}" for c, k in self.params["requirements"])
        kind = "ordered" if self.family == "contains_ordered" else "substring"
        return f"has-{kind}-{self.params['sequence']}"

    def accepts(self, tape: str) -> bool:
        """The predicate: whether a correct factory accepts ``tape``."""
        return predicate(self.family, self.params)(tape)


# -- parameters and split --------------------------------------------------------------------
def count_requirements() -> list[list[list[Any]]]:
    """The 194 requirement lists of ``contains_count``, in generator order."""
    out: list[list[list[Any]]] = []
    for size in (1, 2, 3):
        for colours in itertools.combinations(COLOURS, size):
            for counts in itertools.product(range(1, 7), repeat=size):
                if sum(counts) <= 6:
                    out.append([[c, k] for c, k in zip(colours, counts)])
    return out


def sequences() -> list[str]:
    """The 340 patterns of length 1..4 over RBYG in product order (R < B < Y < G)."""
    return ["".join(p) for n in range(1, 5) for p in itertools.product(COLOURS, repeat=n)]


def all_problems() -> list[Problem]:
    """Every problem in generator order: count, ordered, substring."""
    problems = [Problem("contains_count", {"requirements": r}) for r in count_requirements()]
    problems += [Problem("contains_ordered", {"sequence": s}) for s in sequences()]
    problems += [Problem("contains_substring", {"sequence": s}) for s in sequences()]
    return problems


@cache
def split_problems() -> dict[str, tuple[Problem, ...]]:
    """DELTA's train/test split (742/132), in DELTA's order."""
    rng = random.Random(SPLIT_SEED)
    ordered: list[Problem] = []
    problems = all_problems()
    for family in FAMILIES:
        group = [p for p in problems if p.family == family]
        ordered += rng.sample(group, len(group))
    rng.shuffle(ordered)
    cut = int(len(ordered) * TRAIN_FRACTION)
    return {"train": tuple(ordered[:cut]), "test": tuple(ordered[cut:])}


# -- predicates and text ---------------------------------------------------------------------
def is_subsequence(pattern: str, tape: str) -> bool:
    """Whether ``pattern`` occurs in ``tape`` in order, not necessarily consecutively."""
    it = iter(tape)
    return all(symbol in it for symbol in pattern)


def predicate(family: str, params: dict[str, Any]) -> Callable[[str], bool]:
    """The accept/reject rule of a problem.

    Raises:
        ConfigError: an unknown family.
    """
    if family not in FAMILIES:
        raise ConfigError(f"unknown Manufactoria family {family!r}; expected one of {', '.join(FAMILIES)}")
    if family == "contains_count":
        needs = [(c, int(k)) for c, k in params["requirements"]]
        return lambda tape: all(tape.count(c) >= k for c, k in needs)
    pattern = params["sequence"]
    if family == "contains_ordered":
        return lambda tape: is_subsequence(pattern, tape)
    return lambda tape: pattern in tape


def label_reason(family: str, params: dict[str, Any], tape: str) -> str:
    """Why the predicate accepts or rejects ``tape``, in a few words (for feedback)."""
    if family == "contains_count":
        parts = [f"{tape.count(c)} {c} (needs {k})" for c, k in params["requirements"]]
        return "it has " + _join(parts)
    seq = params["sequence"]
    if family == "contains_ordered":
        matched = 0
        for symbol in tape:
            if matched < len(seq) and symbol == seq[matched]:
                matched += 1
        if matched == len(seq):
            return f"{', '.join(seq)} appear in this order"
        return f"only '{seq[:matched]}' of '{seq}' appears in order" if matched else f"no {seq[0]} at all"
    where = tape.find(seq)
    return f"'{seq}' starts at symbol {where + 1}" if where >= 0 else f"'{seq}' never appears as a block"


def _amount(colour: str, k: int) -> str:
    return f"{k} {COLOUR_NAMES[colour]} ({colour})"


def title(problem: Problem) -> str:
    """A short human name, e.g. ``At least 1 R, 3 Y and 1 G``."""
    if problem.family == "contains_count":
        parts = [f"{k} {c}" for c, k in problem.params["requirements"]]
        return "At least " + _join(parts)
    seq = problem.params["sequence"]
    return f"{seq} in order" if problem.family == "contains_ordered" else f"Contains {seq}"


def criteria(problem: Problem) -> str:
    """The task sentence shown to the model."""
    if problem.family == "contains_count":
        parts = [_amount(c, k) for c, k in problem.params["requirements"]]
        return (
            f"Accept a robot exactly when its tape holds at least {_join(parts)} symbols, in any order "
            "and with any other symbols mixed in; reject every other robot."
        )
    seq = problem.params["sequence"]
    if problem.family == "contains_ordered":
        return (
            f"Accept a robot exactly when the symbols {' '.join(seq)} appear on its tape in this order, "
            f"not necessarily next to each other (other symbols may sit between them), i.e. '{seq}' is a "
            "subsequence of the tape; reject every other robot."
        )
    return (
        f"Accept a robot exactly when its tape contains '{seq}' as a consecutive block (a substring); "
        "reject every other robot."
    )


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# -- test cases ------------------------------------------------------------------------------
def problem_rng(task_id: str) -> random.Random:
    """The problem's own RNG: seeded from sha256, never from Python's salted ``hash``."""
    digest = hashlib.sha256(f"{TEST_SEED}/{task_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def build_tests(problem: Problem) -> list[dict[str, Any]]:
    """The problem's test tapes, each labelled ``accept`` by the predicate (at most 35)."""
    rng = problem_rng(problem.task_id)
    tapes = ["", "R", "RB"]
    corner_pool = ["", *COLOURS, *("".join(p) for p in itertools.product(COLOURS, repeat=2))]
    tapes += [rng.choice(corner_pool) for _ in range(5)]
    tapes += ["RB", "BR", "RBR", "BRB", "RRB", "BBR", ""]
    if problem.family == "contains_count":
        tapes += _count_tapes(rng, [(c, int(k)) for c, k in problem.params["requirements"]])
    elif problem.family == "contains_ordered":
        tapes += _ordered_tapes(rng, problem.params["sequence"])
    else:
        tapes += _substring_tapes(rng, problem.params["sequence"])
    tapes = list(dict.fromkeys(tapes))
    accepts = problem.accepts
    labels = [accepts(t) for t in tapes]
    for wanted in (True, False):
        tries = 0
        while labels.count(wanted) < MIN_EACH_KIND and tries < 50:
            tape = _rnd(rng, rng.randint(1, 2 + tries // 10))
            tries += 1
            if tape not in tapes and accepts(tape) == wanted:
                tapes.append(tape)
                labels.append(wanted)
    return [{"tape": t, "accept": a} for t, a in zip(tapes[:MAX_TESTS], labels[:MAX_TESTS])]


def _rnd(rng: random.Random, n: int, alphabet: str = COLOURS) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _shuffled(rng: random.Random, symbols: str) -> str:
    chars = list(symbols)
    rng.shuffle(chars)
    return "".join(chars)


def _count_tapes(rng: random.Random, needs: list[tuple[str, int]]) -> list[str]:
    required = "".join(c for c, _ in needs)
    others = "".join(c for c in COLOURS if c not in required)
    exact = "".join(c * k for c, k in needs)
    first, k_first = needs[0]
    out = [
        _shuffled(rng, exact),
        _shuffled(rng, exact + "".join(c * rng.randint(1, 2) for c, _ in needs)),
        _shuffled(rng, exact + _rnd(rng, 3, others)),
    ]
    padded = "".join(c * (k + rng.randint(0, 2)) for c, k in needs)
    out.append(_shuffled(rng, padded + _rnd(rng, max(0, 12 - len(padded)))))
    filler = "".join(rng.choice(required) if rng.random() < 0.6 else rng.choice(others) for _ in range(18 - len(exact)))
    out.append(_shuffled(rng, exact + filler))
    out.append(_shuffled(rng, "".join(c * k for c, k in needs[:-1]) + _rnd(rng, 5, others)))
    short_first = first * (k_first - 1) + "".join(c * k for c, k in needs[1:])
    if k_first > 1:
        out.append(_shuffled(rng, short_first + _rnd(rng, 3, others)))
    out.append(_rnd(rng, 12, others))
    all_short = "".join(c * (k - 1) for c, k in needs)
    out.append(_shuffled(rng, all_short + _rnd(rng, rng.randint(5, 7), others)))
    out.append(_shuffled(rng, short_first + _rnd(rng, max(0, 18 - len(short_first)))))
    return out


def _without(seq: str, index: int) -> str:
    return seq[:index] + seq[index + 1:]


def _ordered_tapes(rng: random.Random, seq: str) -> list[str]:
    n, mid = len(seq), len(seq) // 2
    out = [seq]
    out += [seq[:i] + _rnd(rng, 1) + seq[i:] for i in range(1, n)]
    out.append("".join(c + _rnd(rng, 1) for c in seq[:-1]) + seq[-1])
    out.append(seq + _rnd(rng, 3))
    out.append(_rnd(rng, 6) + seq)
    spaced = "".join(c + _rnd(rng, rng.randint(1, 3)) for c in seq[:-1]) + seq[-1]
    out.append(_rnd(rng, rng.randint(2, 4)) + spaced + _rnd(rng, rng.randint(2, 4)))
    out.append(seq[:mid] + _rnd(rng, 2) + seq)
    if n > 1:
        out += [seq[1:], seq[:-1], _without(seq, mid)]
    pad = _rnd(rng, rng.randint(2, 5))
    out.append(pad + seq[::-1] + pad)
    pad = _rnd(rng, 3)
    out.append(pad + seq[1:] + seq[:1] + pad)
    if n > 1:
        pad = _rnd(rng, 9)
        out.append(pad + _without(seq, n - 2) + pad)
    absent = "".join(c for c in COLOURS if c not in seq)
    if absent:
        out.append(_rnd(rng, 12, absent))
    if n > 1:
        pad = _rnd(rng, 18)
        out.append(pad + _without(seq, mid) + pad)
    return out


def _substring_tapes(rng: random.Random, seq: str) -> list[str]:
    n, mid = len(seq), len(seq) // 2
    out = [
        seq,
        seq + _rnd(rng, 3),
        _rnd(rng, 6) + seq,
        _rnd(rng, rng.randint(1, 3)) + seq + _rnd(rng, rng.randint(1, 3)),
        seq + _rnd(rng, rng.randint(1, 3)) + seq,
        _rnd(rng, rng.randint(3, 5)) + seq + _rnd(rng, rng.randint(3, 5)),
    ]
    if len(set(seq)) < n:
        out.append(seq + seq[1:])
    out.append("".join(c + _rnd(rng, 1) for c in seq[:-1]) + seq[-1])
    for i in range(1, n):
        pad = _rnd(rng, rng.randint(3, 6))
        out.append(pad + seq[:i] + pad)
    pad = _rnd(rng, rng.randint(2, 5))
    out.append(pad + seq[::-1] + pad)
    twisted = seq[::-1] if seq[::-1] != seq or n < 2 else seq[1] + seq[0] + seq[2:]
    out.append(_rnd(rng, 3) + twisted + _rnd(rng, 3))
    out.append(seq[:mid] + _rnd(rng, 1) + seq[mid:])
    absent = "".join(c for c in COLOURS if c not in seq)
    if absent:
        out.append(_rnd(rng, 12, absent))
    if n > 1:
        inner = seq[:mid] + _rnd(rng, 1) + seq[mid:] if mid else seq[:1] + _rnd(rng, 1) + seq[1:]
        out.append(_rnd(rng, 3) + inner + _rnd(rng, 3))
    out.append(_rnd(rng, 2) + "".join(c + _rnd(rng, 1) for c in seq[:-1]) + seq[-1] + _rnd(rng, 2))
    return out
