"""Single-component 24-h cosinor: mesor, amplitude and acrophase by least squares.

Model (Cornelissen 2014): y(t) = M + beta cos(2 pi t / tau) + gamma sin(2 pi t / tau)
+ e(t), tau = 24 h, t in local clock hours. Least squares on the valid samples
gives M, beta, gamma; then

* mesor M (unit of y),
* amplitude A = sqrt(beta^2 + gamma^2) (unit of y),
* acrophase as the clock time of the fitted peak, phi_h = (tau / 2 pi) x
  atan2(gamma, beta) mod 24 (hours after local midnight; Cornelissen reports
  the same phase as the angle -phi in degrees),
* R^2 of the fit.

Returns NaN unless the samples cover at least ``min_hours`` distinct clock
hours (a fit to half a day has no defined 24-h phase).

Reference: Cornelissen G (2014) Theor Biol Med Model 11:16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._types import NAN, FloatArray

PERIOD_H = 24.0
MIN_HOURS = 16


@dataclass(frozen=True, slots=True)
class Cosinor:
    mesor: float
    amplitude: float
    acrophase_h: float
    r2: float


EMPTY = Cosinor(NAN, NAN, NAN, NAN)


def cosinor(
    t_h: FloatArray, y: FloatArray, *, period_h: float = PERIOD_H, min_hours: int = MIN_HOURS
) -> Cosinor:
    """Fit y(t) at clock hours ``t_h`` (any real hours; only t mod period matters)."""
    t = np.asarray(t_h, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    if np.unique(np.floor(t % period_h)).size < min_hours:
        return EMPTY
    w = 2.0 * np.pi * t / period_h
    x = np.column_stack([np.ones(t.size), np.cos(w), np.sin(w)])
    coef, *_ = np.linalg.lstsq(x, v, rcond=None)
    m, beta, gamma = (float(c) for c in coef)
    resid = v - x @ coef
    total = float(np.sum((v - v.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / total if total > 0 else NAN
    phase = (np.arctan2(gamma, beta) * period_h / (2.0 * np.pi)) % period_h
    return Cosinor(m, float(np.hypot(beta, gamma)), float(phase), r2)
