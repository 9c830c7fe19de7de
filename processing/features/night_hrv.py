"""Nocturnal HRV: one log-scale RMSSD per night, from the night's HRV windows.

Input: the night's HRV windows as produced by :mod:`processing.features.hrv`
(start ``start_s`` in local seconds since the epoch, ``rmssd_ms`` and whether
the window is *usable*: no quality flag that leaves RMSSD undefined, see
:func:`usable_quality`). A window belongs to the night if it lies wholly
inside a sleep period when sleep periods are known, else wholly inside
``night_start_h`` .. ``night_end_h`` local time (00:00-06:00). The night is
keyed by the date of the morning it ends on.

Per night, over the n windows with RR data of which u are usable with RMSSD
r_1..r_u > 0 (ms):

* ``ln_rmssd_night`` = median_i ln(r_i) (ln of ms). The log scale makes the
  day-to-day distribution near-normal, so its baseline mean, SD and z-score
  are meaningful (Plews et al. 2013 monitor ln RMSSD and its rolling
  baseline); the median over the night's 5-min windows resists the odd
  window with residual artefacts. For odd u it equals ln of the median RMSSD.
* ``hrv_night_windows`` = n, ``hrv_night_usable_fraction`` = u / n.

References: Plews DJ, Laursen PB, Stanley J, Kilding AE, Buchheit M (2013)
Sports Med 43:773-781. Task Force of the ESC/NASPE (1996) Circulation
93:1043-1065 (RMSSD over 5-min windows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ._types import as_float_array
from .rr_clean import BLOCKING, Quality, quality_names

NIGHT_START_H = 0.0
NIGHT_END_H = 6.0
DAY_S = 86_400.0
#: Names of the quality flags that leave a window without RMSSD.
NO_RMSSD_NAMES = frozenset(quality_names(int(BLOCKING | Quality.CONSTANT_RR)))


@dataclass(frozen=True, slots=True)
class NightHRV:
    ln_rmssd_night: float
    hrv_night_windows: int
    hrv_night_usable_fraction: float


def usable_quality(quality: Iterable[str]) -> bool:
    """True if a window's quality flag names leave its RMSSD defined.

    RMSSD is undefined under a blocking flag (too few beats, low coverage,
    many artefacts) and ``constant_rr``. The other flags
    (``short_for_frequency``, ``gap_in_window``, ``dfa_undefined``,
    ``sampen_undefined``) blank only the features they name: a well-worn
    strap raises them on ordinary windows, so they do not make a window bad.
    """
    return not NO_RMSSD_NAMES.intersection(q for q in quality if q)


def nocturnal_hrv(
    start_s: np.ndarray,
    rmssd_ms: np.ndarray,
    usable: np.ndarray,
    *,
    window_s: float = 300.0,
    night_start_h: float = NIGHT_START_H,
    night_end_h: float = NIGHT_END_H,
    sleep_periods_s: list[tuple[float, float]] | None = None,
) -> dict[np.datetime64, NightHRV]:
    """Per night (keyed by the morning's date): ln RMSSD and the window counts.

    Only nights with at least one window are keys; a night without a usable
    window has ``ln_rmssd_night`` NaN.
    """
    start = as_float_array(start_s)
    rmssd = as_float_array(rmssd_ms)
    ok = np.asarray(usable, dtype=bool).reshape(-1) & np.isfinite(rmssd) & (rmssd > 0)
    if sleep_periods_s is None:
        hour = (start % DAY_S) / 3600.0
        end_h = hour + window_s / 3600.0
        if night_start_h <= night_end_h:
            inside = (hour >= night_start_h) & (end_h <= night_end_h)
        else:  # e.g. 22-06 h: before midnight, or after it
            inside = (hour >= night_start_h) | (end_h <= night_end_h)
    else:
        inside = np.zeros(start.size, dtype=bool)
        for a, b in sleep_periods_s:
            inside |= (start >= a) & (start + window_s <= b)
    # the night belongs to the date on which it ends: shift by 12 h
    night_day = np.floor((start + DAY_S / 2) / DAY_S).astype(np.int64)
    out: dict[np.datetime64, NightHRV] = {}
    for day in np.unique(night_day[inside]):
        sel = inside & (night_day == day)
        good = rmssd[sel & ok]
        out[np.datetime64(int(day), "D")] = NightHRV(
            ln_rmssd_night=float(np.median(np.log(good))) if good.size else math.nan,
            hrv_night_windows=int(sel.sum()),
            hrv_night_usable_fraction=float(good.size / sel.sum()),
        )
    return out
