"""Thin orchestrator: a minute activity file -> daily features + whole-span summary.

Order matters and is the documented non-wear policy: non-wear minutes
(Choi-style zero runs, see ``adherence``) and missing minutes become NaN
*before* any feature is computed, so they count neither as rest nor as
activity in daily means, sleep detection, IS/IV, L5/M10 or the SRI.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import activity, adherence, circadian, sleep
from ._types import NAN, FloatArray


def _iso(t: np.datetime64) -> str:
    return str(np.datetime_as_string(t, unit="m")).replace("T", " ")


def activity_report(
    minute: np.ndarray,
    counts: FloatArray,
    steps: FloatArray | None = None,
    *,
    remove_nonwear: bool = True,
) -> dict[str, Any]:
    """``{"days": [...], "summary": {...}}`` for one participant's minute series.

    ``remove_nonwear=False`` skips the non-wear rule (every observed minute
    counts as worn); only for sensitivity analyses such as ``bench/depresjon.py``.
    """
    grid, c = activity.regular_minutes(minute, counts)
    stp = activity.regular_minutes(minute, steps)[1] if steps is not None else None
    nonwear = adherence.nonwear_minutes(c) if remove_nonwear else np.zeros(c.size, dtype=bool)
    worn = np.isfinite(c) & ~nonwear
    c_worn = np.where(worn, c, np.nan)
    daily = activity.daily_activity(grid, c, worn, steps=stp)
    adh = adherence.daily_adherence(grid, c, worn)
    state = sleep.sleep_wake(c_worn)
    periods = sleep.sleep_periods(grid, state)
    main = sleep.main_sleep_by_day(periods)
    sri = sleep.sleep_regularity_index(sleep.sleep_state_minutes(grid, state, periods))
    circ = circadian.circadian_features(grid, c_worn)

    days: list[dict[str, Any]] = []
    for i, day in enumerate(daily.day):
        row: dict[str, Any] = {
            "date": str(day),
            "observed_min": int(adh.observed_min[i]),
            "wear_min": int(adh.wear_min[i]),
            "completeness": float(adh.completeness[i]),
            "wear_fraction": float(adh.wear_fraction[i]),
            "valid": bool(daily.valid[i]),
        }
        row.update({k: float(v[i]) for k, v in daily.features.items()})
        p = main.get(day)
        row["sleep_onset"] = _iso(p.onset) if p else None
        row["sleep_offset"] = _iso(p.offset) if p else None
        row["sleep_in_bed_min"] = p.in_bed_min if p else NAN
        row["sleep_asleep_min"] = p.asleep_min if p else NAN
        row["sleep_efficiency"] = p.efficiency if p else NAN
        days.append(row)

    valid = daily.valid
    summary: dict[str, Any] = circ.as_dict()
    summary.update(
        {
            "sri": sri,
            "n_days": int(daily.day.size),
            "n_valid_days": int(valid.sum()),
            "wear_fraction": float(worn.sum() / max(c.size, 1)),
            "nonwear_min": int(nonwear.sum()),
            "missing_min": int((~np.isfinite(c)).sum()),
        }
    )
    for key in activity.ACTIVITY_KEYS:
        vals = daily.features[key][valid]
        vals = vals[np.isfinite(vals)]
        summary[f"{key}_daily_mean"] = float(vals.mean()) if vals.size else NAN
    in_bed = np.array([p.in_bed_min for p in main.values()])
    summary["sleep_in_bed_min_mean"] = float(in_bed.mean()) if in_bed.size else NAN
    return {"days": days, "summary": summary}
