"""Sleep proxy from minute activity (and HR when present), and the Sleep Regularity Index.

1. **Sleep/wake per minute** (Cole et al. 1992, 1-min epochs):
   D_t = P * (404 A_{t-4} + 598 A_{t-3} + 326 A_{t-2} + 441 A_{t-1}
   + 1408 A_t + 508 A_{t+1} + 350 A_{t+2}); asleep if D_t < 1.
   P = 1e-5 by default; it is device-specific (counts differ between
   actigraphs), so treat the default as an assumption and calibrate it.
   Minutes whose 7-minute neighbourhood has no valid count are NaN. When a
   heart rate per minute is given, a "sleep" minute whose HR exceeds the
   day's resting level by more than ``hr_wake_margin_bpm`` is scored awake.
2. **Sleep periods:** sleep bouts separated by at most ``max_wake_gap`` wake
   minutes are merged; per sleep day (noon to noon, so a night is one day)
   the longest merged period of at least ``min_period`` minutes is the main
   sleep period: onset, offset, time in bed (offset - onset), minutes asleep
   inside it and efficiency (asleep / in bed).
3. **Sleep Regularity Index** (Phillips et al. 2017): with s_t = 1 asleep,
   0 awake (main or other periods, minute resolution),
   SRI = -100 + 200 * (#t: s_t = s_{t+1440}) / (#t: both valid); 100 = the
   same state at every clock minute every day, 0 = random.

References: Cole RJ, Kripke DF, Gruen W, Mullaney DJ, Gillin JC (1992) Sleep
15:461-469. Phillips AJK et al. (2017) Sci Rep 7:3216.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._types import NAN, FloatArray

CK_WEIGHTS = np.array([404.0, 598.0, 326.0, 441.0, 1408.0, 508.0, 350.0])  # t-4 .. t+2
CK_SCALE = 1e-5
MAX_WAKE_GAP = 30
MIN_PERIOD = 60
HR_WAKE_MARGIN_BPM = 15.0
SRI_MIN_PAIRS = 1440  # at least one full day of valid 24-h pairs


def sleep_wake(
    counts: FloatArray,
    *,
    scale: float = CK_SCALE,
    hr_bpm: FloatArray | None = None,
    hr_wake_margin_bpm: float = HR_WAKE_MARGIN_BPM,
) -> FloatArray:
    """Cole-Kripke sleep (1.0) / wake (0.0) per minute; NaN where no data."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.size
    if n == 0:
        return np.zeros(0)
    ok = np.isfinite(c)
    pad = np.concatenate([np.zeros(4), np.where(ok, c, 0.0), np.zeros(2)])
    okp = np.concatenate([np.zeros(4, bool), ok, np.zeros(2, bool)])
    d = np.zeros(n)
    seen = np.zeros(n, dtype=bool)
    for i, wgt in enumerate(CK_WEIGHTS):  # lag -4..+2
        d += wgt * pad[i : i + n]
        seen |= okp[i : i + n]
    state = np.where(scale * d < 1.0, 1.0, 0.0)
    if hr_bpm is not None:
        hr = np.asarray(hr_bpm, dtype=np.float64)
        if np.any(np.isfinite(hr)):
            rest = np.nanpercentile(hr, 10)
            with np.errstate(invalid="ignore"):
                state[(state == 1.0) & (hr > rest + hr_wake_margin_bpm)] = 0.0
    return np.where(seen & ok, state, np.nan)


@dataclass(frozen=True, slots=True)
class SleepPeriod:
    onset: np.datetime64
    offset: np.datetime64  # first minute after the period
    in_bed_min: float
    asleep_min: float

    @property
    def efficiency(self) -> float:
        return self.asleep_min / self.in_bed_min if self.in_bed_min > 0 else NAN


def sleep_periods(
    minute: np.ndarray,
    state: FloatArray,
    *,
    max_wake_gap: int = MAX_WAKE_GAP,
    min_period: int = MIN_PERIOD,
) -> list[SleepPeriod]:
    """All merged sleep periods of at least ``min_period`` minutes, in time order.

    ``minute`` must be a regular minute grid (see ``activity.regular_minutes``).
    """
    m = np.asarray(minute, dtype="datetime64[m]")
    s = np.asarray(state, dtype=np.float64)
    asleep = s == 1.0
    if not asleep.any():
        return []
    d = np.diff(np.concatenate(([0], asleep.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    gaps = starts[1:] - ends[:-1]
    # merge bouts whose wake gap is short (missing minutes count as gap too)
    split = np.concatenate(([True], gaps > max_wake_gap))
    group = np.cumsum(split) - 1
    g_start = starts[split]
    g_end = np.zeros(g_start.size, dtype=np.int64)
    np.maximum.at(g_end, group, ends)
    csum = np.concatenate(([0], np.cumsum(asleep)))
    out = []
    for a, b in zip(g_start, g_end, strict=True):
        if b - a >= min_period:
            out.append(
                SleepPeriod(
                    m[a], m[b - 1] + np.timedelta64(1, "m"), float(b - a), float(csum[b] - csum[a])
                )
            )
    return out


def main_sleep_by_day(periods: list[SleepPeriod]) -> dict[np.datetime64, SleepPeriod]:
    """Longest period per sleep day; a sleep day runs noon to noon and is named
    after the calendar date of its evening (onset - 12 h)."""
    best: dict[np.datetime64, SleepPeriod] = {}
    for p in periods:
        day = (p.onset - np.timedelta64(12, "h")).astype("datetime64[D]")
        if day not in best or p.in_bed_min > best[day].in_bed_min:
            best[day] = p
    return best


def sleep_state_minutes(
    minute: np.ndarray, state: FloatArray, periods: list[SleepPeriod]
) -> FloatArray:
    """1.0 inside a sleep period, 0.0 outside, NaN where ``state`` is NaN."""
    m = np.asarray(minute, dtype="datetime64[m]")
    out = np.zeros(m.size)
    for p in periods:
        out[(m >= p.onset) & (m < p.offset)] = 1.0
    return np.where(np.isfinite(np.asarray(state, dtype=np.float64)), out, np.nan)


def sleep_regularity_index(state: FloatArray, *, min_pairs: int = SRI_MIN_PAIRS) -> float:
    """SRI of a regular minute sleep-state series (1 asleep, 0 awake, NaN missing)."""
    s = np.asarray(state, dtype=np.float64)
    if s.size <= 1440:
        return NAN
    a, b = s[:-1440], s[1440:]
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < min_pairs:
        return NAN
    same = int(np.count_nonzero(a[ok] == b[ok]))
    return -100.0 + 200.0 * same / n
