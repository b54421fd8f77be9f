"""Concise: prune the playbook (paper Appendix D; official behaviour in docs/official-defaults.md §5).

Owns the two removal strategies and the trigger rule; it mutates a :class:`Playbook` and returns what
it removed, with the reason. It draws randomness only from the ``random.Random`` it is given, so the
updater's checkpointed RNG makes pruning reproducible.

Categories (see :attr:`PlaybookEntry.category`): unused (never tagged), harmful (harmful >= helpful and
harmful > 0, ties count as harmful), helpful (otherwise).

- ``prioritized``: remove every unused and every harmful entry. If the budget is enforced and the
  helpful entries still exceed it, keep a uniformly random subset of budget size.
- ``staleness``: remove every harmful entry and every *stale* unused entry, stale meaning
  ``update - last_used > 1`` (an unused entry gets one more update to be tagged). If the budget is
  enforced and the survivors still exceed it, evict the ones with the oldest ``last_used`` first;
  ties are broken by a random shuffle done before a stable sort.

Triggers, evaluated at the start of each update (index ``update``, 0-based): the frequency trigger
fires when ``frequency > 0`` and ``update > 0`` and ``update % frequency == 0``; the limit trigger fires
when the playbook holds more than ``budget`` entries. The budget is enforced only when the limit
trigger fired. After curation, a second concise with the budget enforced runs when the playbook
exceeds the budget (``concise_after_curation``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .playbook import Playbook, PlaybookEntry


@dataclass
class Removal:
    """One removed entry. ``reason`` is ``"concise:<method>"`` for category pruning, ``"budget"`` for
    evictions that enforce the size cap; ``category`` is the entry's category at removal time
    ("harmful", "unused", "stale" or "budget")."""

    entry: PlaybookEntry
    reason: str
    category: str


@dataclass
class ConciseTrigger:
    """Which triggers fired at the start of an update."""

    frequency: bool
    limit: bool

    @property
    def fired(self) -> bool:
        return self.frequency or self.limit


def check_triggers(playbook: Playbook, *, update: int, frequency: int, budget: int) -> ConciseTrigger:
    """Evaluate the two Appendix D triggers for the update with index ``update``."""
    freq = frequency > 0 and update > 0 and update % frequency == 0
    return ConciseTrigger(frequency=freq, limit=len(playbook) > budget)


def concise(
    playbook: Playbook,
    *,
    method: str,
    update: int,
    budget: int | None,
    rng: random.Random,
) -> list[Removal]:
    """Prune ``playbook`` in place and return the removals (in removal order).

    ``budget=None`` prunes by category only; an integer also enforces the cap as described in the
    module docstring.
    """
    if method == "prioritized":
        removals = _prioritized(playbook, budget, rng)
    elif method == "staleness":
        removals = _staleness(playbook, update, budget, rng)
    else:
        raise ValueError(f"unknown concise method {method!r}; use 'staleness' or 'prioritized'")
    for removal in removals:
        playbook.remove(removal.entry.id)
    return removals


def _prioritized(playbook: Playbook, budget: int | None, rng: random.Random) -> list[Removal]:
    reason = "concise:prioritized"
    removals = [Removal(e, reason, e.category) for e in playbook.entries if e.category != "helpful"]
    helpful = [e for e in playbook.entries if e.category == "helpful"]
    if budget is not None and len(helpful) > budget:
        keep = {e.id for e in rng.sample(helpful, budget)}
        removals += [Removal(e, "budget", "budget") for e in helpful if e.id not in keep]
    return removals


def _staleness(playbook: Playbook, update: int, budget: int | None, rng: random.Random) -> list[Removal]:
    reason = "concise:staleness"
    removals: list[Removal] = []
    survivors: list[PlaybookEntry] = []
    for e in playbook.entries:
        if e.category == "harmful":
            removals.append(Removal(e, reason, "harmful"))
        elif e.category == "unused" and update - e.last_used > 1:
            removals.append(Removal(e, reason, "stale"))
        else:
            survivors.append(e)
    if budget is not None and len(survivors) > budget:
        order = list(survivors)
        rng.shuffle(order)
        order.sort(key=lambda e: e.last_used)  # stable: the shuffle breaks ties randomly
        removals += [Removal(e, "budget", "budget") for e in order[: len(survivors) - budget]]
    return removals
