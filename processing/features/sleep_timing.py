"""Sleep timing and regularity over a week: midpoint variability, social jet lag, SRI.

Sleep periods are given per night, keyed by the date of the morning the
night ends on, with clock times in hours from that morning's local midnight
(23:30 the evening before = -0.5; range -12..12, so nights that cross
midnight need no circular statistics).

* midpoint m = (onset_h + offset_h) / 2.
* ``sleep_midpoint_sd_h`` = sample SD (ddof=1) of m over the nights of the
  window (at least ``min_nights``).
* ``social_jetlag_h`` = |MSF - MSW| (Wittmann et al. 2006): MSF = mean
  midpoint of the nights before free days (mornings on Saturday or Sunday,
  local calendar), MSW = mean midpoint of the nights before workdays
  (mornings Monday-Friday); needs >= 1 night of each. A study that knows
  participants' real work days should pass them instead.
* ``sri`` (Phillips et al. 2017): sleep state per minute, 1 inside a sleep
  period, 0 in a minute with data outside all periods, NaN without data;
  SRI = -100 + 200 x (#pairs 24 h apart in the same state) / (#pairs with
  both valid), see :func:`processing.features.sleep.sleep_regularity_index`.

References: Wittmann M, Dinich J, Merrow M, Roenneberg T (2006) Chronobiol
Int 23:497-509. Phillips AJK, Clerx WM, O'Brien CS, et al. (2017) Sci Rep
7:3216.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np

from ._types import NAN, FloatArray
from .sleep import sleep_regularity_index

MIN_NIGHTS = 4
SRI_MIN_PAIRS = 3 * 1440  # at least three days of valid minute pairs
FREE_WEEKDAYS = frozenset({5, 6})  # mornings on Saturday and Sunday (date.weekday())


def midpoint_sd_h(midpoints_h: Mapping[dt.date, float], *, min_nights: int = MIN_NIGHTS) -> float:
    """Sample SD (h) of the sleep midpoints; NaN with fewer than ``min_nights`` nights."""
    m = np.array([v for v in midpoints_h.values() if np.isfinite(v)], dtype=np.float64)
    return float(np.std(m, ddof=1)) if m.size >= max(min_nights, 2) else NAN


def social_jetlag_h(
    midpoints_h: Mapping[dt.date, float], *, free_weekdays: frozenset[int] = FREE_WEEKDAYS
) -> float:
    """|mean midpoint before free days - mean midpoint before workdays| (h)."""
    nights = [(d.weekday() in free_weekdays, v) for d, v in midpoints_h.items() if np.isfinite(v)]
    free = [v for is_free, v in nights if is_free]
    work = [v for is_free, v in nights if not is_free]
    if not free or not work:
        return NAN
    return float(abs(np.mean(free) - np.mean(work)))


def sleep_state(valid: np.ndarray, periods: list[tuple[int, int]]) -> FloatArray:
    """Minute sleep state: 1 in a period [a, b), 0 with data outside, NaN without data."""
    ok = np.asarray(valid, dtype=bool)
    state = np.zeros(ok.size)
    for a, b in periods:
        state[max(a, 0) : max(b, 0)] = 1.0
    return np.where(ok | (state == 1.0), state, np.nan)


def sri_from_periods(
    valid: np.ndarray, periods: list[tuple[int, int]], *, min_pairs: int = SRI_MIN_PAIRS
) -> float:
    """SRI of a minute grid with data mask ``valid`` and sleep periods (minute indices)."""
    return sleep_regularity_index(sleep_state(valid, periods), min_pairs=min_pairs)
