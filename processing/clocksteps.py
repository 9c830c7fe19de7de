"""Gateway clock steps back: where one device's beats repeat a stretch of time.

When a gateway's clock is set back (NTP correcting an hour, a wrong RTC
fixed), its beat clock breaks and goes on from the new time, so the beats of
the next hour land among beats already stored for that hour: a window
computed there would mix two hours of RR. The beat clock keeps one device's
beat times increasing otherwise (collector/beats.py), so a newer message
whose beats go back by more than :data:`TOLERANCE_NS` is a step back.

:class:`StepDetector` finds them at ingest; processing stores each as a
``clock_step`` point (start = the first beat after the step, ``until_ns`` =
the latest beat before it: the stretch that now holds beats of two
timelines), and the feature job flags every HRV window overlapping such a
stretch ``clock_step`` and leaves its features undefined rather than mixing
the timelines (docs/processing.md).

The detector's memory is per worker and per process: a step that falls
across a restart, or between messages handled by two workers of a shared
subscription, is not seen (docs/processing.md, "Limits").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

#: A beat earlier than the device's latest by more than this is a step back
#: (v1 messages place beats at the arrival time: latency jitter is far smaller).
TOLERANCE_NS: Final = 2_000_000_000


@dataclass(frozen=True, slots=True)
class Step:
    start_ns: int  # the first beat after the step
    until_ns: int  # the latest beat before it


@dataclass
class StepDetector:
    """Per device (and outbox epoch): the newest message's seq and latest beat."""

    _last: dict[tuple[str, str | None], tuple[int, int]] = field(default_factory=dict)

    def see(
        self, device: str, epoch: str | None, seq: int, beat_times_ns: Iterable[int]
    ) -> list[Step]:
        """Steps back in this message's beats (in sample order); older messages are skipped."""
        key = (device, epoch)
        previous = self._last.get(key)
        if previous is not None and seq <= previous[0]:
            return []  # a late or repeated message: its beats are older anyway
        latest = None if previous is None else previous[1]
        steps = []
        for t in beat_times_ns:
            if latest is not None and t < latest - TOLERANCE_NS:
                steps.append(Step(t, latest))
                latest = t  # follow the new timeline
            elif latest is None or t > latest:
                latest = t
        if latest is not None:
            self._last[key] = (seq, latest)
        return steps
