"""A synthetic strap week with known sleep: HR and steps per minute, for daily tests.

Nights before workdays: asleep 23:00-07:00; nights before Saturday and Sunday
mornings: 00:30-09:00 (midpoints 3.0 and 4.75 h, social jet lag 1.75 h).
Asleep: HR 54 +- 1.5 bpm, no steps. Awake: HR 72 + 6 sin(...) +- 4 bpm,
steps 60-110/min in a fifth of the minutes, and a brisk walk at 115 steps/min
17:00-17:30 every day (peak-30 cadence 115). One sample per minute.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

NS = 1_000_000_000
WALK_STEPS = 115.0


@dataclass(frozen=True, slots=True)
class Week:
    t_ns: np.ndarray  # minute starts, UTC ns
    local_s: np.ndarray  # local wall-clock seconds
    hr_bpm: np.ndarray
    steps: np.ndarray
    sleep: dict[dt.date, tuple[float, float]]  # morning date -> (onset_h, offset_h)


def night_hours(morning: dt.date) -> tuple[float, float]:
    """(onset, offset) in hours from the morning's local midnight."""
    return (0.5, 9.0) if morning.weekday() in (5, 6) else (-1.0, 7.0)


def week(first: dt.date, days: int, tz: str, seed: int = 5) -> Week:
    """Minutes from local noon of the day before ``first`` to the end of the last day."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(12), zone)
    n = (days * 24 + 12) * 60
    t_ns = int(start.timestamp()) * NS + np.arange(n, dtype=np.int64) * 60 * NS
    offset_s = start.utcoffset().total_seconds()  # type: ignore[union-attr]
    local_s = t_ns / NS + offset_s
    rng = np.random.default_rng(seed)
    clock_h = (local_s % 86_400) / 3600.0
    hr = 72 + 6 * np.sin(2 * np.pi * (clock_h - 10) / 24) + 4 * rng.standard_normal(n)
    steps = np.where(rng.random(n) < 0.2, rng.integers(60, 111, n), 0).astype(float)
    asleep = np.zeros(n, dtype=bool)
    sleep: dict[dt.date, tuple[float, float]] = {}
    for k in range(days):
        morning = first + dt.timedelta(days=k)
        on_h, off_h = night_hours(morning)
        midnight = (morning - dt.date(1970, 1, 1)).days * 86_400
        asleep |= (local_s >= midnight + on_h * 3600) & (local_s < midnight + off_h * 3600)
        sleep[morning] = (on_h, off_h)
    hr[asleep] = 54 + 1.5 * rng.standard_normal(int(asleep.sum()))
    steps[asleep] = 0.0
    walk = (clock_h >= 17.0) & (clock_h < 17.5)
    steps[walk] = WALK_STEPS
    return Week(t_ns, local_s, hr, steps, sleep)
