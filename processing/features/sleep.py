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

4. **Webster rescoring** (Webster et al. 1982, as adopted by Cole et al.
   1992), applied to the raw scoring, every rule on the original minutes:
   (a) after >= 4 wake minutes the first sleep minute, (b) after >= 10 the
   first 3, (c) after >= 15 the first 4 become wake; (d) a stretch of <= 6
   minutes between two wake runs of >= 10 minutes and (e) one of <= 10
   between wake runs of >= 20 minutes becomes wake.
5. **Sadeh** (Sadeh et al. 1994, 1-min epochs): PS_t = 7.601
   - 0.065 MEAN_t - 1.08 NAT_t - 0.056 SD_t - 0.703 ln(A_t + 1), MEAN =
   mean count over t-5..t+5, NAT = #minutes in t-5..t+5 with 50 <= A < 100,
   SD = sample SD over t-5..t; asleep if PS_t >= 0.
6. **Within a sleep period** (onset, offset): total sleep time TST = minutes
   scored asleep inside it, WASO = scored wake minutes after the first and
   before the last asleep minute (minutes without data count as neither).

References: Cole RJ, Kripke DF, Gruen W, Mullaney DJ, Gillin JC (1992) Sleep
15:461-469. Webster JB, Kripke DF, Messin S, Mullaney DJ, Wyborney G (1982)
Sleep 5:389-399. Sadeh A, Sharkey KM, Carskadon MA (1994) Sleep 17:201-207.
Phillips AJK et al. (2017) Sci Rep 7:3216.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._types import NAN, FloatArray

CK_WEIGHTS = np.array([404.0, 598.0, 326.0, 441.0, 1408.0, 508.0, 350.0])  # t-4 .. t+2
CK_SCALE = 1e-5
#: Cole et al. 1992's 1-min model on *mean* activity per minute (P = 0.001);
#: pyActigraphy's ``CK(settings="mean")`` uses it on minute sums / 30.
CK_MEAN_WEIGHTS = np.array([106.0, 54.0, 58.0, 76.0, 230.0, 74.0, 67.0])
CK_MEAN_SCALE = 0.001
#: Webster rules (a)-(c): (wake minutes before, sleep minutes rescored).
WEBSTER_PRECEDED = ((4, 1), (10, 3), (15, 4))
#: Webster rules (d)-(e): (longest sleep stretch, wake minutes on both sides).
WEBSTER_SURROUNDED = ((6, 10), (10, 20))
SADEH_OFFSET = 7.601
SADEH_WEIGHTS = (-0.065, -1.08, -0.056, -0.703)  # MEAN, NAT, SD, ln(A + 1)
MAX_WAKE_GAP = 30
MIN_PERIOD = 60
HR_WAKE_MARGIN_BPM = 15.0
SRI_MIN_PAIRS = 1440  # at least one full day of valid 24-h pairs


def sleep_wake(
    counts: FloatArray,
    *,
    scale: float = CK_SCALE,
    weights: FloatArray = CK_WEIGHTS,
    hr_bpm: FloatArray | None = None,
    hr_wake_margin_bpm: float = HR_WAKE_MARGIN_BPM,
) -> FloatArray:
    """Cole-Kripke sleep (1.0) / wake (0.0) per minute; NaN where no data.

    ``weights`` are for minutes t-4 .. t+2; minutes outside the series count
    as 0 (pyActigraphy leaves the first and last 4 minutes unscored instead).
    """
    c = np.asarray(counts, dtype=np.float64)
    n = c.size
    if n == 0:
        return np.zeros(0)
    ok = np.isfinite(c)
    pad = np.concatenate([np.zeros(4), np.where(ok, c, 0.0), np.zeros(2)])
    okp = np.concatenate([np.zeros(4, bool), ok, np.zeros(2, bool)])
    d = np.zeros(n)
    seen = np.zeros(n, dtype=bool)
    for i, wgt in enumerate(np.asarray(weights, dtype=np.float64)):  # lag -4..+2
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


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of ``mask``."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def webster_rescore(state: FloatArray) -> FloatArray:
    """Webster's rescoring of a sleep (1) / wake (0) minute series (NaN kept).

    Every rule reads the original scoring and can only turn sleep into wake,
    so the order of the rules does not matter. A NaN minute ends a run.
    pyActigraphy (``rescore``) agrees except for rules (b)/(c) on sleep runs
    shorter than the 3 or 4 minutes: it leaves such a run alone, this
    function rescores the whole run.
    """
    s = np.asarray(state, dtype=np.float64)
    out = s.copy()
    wake_start, wake_end = _runs(s == 0.0)
    sleep_start, sleep_end = _runs(s == 1.0)
    wake_len_ending_at = dict(zip(wake_end.tolist(), (wake_end - wake_start).tolist(), strict=True))
    for a, b in zip(sleep_start.tolist(), sleep_end.tolist(), strict=True):
        before = wake_len_ending_at.get(a, 0)
        for need, n in WEBSTER_PRECEDED:
            if before >= need:
                out[a : min(a + n, b)] = 0.0
    for longest, need in WEBSTER_SURROUNDED:
        long_start = wake_start[wake_end - wake_start >= need]
        long_end = wake_end[wake_end - wake_start >= need]
        for e, a in zip(long_end[:-1].tolist(), long_start[1:].tolist(), strict=True):
            if a - e <= longest and np.all(np.isfinite(s[e:a])):
                out[e:a] = 0.0
    return out


