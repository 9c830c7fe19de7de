"""Sleep from the wrist's z-angle: the HDCZA sleep period and sustained inactivity.

Input: one z-angle per epoch (``angle_z_deg``, degrees, as the gateway's
accelerometer reduction gives it, :mod:`processing.features.accel`), on a
regular grid of ``epoch_s`` seconds, NaN where not worn or missing.

* **Sleep period time window, HDCZA** (van Hees et al. 2018): a = rolling
  median of the angle over 5 min; d_t = |a_t - a_{t-1}| (degrees per epoch);
  m = rolling median of d over 5 min; threshold = 15 x the 10th percentile
  of m over the day given (noon to noon); candidate epochs m_t < threshold;
  runs of candidates longer than 30 min are blocks; blocks less than 60 min
  apart are merged; the longest is the sleep period time window (SPT).
  Published for 5-s epochs; on 30- or 60-s epochs the same minute-based
  windows hold 10 or 5 epochs, so d (and the threshold) are on a coarser
  grid: the 15 x P10 rule is kept as published, not re-validated here. On
  60-s epochs 5-epoch running medians often repeat, P10 is then 0 and the
  0.13-degree floor alone sets the threshold; minute-level angle noise above
  about 0.1 degree at rest then splits the night (tests/unit/
  test_features_rhythm.py uses 0.05). 30-s epochs are the better input.
* **Sleep inside the window** (van Hees et al. 2015): an epoch is asleep if
  the angle changes by at most 5 degrees from epoch to epoch for at least
  5 minutes (sustained inactivity); TST = asleep epochs inside the SPT,
  WASO = the epochs not asleep between the first and the last asleep
  epoch of the SPT.

References: van Hees VT, Sabia S, Jones SE, et al. (2018) Sci Rep 8:12975
(HDCZA). van Hees VT, Sabia S, Anderson KN, et al. (2015) PLoS ONE
10:e0142533 (sustained inactivity, 5 degrees / 5 min).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._types import NAN, FloatArray

ROLL_MIN = 5.0
THRESHOLD_FACTOR = 15.0
THRESHOLD_PERCENTILE = 10.0
THRESHOLD_FLOOR_DEG = 0.13
MIN_BLOCK_MIN = 30.0
MAX_GAP_MIN = 60.0
INACTIVE_DEG = 5.0
INACTIVE_MIN = 5.0


@dataclass(frozen=True, slots=True)
class AngleSleep:
    onset: int  # epoch index of the SPT start
    offset: int  # epoch index after its end
    tst_min: float
    waso_min: float


def _rolling_median(x: FloatArray, width: int) -> FloatArray:
    """Centred running median over ``width`` epochs, NaN where any is missing."""
    if width <= 1 or x.size < width:
        return x.copy() if width <= 1 else np.full(x.size, np.nan)
    win = np.lib.stride_tricks.sliding_window_view(x, width)
    med = np.median(win, axis=1)  # NaN if any value in the window is NaN
    out = np.full(x.size, np.nan)
    lead = (width - 1) // 2
    out[lead : lead + med.size] = med
    return out


def hdcza_signal(angle_z_deg: FloatArray, epoch_s: float) -> FloatArray:
    """m_t: rolling median of |change in the rolling-median angle| (degrees/epoch)."""
    a = np.asarray(angle_z_deg, dtype=np.float64)
    width = max(1, round(ROLL_MIN * 60.0 / epoch_s))
    smooth = _rolling_median(a, width)
    diff = np.concatenate(([np.nan], np.abs(np.diff(smooth))))
    return _rolling_median(diff, width)


def hdcza_period(angle_z_deg: FloatArray, epoch_s: float) -> tuple[int, int] | None:
    """(start, end) epoch indices of the HDCZA sleep period time window, or None."""
    m = hdcza_signal(angle_z_deg, epoch_s)
    ok = np.isfinite(m)
    if not ok.any():
        return None
    p10 = float(np.percentile(m[ok], THRESHOLD_PERCENTILE))
    threshold = max(THRESHOLD_FACTOR * p10, THRESHOLD_FLOOR_DEG)
    with np.errstate(invalid="ignore"):
        below = ok & (m < threshold)
    d = np.diff(np.concatenate(([0], below.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    per_min = 60.0 / epoch_s
    keep = (ends - starts) > MIN_BLOCK_MIN * per_min
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return None
    merged: list[list[int]] = [[int(starts[0]), int(ends[0])]]
    for a, b in zip(starts[1:].tolist(), ends[1:].tolist(), strict=True):
        if a - merged[-1][1] < MAX_GAP_MIN * per_min:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    a, b = max(merged, key=lambda ab: ab[1] - ab[0])
    return a, b


def sustained_inactivity(angle_z_deg: FloatArray, epoch_s: float) -> FloatArray:
    """1.0 where the angle changed <= 5 degrees per epoch for >= 5 min, 0.0 else, NaN missing."""
    a = np.asarray(angle_z_deg, dtype=np.float64)
    if a.size == 0:
        return np.zeros(0)
    change = np.concatenate(([np.nan], np.abs(np.diff(a))))
    still = np.isfinite(change) & (change <= INACTIVE_DEG)
    d = np.diff(np.concatenate(([0], still.astype(np.int8), [0])))
    out = np.zeros(a.size)
    need = INACTIVE_MIN * 60.0 / epoch_s
    for s, e in zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True):
        if e - s + 1 >= need:  # changes s .. e-1 join the epochs s-1 .. e-1
            out[s - 1 : e] = 1.0
    return np.where(np.isfinite(a), out, np.nan)


def angle_sleep(angle_z_deg: FloatArray, epoch_s: float) -> AngleSleep | None:
    """HDCZA window with TST/WASO from sustained inactivity inside it (None if no window)."""
    period = hdcza_period(angle_z_deg, epoch_s)
    if period is None:
        return None
    a, b = period
    state = sustained_inactivity(angle_z_deg, epoch_s)[a:b]
    asleep = np.flatnonzero(state == 1.0)
    per_min = 60.0 / epoch_s
    if asleep.size == 0:
        return AngleSleep(a, b, 0.0, NAN)
    inner = state[asleep[0] : asleep[-1] + 1]
    return AngleSleep(a, b, asleep.size / per_min, float(np.count_nonzero(inner == 0.0)) / per_min)
