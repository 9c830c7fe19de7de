"""Agreement and bias between self-report and sensing: pure NumPy, arrays in, numbers out.

For paired measurements of the same quantity (x = self-reported, y = sensed,
e.g. hours slept), with differences d_i = x_i - y_i, i = 1..n:

* **bias** (mean difference) = mean(d); its 95 % CI = bias -/+ t_{0.975, n-1} s_d / sqrt(n),
  with s_d the SD of the differences (ddof = 1). Positive = over-reporting.
* **limits of agreement** (Bland & Altman 1986) = bias -/+ 1.96 s_d: where 95 % of
  one person's differences are expected to fall. Approximate 95 % CI of each
  limit: -/+ t_{0.975, n-1} sqrt(3 s_d^2 / n) (Bland & Altman 1986, section 5).
* **proportional bias**: OLS slope of d on the pair means (x + y) / 2
  (Bland & Altman 1999, section 3.2); 0 = the bias does not grow with the level.
* **within-person correlation**: Pearson r of x and y over one person's pairs
  (does the self-report track day-to-day change?).

Across participants (several pairs per person, not independent):

* **repeated-measures correlation** (Bland & Altman 1995, BMJ 310:446; Bakdash &
  Marusich 2017): with x'_ij = x_ij - xbar_i and y'_ij = y_ij - ybar_i centred
  within person i, r_rm = sum x'y' / sqrt(sum x'^2 sum y'^2), the common
  within-person slope sum x'y' / sum x'^2, df = N - k - 1 (N pairs, k people),
  t = r_rm sqrt(df / (1 - r_rm^2)), two-sided p from Student's t.
* **pooled limits of agreement with repeated measures** (Bland & Altman 1999,
  section 5.2; 2007): a one-way ANOVA of d by person gives MS_between (k - 1 df)
  and MS_within (N - k df); with lambda = (N^2 - sum n_i^2) / ((k - 1) N),
  s^2_between = max(0, (MS_between - MS_within) / lambda), and the SD of a single
  difference is s_total = sqrt(s^2_between + MS_within); LoA = mean(d) -/+ 1.96 s_total.

Too few pairs give NaN, never an exception (n < 2 for bias/SD, n < 3 for r).

References: Bland JM, Altman DG (1986) Lancet 327:307-310. Bland JM, Altman DG
(1995) BMJ 310:446. Bland JM, Altman DG (1999) Stat Methods Med Res 8:135-160.
Bland JM, Altman DG (2007) J Biopharm Stat 17:571-582. Bakdash JZ, Marusich LR
(2017) Front Psychol 8:456.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

from processing.features._types import NAN, FloatArray, as_float_array

Z_95 = 1.96


@dataclass(frozen=True, slots=True)
class Agreement:
    """One person's (or one set of independent pairs') agreement indices."""

    n: int
    mean_self: float
    mean_sensed: float
    bias: float
    bias_ci_low: float
    bias_ci_high: float
    sd_diff: float
    loa_low: float
    loa_high: float
    loa_ci_halfwidth: float
    mean_abs_diff: float
    proportional_slope: float
    r_within: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _pairs(self_reported: object, sensed: object) -> tuple[FloatArray, FloatArray]:
    x, y = as_float_array(self_reported), as_float_array(sensed)
    if x.size != y.size:
        raise ValueError(f"{x.size} self-reports but {y.size} sensed values")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _pearson(x: FloatArray, y: FloatArray) -> float:
    if x.size < 3:
        return NAN
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denom if denom > 0 else NAN


def agreement(self_reported: object, sensed: object) -> Agreement:
    """Bias, limits of agreement and within-person r of paired values (NaN pairs dropped)."""
    x, y = _pairs(self_reported, sensed)
    n = int(x.size)
    if n == 0:
        return Agreement(0, *([NAN] * 12))
    d = x - y
    bias = float(d.mean())
    if n < 2:
        return Agreement(
            n,
            float(x.mean()),
            float(y.mean()),
            bias,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            float(np.abs(d).mean()),
            NAN,
            NAN,
        )
    sd = float(d.std(ddof=1))
    t = float(scipy.stats.t.ppf(0.975, n - 1))
    half = t * sd / math.sqrt(n)
    means = (x + y) / 2
    dm = means - means.mean()
    slope = float(dm @ (d - bias)) / float(dm @ dm) if float(dm @ dm) > 0 else NAN
    return Agreement(
        n=n,
        mean_self=float(x.mean()),
        mean_sensed=float(y.mean()),
        bias=bias,
        bias_ci_low=bias - half,
        bias_ci_high=bias + half,
        sd_diff=sd,
        loa_low=bias - Z_95 * sd,
        loa_high=bias + Z_95 * sd,
        loa_ci_halfwidth=t * math.sqrt(3 * sd * sd / n),
        mean_abs_diff=float(np.abs(d).mean()),
        proportional_slope=slope,
        r_within=_pearson(x, y),
    )


@dataclass(frozen=True, slots=True)
class RepeatedMeasuresCorrelation:
    r: float
    slope: float
    df: int
    p: float
    n_pairs: int
    n_subjects: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _by_subject(subject: object, *arrays: object) -> tuple[np.ndarray, list[FloatArray]]:
    s = np.asarray(subject).reshape(-1)
    cols = [as_float_array(a) for a in arrays]
    if any(c.size != s.size for c in cols):
        raise ValueError("subject and value arrays differ in length")
    ok = np.all([np.isfinite(c) for c in cols], axis=0) if cols else np.ones(s.size, bool)
    _, idx = np.unique(s[ok], return_inverse=True)
    return idx, [c[ok] for c in cols]


def repeated_measures_correlation(
    subject: object, self_reported: object, sensed: object
) -> RepeatedMeasuresCorrelation:
    """Within-person correlation across people (Bland & Altman 1995); see the module doc."""
    idx, (x, y) = _by_subject(subject, self_reported, sensed)
    n = int(x.size)
    k = int(idx.max()) + 1 if n else 0
    df = n - k - 1
    if n == 0 or df < 1:
        return RepeatedMeasuresCorrelation(NAN, NAN, max(df, 0), NAN, n, k)
    counts = np.bincount(idx, minlength=k)
    xc = x - (np.bincount(idx, weights=x, minlength=k) / counts)[idx]
    yc = y - (np.bincount(idx, weights=y, minlength=k) / counts)[idx]
    sxx, syy, sxy = float(xc @ xc), float(yc @ yc), float(xc @ yc)
    if sxx <= 0 or syy <= 0:
        return RepeatedMeasuresCorrelation(NAN, NAN, df, NAN, n, k)
    r = sxy / math.sqrt(sxx * syy)
    if abs(r) >= 1.0:
        p = 0.0
    else:
        t = r * math.sqrt(df / (1 - r * r))
        p = float(2 * scipy.stats.t.sf(abs(t), df))
    return RepeatedMeasuresCorrelation(r, sxy / sxx, df, p, n, k)


@dataclass(frozen=True, slots=True)
class PooledAgreement:
    n_pairs: int
    n_subjects: int
    bias: float
    sd_within: float
    sd_between: float
    sd_total: float
    loa_low: float
    loa_high: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def pooled_agreement(subject: object, self_reported: object, sensed: object) -> PooledAgreement:
    """Limits of agreement over several people with repeated pairs (Bland & Altman 1999
    section 5.2 / 2007); see the module doc."""
    idx, (x, y) = _by_subject(subject, self_reported, sensed)
    n = int(x.size)
    k = int(idx.max()) + 1 if n else 0
    if n - k < 1 or k < 1:
        return PooledAgreement(n, k, NAN, NAN, NAN, NAN, NAN, NAN)
    d = x - y
    counts = np.bincount(idx, minlength=k).astype(np.float64)
    means = np.bincount(idx, weights=d, minlength=k) / counts
    grand = float(d.mean())
    ms_within = float(((d - means[idx]) ** 2).sum()) / (n - k)
    if k > 1:
        ms_between = float((counts * (means - grand) ** 2).sum()) / (k - 1)
        lam = (n * n - float((counts**2).sum())) / ((k - 1) * n)
        var_between = max(0.0, (ms_between - ms_within) / lam)
    else:
        var_between = 0.0
    sd_total = math.sqrt(var_between + ms_within)
    return PooledAgreement(
        n_pairs=n,
        n_subjects=k,
        bias=grand,
        sd_within=math.sqrt(ms_within),
        sd_between=math.sqrt(var_between),
        sd_total=sd_total,
        loa_low=grand - Z_95 * sd_total,
        loa_high=grand + Z_95 * sd_total,
    )
