"""The export's progress bar: tqdm on stderr, with rate and ETA (wellsense_cli.conventions).

``total`` may be set after construction (the export knows its plan only once
it has asked InfluxDB for the data's extent); the bar starts at the first
``update``. Labels carry pseudonyms and dates only.
"""

from __future__ import annotations

import sys
from typing import TextIO

from wellsense_cli.conventions import Bar, progress


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
        self._bar: Bar | None = None

    def update(self, label: str, rows: int = 0) -> None:
        self.done += 1
        self.rows += rows
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = progress(
                self.total, desc=self.title, enabled=True, unit="chunk", stream=self.stream
            )
        self._bar.set_postfix_str(f"{label} {self.rows:,} rows", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
