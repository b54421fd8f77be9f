"""Hidden robustness tapes of Manufactoria-Has: a second, seeded test set that measures the rule.

DELTA's ~18-35 test tapes per problem are fixed and sit in the task rows, so a factory can memorise
them (a prefix tree of pullers that accepts exactly the accepted test tapes scores 1.0 without
implementing the rule). The hidden set is a second set of at least :data:`MIN_HIDDEN` tapes per
problem, drawn from the problem's own RNG (seeded by ``sha256(HIDDEN_SEED/task_id)``, so identical
on every machine), labelled by the predicate and disjoint from the task's test tapes. It mixes:

* witnesses built from the rule (the required symbols, the pattern in order with gaps, the block
  with random context);
* random tapes of length 0-14;
* near-misses: single-symbol edits (substitute, delete, insert) of those tapes, kept with priority
  when the edit flips the label, i.e. tapes on the rule's boundary.

The hidden tapes never appear in task rows, prompts or feedback (not even privileged feedback):
only counts are reported (``info["extra"]["hidden_*"]``). :func:`example_tapes` draws a third,
separate stream used by the policy feedback to show a counterexample that is in neither set.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Collection
from functools import lru_cache

from resd_envs.manufactoria.problems import COLOURS, Problem, predicate

#: Seed string of the hidden tapes; changing it changes every hidden set.
HIDDEN_SEED = "resd/Manufactoria-Has-v0/hidden"
#: Seed string of the counterexample candidates shown in policy feedback.
EXAMPLE_SEED = "resd/Manufactoria-Has-v0/examples"
#: Hidden tapes per problem, of which at least MIN_EACH accepted and MIN_EACH rejected, and at least
#: MIN_NEAR_MISSES single-symbol edits that flip the label of the tape they were made from.
MIN_HIDDEN = 120
MIN_EACH = 40
MIN_NEAR_MISSES = 30
#: Generation rounds before giving up on the quotas (never reached for the 874 problems).
_MAX_ROUNDS = 2000


def hidden_rng(task_id: str) -> random.Random:
    """The RNG of a problem's hidden tapes."""
    return _rng(HIDDEN_SEED, task_id)


def _rng(seed: str, task_id: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}/{task_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _random_tape(rng: random.Random, n: int, alphabet: str = COLOURS) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _witness(rng: random.Random, problem: Problem) -> str:
    """A tape built to satisfy the rule, with random padding (labelled later by the predicate)."""
    if problem.family == "contains_count":
        symbols = list("".join(c * int(k) for c, k in problem.params["requirements"]))
        symbols += list(_random_tape(rng, rng.randint(0, 4)))
        rng.shuffle(symbols)
        return "".join(symbols)
    seq = str(problem.params["sequence"])
    if problem.family == "contains_ordered":
        return "".join(_random_tape(rng, rng.randint(0, 2)) + c for c in seq) + _random_tape(rng, rng.randint(0, 2))
    return _random_tape(rng, rng.randint(0, 5)) + seq + _random_tape(rng, rng.randint(0, 5))


def _edit(rng: random.Random, tape: str) -> str:
    """One random single-symbol substitution, deletion or insertion of ``tape``."""
    kind = rng.randrange(3) if tape else 2
    if kind == 2:
        at = rng.randint(0, len(tape))
        return tape[:at] + rng.choice(COLOURS) + tape[at:]
    at = rng.randrange(len(tape))
    if kind == 1:
        return tape[:at] + tape[at + 1:]
    return tape[:at] + rng.choice(COLOURS.replace(tape[at], "")) + tape[at + 1:]


def draw(
    rng: random.Random, problem: Problem, exclude: Collection[str], accepts: Callable[[str], bool]
) -> tuple[tuple[tuple[str, bool], ...], int]:
    """Draw the hidden ``(tape, accept)`` pairs; also return how many are label-flipping edits."""
    chosen: dict[str, bool] = {}
    near = 0
    for round_ in range(_MAX_ROUNDS):
        accepted = sum(chosen.values())
        rejected = len(chosen) - accepted
        if len(chosen) >= MIN_HIDDEN and min(accepted, rejected) >= MIN_EACH and near >= MIN_NEAR_MISSES:
            break
        base = _witness(rng, problem) if round_ % 2 == 0 else _random_tape(rng, rng.randint(0, 14))
        base_label = accepts(base)
        candidates = [(base, False)] + [(edited, True) for edited in (_edit(rng, base) for _ in range(3))]
        for tape, is_edit in candidates:
            if tape in exclude or tape in chosen:
                continue
            label = accepts(tape)
            flipped = is_edit and label != base_label
            needed = (accepted if label else rejected) < MIN_EACH or len(chosen) < MIN_HIDDEN
            if flipped or needed:
                chosen[tape] = label
                near += flipped
                accepted, rejected = accepted + label, rejected + (not label)
    return tuple(chosen.items()), near


def hidden_tests(problem: Problem, exclude: frozenset[str]) -> tuple[tuple[str, bool], ...]:
    """The problem's hidden ``(tape, accept)`` pairs, none of them in ``exclude`` (the test tapes)."""
    return _hidden(problem.family, json.dumps(problem.params, sort_keys=True), exclude)


def example_tapes(problem: Problem, exclude: frozenset[str]) -> tuple[tuple[str, bool], ...]:
    """Counterexample candidates for feedback, shortest first; in neither ``exclude`` nor the hidden set.

    ``exclude`` should be the task's test tapes; the hidden tapes are removed here.
    """
    return _examples(problem.family, json.dumps(problem.params, sort_keys=True), exclude)


@lru_cache(maxsize=1024)
def _hidden(family: str, params: str, exclude: frozenset[str]) -> tuple[tuple[str, bool], ...]:
    problem = Problem(family, json.loads(params))
    tests, _ = draw(hidden_rng(problem.task_id), problem, exclude, predicate(problem.family, problem.params))
    return tests


@lru_cache(maxsize=1024)
def _examples(family: str, params: str, exclude: frozenset[str]) -> tuple[tuple[str, bool], ...]:
    problem = Problem(family, json.loads(params))
    hidden = {tape for tape, _ in _hidden(family, params, exclude)}
    accepts = predicate(problem.family, problem.params)
    rng = _rng(EXAMPLE_SEED, problem.task_id)
    pool = {_witness(rng, problem) for _ in range(40)} | {_random_tape(rng, rng.randint(0, 10)) for _ in range(40)}
    pool |= {_edit(rng, tape) for tape in sorted(pool)}
    pool |= {_random_tape(rng, n) for n in range(4) for _ in range(12)}
    keep = sorted((t for t in pool if t not in exclude and t not in hidden), key=lambda t: (len(t), t))
    return tuple((tape, accepts(tape)) for tape in keep)
