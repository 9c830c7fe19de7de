"""Nocturnal heart-rate dip: the drop of mean night HR below mean day HR, in percent.

dip = 100 x (HR_day - HR_night) / HR_day, HR_night = mean HR of the minutes
inside the sleep (or rest) period, HR_day = mean HR of the worn minutes
outside it in the same stretch. Both means are over minute HR values (one per
minute with data), so a minute counts once whatever the sampling rate; each
needs at least ``min_minutes`` minutes. Positive = HR lower at night (the
usual pattern, about 10-20 %); negative = reverse dipping.

References: Ben-Dov IZ, Kark JD, Ben-Ishay D, Mekler J, Ben-Arie L, Bursztyn M
(2007) Arch Intern Med 167:2116-2121 (blunted night HR dip); the percent
drop follows the blood-pressure dipping convention (O'Brien E, Sheridan J,
O'Malley K 1988, Lancet 2:397).
"""

from __future__ import annotations

import numpy as np

from ._types import NAN, FloatArray

MIN_MINUTES = 60


def hr_dip_pct(hr_bpm: FloatArray, night: np.ndarray, *, min_minutes: int = MIN_MINUTES) -> float:
    """Percent dip of minute HR inside ``night`` (bool mask) vs the worn minutes outside."""
    hr = np.asarray(hr_bpm, dtype=np.float64)
    mask = np.asarray(night, dtype=bool)
    ok = np.isfinite(hr)
    n_night, n_day = hr[ok & mask], hr[ok & ~mask]
    if n_night.size < min_minutes or n_day.size < min_minutes:
        return NAN
    day = float(n_day.mean())
    return 100.0 * (day - float(n_night.mean())) / day if day > 0 else NAN
