"""Daily activity features from minute activity counts or minute step counts.

Input: a minute series (``minute``: ``datetime64[m]``, local wall-clock time;
``counts``: activity per minute, NaN = missing) and a wear mask (from
:func:`processing.features.adherence.nonwear_minutes`). All statistics use
worn minutes only, so a watch on the bedside table does not look like rest.

The per-minute quantity is named in every output key (one name, one
meaning): ``kind="counts"`` (accelerometer counts/min, actigraphy files such
as Depresjon) gives ``counts_*`` keys, ``kind="steps"`` (steps/min of a
step-counting wearable, the service's ``daily`` point) gives ``steps_*``.

Per calendar day, over the W worn minutes a_1..a_W:

* ``<kind>_mean_per_min`` = sum(a)/W; ``<kind>_sd_per_min`` = sample SD (ddof=1);
* ``<kind>_zero_fraction`` = #(a = 0)/W (Garcia-Ceja et al. 2018 use the same
  three on counts);
* ``<kind>_sedentary_min`` = #(a < sedentary_max), ``<kind>_mvpa_min`` =
  #(a >= mvpa_min); the cut points are device-specific: the defaults (100 and
  2020 counts/min) are Troiano et al. 2008 for hip ActiGraph and must be
  recalibrated for other devices (e.g. the wrist Actiwatch in Depresjon);
* ``steps`` = sum of the device's step counts over the day, when given.

A day with fewer than ``min_wear_min`` worn minutes (default 600, i.e. 10 h,
Troiano 2008) gets NaN features and ``valid = False``.

References: Garcia-Ceja E et al. (2018) Proc ACM MMSys 472-477.
Troiano RP et al. (2008) Med Sci Sports Exerc 40:181-188.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._types import BoolArray, FloatArray

SEDENTARY_MAX = 100.0
MVPA_MIN = 2020.0
MIN_WEAR_MIN = 600

Kind = Literal["counts", "steps"]
#: What each key measures; the key is ``<kind>_<stat>``.
ACTIVITY_STATS = ("mean_per_min", "sd_per_min", "zero_fraction", "sedentary_min", "mvpa_min")


def activity_keys(kind: Kind = "counts") -> tuple[str, ...]:
    """The feature keys :func:`daily_activity` returns for ``kind``."""
    return (*(f"{kind}_{stat}" for stat in ACTIVITY_STATS), "steps")


#: Keys of actigraphy (counts) files, as the offline pipeline reports them.
ACTIVITY_KEYS = activity_keys("counts")


@dataclass(frozen=True, slots=True)
class DailyActivity:
    day: np.ndarray  # datetime64[D]
    wear_min: np.ndarray
    valid: BoolArray
    features: dict[str, FloatArray]


def daily_activity(
    minute: np.ndarray,
    counts: FloatArray,
    wear: BoolArray | None = None,
    *,
    steps: FloatArray | None = None,
    kind: Kind = "counts",
    sedentary_max: float = SEDENTARY_MAX,
    mvpa_min: float = MVPA_MIN,
    min_wear_min: int = MIN_WEAR_MIN,
) -> DailyActivity:
    """Daily activity features over worn minutes; see the module docstring."""
    m = np.asarray(minute, dtype="datetime64[m]")
    c = np.asarray(counts, dtype=np.float64)
    w = np.isfinite(c) if wear is None else (np.asarray(wear, dtype=bool) & np.isfinite(c))
    days = m.astype("datetime64[D]")
    uniq, idx = np.unique(days, return_inverse=True)
    nd = uniq.size
    cw = np.where(w, c, 0.0)
    n = np.bincount(idx, weights=w, minlength=nd)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(idx, weights=cw, minlength=nd) / n
        dev = np.where(w, c - mean[idx], 0.0)
        sd = np.sqrt(np.bincount(idx, weights=dev * dev, minlength=nd) / (n - 1))
        zero = np.bincount(idx, weights=w & (c == 0), minlength=nd) / n
    sed = np.bincount(idx, weights=w & (c < sedentary_max), minlength=nd)
    mvpa = np.bincount(idx, weights=w & (c >= mvpa_min), minlength=nd)
    if steps is None:
        stp = np.full(nd, np.nan)
    else:
        s = np.asarray(steps, dtype=np.float64)
        stp = np.bincount(idx, weights=np.where(np.isfinite(s), s, 0.0), minlength=nd)
        has = np.bincount(idx, weights=np.isfinite(s), minlength=nd) > 0
        stp = np.where(has, stp, np.nan)
    valid = n >= max(min_wear_min, 2)
    stats = (mean, sd, zero, sed, mvpa)
    feats = {f"{kind}_{name}": v for name, v in zip(ACTIVITY_STATS, stats, strict=True)}
    feats["steps"] = stp
    feats = {k: np.where(valid, v, np.nan) for k, v in feats.items()}
    return DailyActivity(day=uniq, wear_min=n.astype(np.int64), valid=valid, features=feats)


def regular_minutes(minute: np.ndarray, values: FloatArray) -> tuple[np.ndarray, FloatArray]:
    """Place samples on a gap-free minute grid (missing minutes become NaN).

    A local-time DST spring-forward shows up as one missing hour; the autumn
    repeat of an hour keeps the first value (the series is local wall-clock).
    """
    m = np.asarray(minute, dtype="datetime64[m]")
    v = np.asarray(values, dtype=np.float64)
    if m.size == 0:
        return m, v
    grid = np.arange(m.min(), m.max() + np.timedelta64(1, "m"), dtype="datetime64[m]")
    out = np.full(grid.size, np.nan)
    pos = (m - grid[0]).astype(np.int64)
    out[pos[::-1]] = v[::-1]  # first occurrence wins
    return grid, out
