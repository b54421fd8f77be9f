"""A dependency-free progress bar for the CLI (written to stderr, silent when not a terminal unless forced)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Minimal ``[####....] 40/100 12.3/s`` progress line, redrawn at most ten times a second."""

    def __init__(self, total: int, label: str = "", *, stream: TextIO | None = None, enabled: bool | None = None):
        self.total = max(0, total)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.count = 0
        self._start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.1 or self.count >= self.total):
            self._last_draw = now
            self._draw(now)

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        width = 30
        done = int(width * self.count / self.total) if self.total else width
        rate = self.count / max(now - self._start, 1e-9)
        bar = "#" * done + "." * (width - done)
        self.stream.write(f"\r{self.label} [{bar}] {self.count}/{self.total} {rate:.1f}/s")
        self.stream.flush()
