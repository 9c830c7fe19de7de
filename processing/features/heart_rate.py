"""Heart-rate features: nocturnal resting HR, daily HR summary, HR during sleep.

Input is heart rate at times: ``t_s`` = local seconds since the epoch (UTC
epoch seconds plus the participant's UTC offset, so that clock hours and
calendar days are local) and ``hr_bpm``. From a chest strap use
:func:`hr_from_rr`, which converts cleaned NN intervals (HR = 60000 / NN).

* **Nocturnal resting HR**: HR is averaged in consecutive ``window_s`` (5 min)
  bins that start inside the night (``night_start_h`` .. ``night_end_h``, or
  inside given rest periods). A bin is *stable* if at least ``min_coverage``
  of its ``slot_s`` (1 min) slots hold a sample and the SD of HR in it is at
  most ``max_sd_bpm``. Resting HR = the lowest stable bin mean of the night,
  which belongs to the calendar date on which the night ends. Coverage is
  counted per slot, so it is the same for beat-level HR (one sample per beat,
  fewer at a low night HR) and for 1 Hz HR of the same physiology.
* **Daily HR**: mean, 5th, 50th and 95th percentile per calendar day.
* **HR during sleep**: mean HR over the samples inside the given periods.

The "lowest stable 5-min mean at night" definition is this project's; the
percentile and mean summaries follow the Task Force of the ESC/NASPE (1996)
Circulation 93:1043-1065 conventions for NN-derived heart rate.
"""

from __future__ import annotations

import numpy as np

from ._types import NAN, FloatArray, as_float_array
from .rr_clean import clean_rr

WINDOW_S = 300.0
NIGHT_START_H = 0.0
NIGHT_END_H = 6.0
MIN_COVERAGE = 0.8
SLOT_S = 60.0  # a slot with >= 1 sample is covered (the service's worn-minute definition)
MAX_SD_BPM = 5.0
MIN_SAMPLES_PER_DAY = 60
DAY_S = 86_400.0


def hr_from_rr(t_s: np.ndarray, rr_ms: np.ndarray) -> tuple[FloatArray, FloatArray]:
    """Beat times and instantaneous HR (bpm) of the cleaned NN intervals."""
    clean = clean_rr(as_float_array(rr_ms), as_float_array(t_s))
    return clean.t_s, 60_000.0 / clean.rr_ms


def resting_hr_by_night(
    t_s: np.ndarray,
    hr_bpm: np.ndarray,
    *,
    window_s: float = WINDOW_S,
    night_start_h: float = NIGHT_START_H,
    night_end_h: float = NIGHT_END_H,
    rest_periods_s: list[tuple[float, float]] | None = None,
    min_coverage: float = MIN_COVERAGE,
    max_sd_bpm: float = MAX_SD_BPM,
    slot_s: float = SLOT_S,
) -> dict[np.datetime64, float]:
    """Lowest stable ``window_s`` HR mean per night, keyed by the morning's date.

    With ``rest_periods_s`` (local-second (start, end) pairs, e.g. sleep
    periods) only bins inside them count; otherwise the night hours do.
    Nights without a stable bin are NaN. ``window_s`` must be a multiple of
    ``slot_s``; a bin's coverage is its share of slots holding a sample.
    """
    slots_per_bin = round(window_s / slot_s)
    if slots_per_bin < 1 or not np.isclose(slots_per_bin * slot_s, window_s):
        raise ValueError(f"window_s={window_s} is not a multiple of slot_s={slot_s}")
    t = as_float_array(t_s)
    hr = as_float_array(hr_bpm)
    ok = np.isfinite(t) & np.isfinite(hr)
    t, hr = t[ok], hr[ok]
    if t.size == 0:
        return {}
    order = np.argsort(t, kind="stable")
    t, hr = t[order], hr[order]
    slot = np.floor(t / slot_s).astype(np.int64)
    bins = slot // slots_per_bin
    uniq, idx = np.unique(bins, return_inverse=True)
    cnt = np.bincount(idx).astype(np.float64)
    mean = np.bincount(idx, weights=hr) / cnt
    dev = hr - mean[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.bincount(idx, weights=dev * dev) / (cnt - 1))
    # coverage from the bin's own samples: occupied slots / slots per bin
    # (not from a record-wide sample spacing, which depends on the day's HR)
    slots = np.unique(slot)
    slot_bin = np.searchsorted(uniq, slots // slots_per_bin)
    coverage = np.bincount(slot_bin, minlength=uniq.size) / slots_per_bin
    start = uniq * window_s
    hour = (start % DAY_S) / 3600.0
    if rest_periods_s is None:
        if night_start_h <= night_end_h:
            in_night = (hour >= night_start_h) & (hour < night_end_h)
        else:
            in_night = (hour >= night_start_h) | (hour < night_end_h)
    else:
        in_night = np.zeros(uniq.size, dtype=bool)
        for a, b in rest_periods_s:
            in_night |= (start >= a) & (start + window_s <= b)
    stable = in_night & (coverage >= min_coverage) & (sd <= max_sd_bpm)
    # the night belongs to the date on which it ends: shift by 12 h
    night_day = np.floor((start + DAY_S / 2) / DAY_S).astype(np.int64)
    out: dict[np.datetime64, float] = {}
    for day in np.unique(night_day[in_night]):
        sel = stable & (night_day == day)
        out[np.datetime64(int(day), "D")] = float(mean[sel].min()) if sel.any() else NAN
    return out


def daily_hr(t_s: np.ndarray, hr_bpm: np.ndarray) -> dict[np.datetime64, dict[str, float]]:
    """Per local calendar day: ``hr_mean``, ``hr_p5``, ``hr_p50``, ``hr_p95`` (bpm)."""
    t = as_float_array(t_s)
    hr = as_float_array(hr_bpm)
    ok = np.isfinite(t) & np.isfinite(hr)
    t, hr = t[ok], hr[ok]
    days = np.floor(t / DAY_S).astype(np.int64)
    out: dict[np.datetime64, dict[str, float]] = {}
    for day in np.unique(days):
        x = hr[days == day]
        key = np.datetime64(int(day), "D")
        if x.size < MIN_SAMPLES_PER_DAY:
            out[key] = {"hr_mean": NAN, "hr_p5": NAN, "hr_p50": NAN, "hr_p95": NAN}
            continue
        p5, p50, p95 = np.percentile(x, [5, 50, 95])
        out[key] = {
            "hr_mean": float(x.mean()),
            "hr_p5": float(p5),
            "hr_p50": float(p50),
            "hr_p95": float(p95),
        }
    return out


def hr_during(t_s: np.ndarray, hr_bpm: np.ndarray, periods_s: list[tuple[float, float]]) -> float:
    """Mean HR (bpm) over samples inside the (start, end) periods; NaN if none."""
    t = as_float_array(t_s)
    hr = as_float_array(hr_bpm)
    inside = np.zeros(t.size, dtype=bool)
    for a, b in periods_s:
        inside |= (t >= a) & (t < b)
    inside &= np.isfinite(hr)
    return float(hr[inside].mean()) if inside.any() else NAN
