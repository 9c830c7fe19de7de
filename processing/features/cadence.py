"""Peak 30-minute cadence: the mean of the day's 30 highest step counts per minute.

peak30 = (1/30) sum of the 30 largest s_m over the worn minutes of the day
(steps/min; the minutes need not be consecutive, and minutes without steps
take part as zeros, so a day with fewer than 30 stepping minutes is pulled
down). Needs at least ``min_minutes`` worn minutes with a step count.

References: Tudor-Locke C, Brashear MM, Katzmarzyk PT, Johnson WD (2012)
J Phys Act Health 9:1125-1129 (peak 30-min cadence, NHANES 2005-2006);
Tudor-Locke C et al. (2018) Br J Sports Med 52:776-788 (cadence bands).
"""

from __future__ import annotations

import numpy as np

from ._types import NAN, FloatArray

PEAK_MINUTES = 30
MIN_MINUTES = 600


def peak_cadence(
    steps_per_min: FloatArray, *, n: int = PEAK_MINUTES, min_minutes: int = MIN_MINUTES
) -> float:
    """Mean of the ``n`` highest finite minute step counts (NaN if too few minutes)."""
    s = np.asarray(steps_per_min, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size < max(min_minutes, n):
        return NAN
    return float(np.mean(np.partition(s, s.size - n)[s.size - n :]))
