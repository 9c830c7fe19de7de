"""Independent, deliberately literal transcriptions of published sleep scorers.

Written from the papers' formulas and pyActigraphy's documented conventions
(its docstrings and parameters), one minute at a time with plain loops, so
that the vectorised code in ``processing.features.sleep`` is checked against
something that shares none of its code. ``convention="pyactigraphy"``
reproduces the choices pyActigraphy 1.2.2 makes where the papers leave room
(see ``processing.features.sleep``); ``"paper"`` follows the papers as
transcribed there. Used by tests/unit/test_features_sleep_scoring.py and
bench/sleep.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np


def cole_kripke(
    counts: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray,
    scale: float,
    *,
    convention: str,
) -> np.ndarray:
    """1 asleep / 0 wake; pyActigraphy's centred 9-minute window leaves 4 minutes
    at each end unscored (scored wake); the paper convention pads with zeros."""
    a = [float(x) for x in counts]
    n = len(a)
    out = np.zeros(n)
    for t in range(n):
        if convention == "pyactigraphy" and (t < 4 or t > n - 5):
            out[t] = 0.0
            continue
        d = 0.0
        for k, w in enumerate(weights):
            j = t - 4 + k
            d += w * (a[j] if 0 <= j < n else 0.0)
        out[t] = 1.0 if scale * d < 1.0 else 0.0
    return out


def webster(state: Sequence[float] | np.ndarray, *, convention: str) -> np.ndarray:
    """Webster's five rules on the original scoring; in the pyActigraphy
    convention rules (b)/(c) touch only sleep runs of at least 3/4 minutes."""
    s = [int(x) for x in state]
    n = len(s)
    out = list(s)
    runs: list[tuple[int, int, int]] = []  # (value, start, end)
    i = 0
    while i < n:
        j = i
        while j < n and s[j] == s[i]:
            j += 1
        runs.append((s[i], i, j))
        i = j
    for k, (v, a, b) in enumerate(runs):
        if v != 1 or k == 0:
            continue
        wake_before = runs[k - 1][2] - runs[k - 1][1]
        for need, m in ((4, 1), (10, 3), (15, 4)):
            if wake_before >= need and (convention != "pyactigraphy" or b - a >= m):
                for t in range(a, min(a + m, b)):
                    out[t] = 0
    for longest, need in ((6, 10), (10, 20)):
        long_wake = [(a, b) for v, a, b in runs if v == 0 and b - a >= need]
        for (_, e), (a, _) in itertools.pairwise(long_wake):
            if a - e <= longest:
                for t in range(e, a):
                    out[t] = 0
    return np.array(out, dtype=np.float64)


def sadeh(counts: Sequence[float] | np.ndarray, *, convention: str) -> np.ndarray:
    """PS = 7.601 - 0.065 MEAN - 1.08 NAT - 0.056 SD - 0.703 LG.

    paper: windows cut at the series ends, NAT 50 <= A < 100, LG of minute
    t, sleep if PS >= 0. pyactigraphy: minutes without a full 11-minute
    (MEAN, NAT) or 6-minute (SD) window, or without a next minute, are wake;
    NAT 50 < A < 100; LG of minute t + 1; sleep if PS > 0.
    """
    a = [float(x) for x in counts]
    n = len(a)
    out = np.zeros(n)
    py = convention == "pyactigraphy"
    for t in range(n):
        lo, hi = t - 5, t + 5
        if py and (lo < 0 or hi > n - 1 or t + 1 > n - 1):
            continue
        win = a[max(lo, 0) : min(hi, n - 1) + 1]
        last6 = a[max(t - 5, 0) : t + 1]
        if len(last6) < 2:
            out[t] = math.nan
            continue
        mean = sum(win) / len(win)
        nat = sum(1 for x in win if (50 < x < 100 if py else 50 <= x < 100))
        mu = sum(last6) / len(last6)
        sd = math.sqrt(sum((x - mu) ** 2 for x in last6) / (len(last6) - 1))
        lg = math.log((a[t + 1] if py else a[t]) + 1.0)
        ps = 7.601 - 0.065 * mean - 1.08 * nat - 0.056 * sd - 0.703 * lg
        out[t] = 1.0 if (ps > 0 if py else ps >= 0) else 0.0
    return out


def agreement(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """(% equal, Cohen's kappa, n) over the minutes where both are defined."""
    ok = np.isfinite(x) & np.isfinite(y)
    a, b = x[ok], y[ok]
    n = int(a.size)
    if n == 0:
        return math.nan, math.nan, 0
    po = float(np.mean(a == b))
    pa, pb = float(np.mean(a == 1)), float(np.mean(b == 1))
    pe = pa * pb + (1 - pa) * (1 - pb)
    kappa = (po - pe) / (1 - pe) if pe < 1 else 1.0
    return 100.0 * po, kappa, n
