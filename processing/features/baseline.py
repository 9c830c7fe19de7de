"""Personal baselines: rolling within-person reference and deviation scores.

For a daily feature x_d, the baseline of day d uses the valid (non-NaN)
values of the ``window_days`` calendar days before d (day d itself excluded,
so an unusual day cannot hide in its own baseline):

* mean_d, sd_d (ddof=1) -> ``z`` = (x_d - mean_d) / sd_d
* median_d, MAD_d = median |x - median_d| -> ``robust_z``
  = 0.6745 (x_d - median_d) / MAD_d (Iglewicz & Hoaglin 1993), i.e. the
  z-score with SD estimated as 1.4826 MAD, resistant to outliers (Leys et al.
  2013).

The baseline is *established* once it holds at least ``min_days`` valid
days; before that ``established`` is False and both scores are NaN. A zero
SD or MAD also gives NaN.

References: Iglewicz B, Hoaglin DC (1993) How to Detect and Handle Outliers,
ASQC. Leys C, Ley C, Klein O, Bernard P, Licata L (2013) J Exp Soc Psychol
49:764-766.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._types import BoolArray, FloatArray

WINDOW_DAYS = 28
MIN_DAYS = 7
MAD_TO_Z = 0.6745


@dataclass(frozen=True, slots=True)
class Baseline:
    mean: FloatArray
    sd: FloatArray
    median: FloatArray
    mad: FloatArray
    n_days: np.ndarray
    established: BoolArray
    z: FloatArray
    robust_z: FloatArray


def rolling_baseline(
    day: np.ndarray,
    values: FloatArray,
    *,
    window_days: int = WINDOW_DAYS,
    min_days: int = MIN_DAYS,
) -> Baseline:
    """Baseline and deviation scores for each entry of a daily series.

    ``day``: ``datetime64[D]`` (or int day numbers), one per value, any order;
    missing days need no placeholder.
    """
    d = np.asarray(day).astype("datetime64[D]").astype(np.int64)
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    res = {k: np.full(n, np.nan) for k in ("mean", "sd", "median", "mad", "z", "rz")}
    count = np.zeros(n, dtype=np.int64)
    ok = np.isfinite(x)
    vd, vx = d[ok], x[ok]
    order = np.argsort(vd, kind="stable")
    vd, vx = vd[order], vx[order]
    lo = np.searchsorted(vd, d - window_days, side="left")
    hi = np.searchsorted(vd, d, side="left")
    for i in range(n):
        ref = vx[lo[i] : hi[i]]
        count[i] = ref.size
        if ref.size < max(min_days, 2):
            continue
        mean, sd = ref.mean(), ref.std(ddof=1)
        med = np.median(ref)
        mad = np.median(np.abs(ref - med))
        res["mean"][i], res["sd"][i], res["median"][i], res["mad"][i] = mean, sd, med, mad
        if sd > 0:
            res["z"][i] = (x[i] - mean) / sd
        if mad > 0:
            res["rz"][i] = MAD_TO_Z * (x[i] - med) / mad
    established = count >= max(min_days, 2)
    return Baseline(
        mean=res["mean"],
        sd=res["sd"],
        median=res["median"],
        mad=res["mad"],
        n_days=count,
        established=established,
        z=res["z"],
        robust_z=res["rz"],
    )