def cole_kripke_webster(
    counts: FloatArray, *, scale: float = CK_SCALE, weights: FloatArray = CK_WEIGHTS
) -> FloatArray:
    """Cole-Kripke scoring of minute counts, then Webster's rescoring."""
    return webster_rescore(sleep_wake(counts, scale=scale, weights=weights))


def sadeh(counts: FloatArray) -> FloatArray:
    """Sadeh et al. 1994 sleep (1.0) / wake (0.0) per minute of counts.

    Windows are cut at the ends of the series (the mean and NAT over the
    minutes that exist, SD over >= 2 minutes); a minute whose count or window
    has no valid value is NaN. Differences from pyActigraphy's ``Sadeh``:
    it counts 50 < A < 100 in NAT, takes ln(A + 1) of the *next* minute,
    scores PS > 0 as sleep and leaves minutes without a full window unscored.
    """
    a = np.asarray(counts, dtype=np.float64)
    n = a.size
    if n == 0:
        return np.zeros(0)
    ok = np.isfinite(a)
    x = np.where(ok, a, 0.0)
    csum = np.concatenate(([0.0], np.cumsum(x)))
    csq = np.concatenate(([0.0], np.cumsum(x * x)))
    ccnt = np.concatenate(([0], np.cumsum(ok)))
    cnat = np.concatenate(([0], np.cumsum(ok & (a >= 50) & (a < 100))))
    i = np.arange(n)
    lo11, hi11 = np.maximum(i - 5, 0), np.minimum(i + 6, n)
    cnt11 = ccnt[hi11] - ccnt[lo11]
    lo6 = np.maximum(i - 5, 0)
    cnt6 = ccnt[i + 1] - ccnt[lo6]
    s6 = csum[i + 1] - csum[lo6]
    q6 = csq[i + 1] - csq[lo6]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean11 = (csum[hi11] - csum[lo11]) / cnt11
        var6 = (q6 - s6 * s6 / cnt6) / (cnt6 - 1)
        sd6 = np.sqrt(np.maximum(var6, 0.0))
        lg = np.log(x + 1.0)
    nat = (cnat[hi11] - cnat[lo11]).astype(np.float64)
    w_mean, w_nat, w_sd, w_lg = SADEH_WEIGHTS
    ps = SADEH_OFFSET + w_mean * mean11 + w_nat * nat + w_sd * sd6 + w_lg * lg
    valid = ok & (cnt11 > 0) & (cnt6 >= 2)
    return np.where(valid, np.where(ps >= 0.0, 1.0, 0.0), np.nan)


@dataclass(frozen=True, slots=True)
class PeriodSleep:
    tst_min: float  # minutes scored asleep inside the period
    waso_min: float  # scored wake minutes between the first and last asleep minute


def tst_waso(state: FloatArray, onset: int, offset: int) -> PeriodSleep:
    """TST and WASO (min) of the minutes ``onset`` .. ``offset - 1`` of ``state``."""
    s = np.asarray(state, dtype=np.float64)[max(onset, 0) : max(offset, 0)]
    asleep = np.flatnonzero(s == 1.0)
    if asleep.size == 0:
        return PeriodSleep(0.0, NAN)
    inner = s[asleep[0] : asleep[-1] + 1]
    return PeriodSleep(float(asleep.size), float(np.count_nonzero(inner == 0.0)))
