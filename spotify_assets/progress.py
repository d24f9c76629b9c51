"""Progress lines for long command-line work (seeding at scale, fetching jars)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints `label done/total (pct)` on one terminal line, at most a few times a second."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, stream=None) -> None:
        self.label, self.total, self.enabled = label, max(total, 1), enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self._last = 0.0
        self._start = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.25 or self.done >= self.total):
            self._last = now
            pct = 100 * self.done / self.total
            self.stream.write(f"\r  {self.label}: {self.done:,}/{self.total:,} ({pct:.0f}%)")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self._start
            self.stream.write(f"\r  {self.label}: {self.done:,} rows in {elapsed:.1f} s\n")
            self.stream.flush()
