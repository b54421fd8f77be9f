"""A process-wide bound on live sandboxes, shared by every caller (threads and asyncio alike).

Every launch holds one slot from start to clean-up, so how a caller batches its submissions
(one ``verify`` of 24, or 24 concurrent ``averify`` calls) cannot change how many sandboxes
compete for the cores, and so cannot change whether an honest submission meets its time limits.
Waiting for a slot costs no budget: a submission's clocks start once its child is up.

Size: the number of usable cores, or ``RESD_SANDBOX_MAX_LIVE`` (a positive integer).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from resd_envs.errors import ConfigError

ENV_VAR = "RESD_SANDBOX_MAX_LIVE"
_LOCK = threading.Lock()
_SLOTS: threading.BoundedSemaphore | None = None
_SIZE = 0


def slot_count() -> int:
    """How many sandboxes may be live at once in this process."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{ENV_VAR} must be a positive integer, got {raw!r}")
        return value
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)


def _semaphore() -> threading.BoundedSemaphore:
    global _SLOTS, _SIZE
    with _LOCK:
        if _SLOTS is None:
            _SIZE = slot_count()
            _SLOTS = threading.BoundedSemaphore(_SIZE)
        return _SLOTS


@contextmanager
def sandbox_slot() -> Iterator[None]:
    """Hold one live-sandbox slot for the duration of the block (blocks while none is free)."""
    slots = _semaphore()
    slots.acquire()
    try:
        yield
    finally:
        slots.release()


def slots_in_use() -> tuple[int, int]:
    """``(in use, size)`` of the process-wide bound (for tests and ``sandbox_info``)."""
    slots = _semaphore()
    return _SIZE - slots._value, _SIZE  # noqa: SLF001 - BoundedSemaphore has no public counter
