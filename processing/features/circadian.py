"""Nonparametric circadian rest-activity measures: IS, IV, L5, M10, RA.

Input is a regular minute series (``minute``: ``datetime64[m]`` local time,
``values``: activity or HR per minute) with non-wear or missing minutes set to
NaN. Nothing is imputed: missing minutes are left out of every mean.

* Hourly series (Witting et al. 1990): x_i = mean of the valid minutes of clock
  hour i, kept if at least ``min_hour_coverage`` of its minutes are valid.
* **IS** (interdaily stability) = N * sum_h n_h (xbar_h - xbar)^2
  / (p * sum_i (x_i - xbar)^2) with p = 24 and xbar_h the mean over days of
  clock hour h (n_h valid hours; n_h = N/p without gaps). 0 = no day-to-day
  pattern, 1 = identical days.
* **IV** (intradaily variability) = N * sum_i (x_i - x_{i-1})^2
  / ((N - 1) * sum_i (x_i - xbar)^2), the sum over consecutive valid hours and
  N - 1 replaced by their count. ~0 for a smooth rhythm, ~2 for white noise.
* **L5 / M10** (Van Someren et al. 1999): lowest 5-h / highest 10-h running
  mean of the average 24-h minute profile (circular, so windows may span
  midnight), with the clock time of their onset.
* **RA** (relative amplitude) = (M10 - L5) / (M10 + L5).

References: Witting W, Kwa IH, Eikelenboom P, Mirmiran M, Swaab DF (1990)
Biol Psychiatry 27:563-572. Van Someren EJW, Swaab DF, Colenda CC, Cohen W,
McCall WV, Rosenquist PB (1999) Chronobiol Int 16:505-518.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._types import NAN, FloatArray

MIN_HOUR_COVERAGE = 0.5
MIN_DAYS = 2.0  # IS needs at least two cycles
MIN_PROFILE_COVERAGE = 0.9  # share of the 1440 profile minutes with data for L5/M10


@dataclass(frozen=True, slots=True)
class Circadian:
    is_: float
    iv: float
    l5: float
    m10: float
    ra: float
    l5_onset_h: float  # clock time of the L5 onset, hours after midnight
    m10_onset_h: float
    n_days: float  # valid hours / 24

    def as_dict(self) -> dict[str, float]:
        return {
            "is": self.is_,
            "iv": self.iv,
            "l5": self.l5,
            "m10": self.m10,
            "ra": self.ra,
            "l5_onset_h": self.l5_onset_h,
            "m10_onset_h": self.m10_onset_h,
            "circadian_days": self.n_days,
        }


EMPTY = Circadian(NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0.0)


def hourly_means(
    minute: np.ndarray, values: FloatArray, *, min_coverage: float = MIN_HOUR_COVERAGE
) -> tuple[np.ndarray, FloatArray]:
    """Clock-hour means over the full hour range spanned by ``minute`` (NaN = too thin)."""
    m = np.asarray(minute, dtype="datetime64[m]")
    v = np.asarray(values, dtype=np.float64)
    if m.size == 0:
        return np.zeros(0, dtype="datetime64[h]"), np.zeros(0)
    hours = m.astype("datetime64[h]")
    h0 = hours.min()
    idx = (hours - h0).astype(np.int64)
    n_h = int(idx.max()) + 1
    ok = np.isfinite(v)
    cnt = np.bincount(idx[ok], minlength=n_h)
    tot = np.bincount(idx[ok], weights=v[ok], minlength=n_h)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt >= min_coverage * 60, tot / np.maximum(cnt, 1), np.nan)
    return h0 + np.arange(n_h), mean


def interdaily_stability(hour: np.ndarray, x: FloatArray) -> float:
    """IS of an hourly series (``hour``: datetime64[h]); NaN hours are left out."""
    ok = np.isfinite(x)
    n = int(ok.sum())
    if n < MIN_DAYS * 24:
        return NAN
    xv = x[ok]
    clock = (np.asarray(hour, dtype="datetime64[h]")[ok].astype(np.int64)) % 24
    xbar = xv.mean()
    total = float(np.sum((xv - xbar) ** 2))
    if total == 0:
        return NAN
    cnt = np.bincount(clock, minlength=24)
    prof = np.bincount(clock, weights=xv, minlength=24) / np.maximum(cnt, 1)
    between = float(np.sum(cnt * (prof - xbar) ** 2))
    # sum_h n_h (.)^2 / n equals sum_h (.)^2 / p when every clock hour has N/p values
    return between / total


def intradaily_variability(x: FloatArray) -> float:
    """IV of an hourly series; differences only between consecutive valid hours."""
    ok = np.isfinite(x)
    n = int(ok.sum())
    if n < 3:
        return NAN
    d = np.diff(x)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return NAN
    xv = x[ok]
    total = float(np.sum((xv - xv.mean()) ** 2))
    if total == 0:
        return NAN
    return float(np.sum(d * d) / d.size) / (total / n)


def daily_profile(minute: np.ndarray, values: FloatArray) -> FloatArray:
    """Mean value per minute of the day (1440 entries, NaN where never observed)."""
    m = np.asarray(minute, dtype="datetime64[m]")
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    mod = (m[ok].astype(np.int64)) % 1440
    cnt = np.bincount(mod, minlength=1440)
    tot = np.bincount(mod, weights=v[ok], minlength=1440)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _circular_extreme(profile: FloatArray, width: int, lowest: bool) -> tuple[float, float]:
    ok = np.isfinite(profile)
    ext = np.concatenate([profile, profile[: width - 1]])
    ext_ok = np.concatenate([ok, ok[: width - 1]])
    csum = np.concatenate(([0.0], np.cumsum(np.where(ext_ok, ext, 0.0))))
    ccnt = np.concatenate(([0], np.cumsum(ext_ok)))
    sums = csum[width:] - csum[:-width]
    cnts = ccnt[width:] - ccnt[:-width]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(cnts >= 0.5 * width, sums / np.maximum(cnts, 1), np.nan)
    means = means[: profile.size]
    if not np.any(np.isfinite(means)):
        return NAN, NAN
    i = int(np.nanargmin(means) if lowest else np.nanargmax(means))
    return float(means[i]), i * 24.0 / profile.size


def circadian_features(minute: np.ndarray, values: FloatArray) -> Circadian:
    """IS, IV, L5, M10 (with onsets) and RA of a minute series; NaN when too thin.

    >>> t = np.arange("2024-01-01", "2024-01-08", dtype="datetime64[m]")
    >>> x = 100 + 50 * np.sin(2 * np.pi * (t.astype(np.int64) % 1440) / 1440)
    >>> round(circadian_features(t, x).is_, 3)
    1.0
    """
    m = np.asarray(minute, dtype="datetime64[m]")
    v = np.asarray(values, dtype=np.float64)
    if m.size == 0 or not np.any(np.isfinite(v)):
        return EMPTY
    hour, x = hourly_means(m, v)
    prof = daily_profile(m, v)
    if np.mean(np.isfinite(prof)) >= MIN_PROFILE_COVERAGE:
        l5, l5_on = _circular_extreme(prof, 300, lowest=True)
        m10, m10_on = _circular_extreme(prof, 600, lowest=False)
    else:
        l5 = l5_on = m10 = m10_on = NAN
    ra = (m10 - l5) / (m10 + l5) if (m10 + l5) > 0 else NAN
    return Circadian(
        is_=interdaily_stability(hour, x),
        iv=intradaily_variability(x),
        l5=l5,
        m10=m10,
        ra=ra,
        l5_onset_h=l5_on,
        m10_onset_h=m10_on,
        n_days=float(np.isfinite(x).sum()) / 24.0,
    )


def circadian_rolling(
    minute: np.ndarray, values: FloatArray, *, span_days: int = 7
) -> list[tuple[np.datetime64, Circadian]]:
    """Circadian measures over the ``span_days`` calendar days ending on each day."""
    m = np.asarray(minute, dtype="datetime64[m]")
    v = np.asarray(values, dtype=np.float64)
    if m.size == 0:
        return []
    days = m.astype("datetime64[D]")
    out = []
    for day in np.unique(days):
        sel = (days > day - np.timedelta64(span_days, "D")) & (days <= day)
        out.append((day, circadian_features(m[sel], v[sel])))
    return out
