"""Which feature windows must be (re)computed, and when: pure bookkeeping, no I/O.

A *unit* is one participant's HRV window (``hrv``, fixed length, aligned to
the Unix epoch) or one local calendar day (``daily``). After raw points that
fall in a unit are durably written, the unit is marked dirty. It becomes due
when either

* the participant's data time (the newest sample time this worker wrote for
  them) has passed the unit's end plus ``settle_s``: the window is complete
  unless data arrives late, or
* nothing re-marked it for ``idle_s`` seconds of real time: the participant
  stopped sending (strap off, gateway offline, end of a replay).

A unit that is marked again after it was computed (late or out-of-order data)
becomes dirty again and is recomputed from everything stored by then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

NS = 1_000_000_000


@dataclass(frozen=True, slots=True, order=True)
class Unit:
    """One self-contained unit of feature work."""

    kind: str  # "hrv" or "daily"
    participant: str
    start_ns: int
    end_ns: int


@dataclass(slots=True)
class _Mark:
    marked_at: float  # monotonic seconds of the last mark


class DayCalendar:
    """Local-day boundaries in one IANA time zone (23/25-hour DST days included)."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self._bounds = lru_cache(maxsize=4096)(self._bounds_uncached)

    def _bounds_uncached(self, day: dt.date) -> tuple[int, int]:
        start = dt.datetime.combine(day, dt.time(), self.tz)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), self.tz)
        return int(start.timestamp()) * NS, int(end.timestamp()) * NS

    def day_of(self, ts_ns: int) -> tuple[int, int]:
        """(start_ns, end_ns) of the local day containing ``ts_ns``."""
        day = dt.datetime.fromtimestamp(ts_ns // NS, self.tz).date()
        return self._bounds(day)


class DirtyUnits:
    """Dirty units and the per-participant data time that makes them due.

    Args:
        window_s: HRV window length (divides a day).
        settle_s: how long past a unit's end data may still be arriving.
        idle_s: real seconds without a new mark after which a unit is due anyway.
        calendar: local-day boundaries for daily units.
        monotonic: the clock (injected for tests).
    """

    def __init__(
        self,
        *,
        window_s: int,
        settle_s: float,
        idle_s: float,
        calendar: DayCalendar,
        monotonic: Callable[[], float],
    ) -> None:
        self.window_ns = window_s * NS
        self.settle_ns = int(settle_s * NS)
        self.idle_s = idle_s
        self.calendar = calendar
        self.monotonic = monotonic
        self._dirty: dict[Unit, _Mark] = {}
        self._data_time: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._dirty)

    def window_of(self, participant: str, ts_ns: int) -> Unit:
        start = ts_ns - ts_ns % self.window_ns
        return Unit("hrv", participant, start, start + self.window_ns)

    def day_of(self, participant: str, ts_ns: int) -> Unit:
        start, end = self.calendar.day_of(ts_ns)
        return Unit("daily", participant, start, end)

    def mark(
        self, participant: str, beat_times_ns: Iterable[int], sample_times_ns: Iterable[int]
    ) -> None:
        """Written data: RR beats (HRV windows and days) and other samples (days)."""
        now = self.monotonic()
        newest = self._data_time.get(participant, 0)
        seen: set[Unit] = set()
        for t in beat_times_ns:
            seen.add(self.window_of(participant, t))
            newest = max(newest, t)
        last_day: Unit | None = None
        for t in sample_times_ns:
            if last_day is None or not last_day.start_ns <= t < last_day.end_ns:
                last_day = self.day_of(participant, t)
                seen.add(last_day)
            newest = max(newest, t)
        for unit in seen:
            self._dirty[unit] = _Mark(now)
        self._data_time[participant] = newest

    def due(self, limit: int | None = None) -> list[Unit]:
        """Units to compute now (removed from the dirty set).

        HRV windows come first and days after them (a day reads its windows'
        results), each in (participant, start) order, so a day follows the
        days before it (its baseline reads them).
        """
        now = self.monotonic()
        ready = []
        for unit, mark in self._dirty.items():
            complete = self._data_time.get(unit.participant, 0) >= unit.end_ns + self.settle_ns
            if complete or now - mark.marked_at >= self.idle_s:
                ready.append(unit)
        ready.sort(key=_order)
        if limit is not None:
            ready = ready[:limit]
        for unit in ready:
            del self._dirty[unit]
        return ready

    def remark(self, unit: Unit) -> None:
        """Put a unit back (its computation failed or its input changed meanwhile)."""
        self._dirty[unit] = _Mark(self.monotonic())

    def drain(self) -> list[Unit]:
        """Every dirty unit, regardless of due time (used at shutdown), in :meth:`due` order."""
        units = sorted(self._dirty, key=_order)
        self._dirty.clear()
        return units


def _order(unit: Unit) -> tuple[bool, str, int]:
    return unit.kind != "hrv", unit.participant, unit.start_ns
