"""A dependency-free progress bar on stderr.

On a terminal it redraws one line (``\\r``); otherwise (a log file, CI) it
prints a plain line at every 10 % so logs stay short. Labels carry
pseudonyms and dates only.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``update(label, rows)`` after each unit of work; ``close()`` at the end."""

    def __init__(
        self, total: int, *, title: str, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.total = max(total, 1)
        self.title = title
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.done = 0
        self.rows = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1
        self._started = time.monotonic()

    def update(self, label: str, rows: int = 0) -> None:
        self.done += 1
        self.rows += rows
        if not self.enabled:
            return
        pct = 100 * self.done // self.total
        width = 24
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        text = (
            f"{self.title} {pct:3d}% [{bar}] {self.done}/{self.total} "
            f"{label} {self.rows:,} rows {time.monotonic() - self._started:.0f}s"
        )
        if self._tty:
            self.stream.write("\r" + text[:160].ljust(100))
        elif pct // 10 != self._last_decile:
            self._last_decile = pct // 10
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
