"""Daily data-completeness summary: pure NumPy, arrays in, numbers out.

Wear time and data completeness are first-class data in WellSense (adherence
drops silently otherwise). These are service-level counts, not behavioural or
physiological markers; the physiological daily features live in ``processing.features``
(``heart_rate.daily_hr`` is added to the same ``daily`` point).

Definitions (one participant, one local day):

* ``hr_samples``: HR notifications stored.
* ``hr_valid_samples``: of those, with ``hr_bpm > 0`` and skin contact not
  reported lost (``contact`` true or absent).
* ``wear_min``: distinct clock minutes holding at least one valid HR sample.
* ``rr_beats``: RR intervals stored.
* ``steps_total``: sum of ``steps`` over the day's activity samples.
"""

from __future__ import annotations

import numpy as np

from processing.features._types import FloatArray, IntArray

MINUTE_NS = 60 * 1_000_000_000


def daily_completeness(
    hr_t_ns: IntArray,
    hr_bpm: FloatArray,
    contact_lost: np.ndarray,
    rr_beats: int,
    steps: FloatArray,
) -> dict[str, float | int]:
    """The summary above; ``contact_lost`` is a boolean array aligned with ``hr_bpm``."""
    valid = (hr_bpm > 0) & ~contact_lost.astype(bool)
    out: dict[str, float | int] = {
        "hr_samples": int(hr_bpm.size),
        "hr_valid_samples": int(np.count_nonzero(valid)),
        "wear_min": int(np.unique(hr_t_ns[valid] // MINUTE_NS).size),
        "rr_beats": int(rr_beats),
        "steps_total": int(np.nansum(steps)) if steps.size else 0,
    }
    return out
