"""Main rest period of a night from heart rate and steps (straps without an accelerometer).

Input: one noon-to-noon stretch of minutes (the night ending on the morning
of the day), ``hr_bpm`` = mean HR of the minute's valid samples (NaN = not
worn / no sample) and ``steps`` = steps in the minute (NaN = no activity
sample; a strap sends steps only while the wearer walks or runs, so NaN
steps are read as "no steps reported", not as missing data).

1. h_t = centred running median of the minute HR over 31 min (NaN when
   fewer than half of its minutes have HR).
2. rest threshold T = P10(h) + 0.5 x (P50(h) - P10(h)) over the stretch (bpm):
   halfway between the night's low HR and the stretch's median. The
   percentiles need waking hours in the stretch: with fewer than 16 h of h_t
   there is no period.
3. A minute is *at rest* if h_t <= T and no step was reported in t-2 .. t+2.
4. Rest minutes separated by at most 30 non-rest or missing minutes are
   merged; the longest merged run is the rest period if it lasts 3 to 12 h,
   starts and ends at least 30 min inside the stretch, and the 30 minutes
   before its onset and after its offset each hold >= 15 minutes with HR (a
   period cut by a data gap is not reported: its onset or offset is unknown).
5. Inside the period: rest minutes = TST, non-rest minutes with HR between
   the first and the last rest minute = WASO (missing minutes count as
   neither).

**Validity.** This is a heuristic built on two well-documented facts (HR
falls during sleep, the nocturnal HR dip; no steps are taken lying down).
It is *not* validated against polysomnography or actigraphy. It detects sustained low-HR rest, so
quiet wakefulness in bed counts as rest and restless sleep with HR surges
can be cut; its TST/WASO are not PSG sleep measures. Sleep detection from
HR alone has been studied (e.g. HR + motion in consumer devices; de Zambotti
et al. 2019, Med Sci Sports Exerc 51:1538 review them against PSG), but those
algorithms use motion, which this strap does not have.

References: this project (heuristic, thresholds above); van Hees et al. 2018,
Sci Rep 8:12975 (the 3-12 h bound and block merging mirror HDCZA's);
de Zambotti M et al. (2019) Med Sci Sports Exerc 51:1538-1557.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._types import NAN, FloatArray

SMOOTH_MIN = 31
LOW_PERCENTILE = 10.0
REST_FRACTION = 0.5
STEP_GUARD_MIN = 2
MERGE_GAP_MIN = 30
MIN_COVERAGE_MIN = 16 * 60
MIN_REST_MIN = 180
MAX_REST_MIN = 720
EDGE_MIN = 30
EDGE_MIN_VALID = 15


@dataclass(frozen=True, slots=True)
class RestPeriod:
    onset: int  # minute index of the first rest minute
    offset: int  # minute index after the last rest minute
    tst_min: float
    waso_min: float
    threshold_bpm: float


def smoothed_hr(hr_bpm: FloatArray, width: int = SMOOTH_MIN) -> FloatArray:
    """Centred running median of the minute HR (NaN with < half the window valid)."""
    hr = np.asarray(hr_bpm, dtype=np.float64)
    n = hr.size
    if n < width:
        return np.full(n, np.nan)
    win = np.lib.stride_tricks.sliding_window_view(hr, width)
    valid = np.isfinite(win).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        med = np.nanmedian(win, axis=1)
    med = np.where(valid * 2 >= width, med, np.nan)
    out = np.full(n, np.nan)
    out[width // 2 : width // 2 + med.size] = med
    return out


def rest_minutes(hr_bpm: FloatArray, steps: FloatArray) -> tuple[FloatArray, float]:
    """Per minute 1.0 at rest, 0.0 not, NaN without smoothed HR; and the threshold T."""
    h = smoothed_hr(hr_bpm)
    ok = np.isfinite(h)
    if ok.sum() < MIN_COVERAGE_MIN:
        return np.full(h.size, np.nan), NAN
    p10, p50 = np.percentile(h[ok], [LOW_PERCENTILE, 50.0])
    threshold = float(p10 + REST_FRACTION * (p50 - p10))
    s = np.asarray(steps, dtype=np.float64)
    moved = np.where(np.isfinite(s), s, 0.0) > 0
    w = 2 * STEP_GUARD_MIN + 1
    near = np.convolve(moved.astype(np.float64), np.ones(w), mode="same") > 0
    with np.errstate(invalid="ignore"):
        rest = (h <= threshold) & ~near
    return np.where(ok, rest.astype(np.float64), np.nan), threshold


def rest_period(hr_bpm: FloatArray, steps: FloatArray) -> RestPeriod | None:
    """The main rest period of a noon-to-noon minute stretch, or None (see module doc)."""
    hr = np.asarray(hr_bpm, dtype=np.float64)
    state, threshold = rest_minutes(hr, steps)
    at_rest = state == 1.0
    if not at_rest.any():
        return None
    d = np.diff(np.concatenate(([0], at_rest.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    split = np.concatenate(([True], starts[1:] - ends[:-1] > MERGE_GAP_MIN))
    groups = np.cumsum(split) - 1
    g_start = starts[split]
    g_end = np.zeros(g_start.size, dtype=np.int64)
    np.maximum.at(g_end, groups, ends)
    i = int(np.argmax(g_end - g_start))
    a, b = int(g_start[i]), int(g_end[i])
    if not MIN_REST_MIN <= b - a <= MAX_REST_MIN:
        return None
    if a < EDGE_MIN or b > hr.size - EDGE_MIN:
        return None
    has_hr = np.isfinite(hr)
    if has_hr[a - EDGE_MIN : a].sum() < EDGE_MIN_VALID or has_hr[b : b + EDGE_MIN].sum() < (
        EDGE_MIN_VALID
    ):
        return None
    inner = state[a:b]
    return RestPeriod(
        onset=a,
        offset=b,
        tst_min=float(np.count_nonzero(inner == 1.0)),
        waso_min=float(np.count_nonzero(inner == 0.0)),
        threshold_bpm=threshold,
    )
