"""RR-interval artefact handling, gap detection and per-window quality.

A BLE chest strap reports RR intervals (ms); the gateway knows (or reconstructs)
the time of each beat. This module turns that raw stream into NN intervals:

1. **Missing values** (NaN, inf) are dropped.
2. **Range rule:** ``min_rr_ms <= RR <= max_rr_ms`` (default 300..2000 ms,
   i.e. 30..200 bpm). Anything longer is a lost connection or a missed run of
   beats, not an interval, and is treated as a gap.
3. **Ectopic / missed-beat rule** (Malik et al. 1989 "20 % rule", applied to a
   local median instead of the previous beat so one ectopic beat does not also
   reject its neighbour):
   ``|RR_k - med_k| > ectopic_threshold * med_k`` where ``med_k`` is the
   centred running median over ``median_beats`` in-range intervals.
4. **Gaps:** a kept interval is *successive* only if the previous input
   interval was kept and, when beat times are given, the beat times agree with
   the interval: ``|1000 (t_k - t_{k-1}) - RR_k| <= gap_tolerance_ms``
   (NeuroKit2's rule, 10 ms). Successive differences, Poincaré pairs, DFA
   segments and SampEn templates never cross a non-successive point.

References: Malik M, Cripps T, Farrell T, Camm AJ (1989) Med Biol Eng Comput
27:603-611. Task Force of the ESC/NASPE (1996) Circulation 93:1043-1065.
A more refined detector (Lipponen & Tarvainen 2019, J Med Eng Technol
43:173-181) can replace step 3 without changing the interface.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

from ._types import BoolArray, FloatArray, IntArray, as_float_array

MIN_RR_MS = 300.0
MAX_RR_MS = 2000.0
ECTOPIC_THRESHOLD = 0.2
MEDIAN_BEATS = 11
GAP_TOLERANCE_MS = 10.0


class Reason(enum.IntEnum):
    """Why an input interval was kept or rejected."""

    KEPT = 0
    MISSING = 1
    OUT_OF_RANGE = 2
    ECTOPIC = 3


class Quality(enum.IntFlag):
    """Quality flags of one HRV window (0 = all good).

    Any of NO_BEATS, TOO_FEW_BEATS, LOW_COVERAGE, MANY_ARTEFACTS makes every
    feature of the window NaN; the others blank only the features they name.
    """

    OK = 0
    NO_BEATS = enum.auto()
    TOO_FEW_BEATS = enum.auto()
    LOW_COVERAGE = enum.auto()
    MANY_ARTEFACTS = enum.auto()
    CONSTANT_RR = enum.auto()  # variability features are undefined
    SHORT_FOR_FREQUENCY = enum.auto()  # < 120 s of beats: no LF/HF
    GAP_IN_WINDOW = enum.auto()  # a gap longer than the spline may bridge: no LF/HF
    DFA_UNDEFINED = enum.auto()
    SAMPEN_UNDEFINED = enum.auto()


BLOCKING = Quality.NO_BEATS | Quality.TOO_FEW_BEATS | Quality.LOW_COVERAGE | Quality.MANY_ARTEFACTS


def quality_names(flags: int) -> list[str]:
    """Names of the flags set in ``flags``, e.g. ``["LOW_COVERAGE"]``; ``[]`` if good."""
    return [q.name.lower() for q in Quality if q and q.name and (flags & q) == q]


@dataclass(frozen=True, slots=True)
class CleanRR:
    """Result of :func:`clean_rr`.

    ``t_s``/``rr_ms``/``successive`` describe the kept (NN) intervals; ``raw_t_s``
    and ``reason`` describe every input interval, for quality accounting.
    """

    t_s: FloatArray
    rr_ms: FloatArray
    successive: BoolArray
    raw_t_s: FloatArray
    reason: IntArray

    @property
    def kept_fraction(self) -> float:
        n = self.reason.size
        return float(np.count_nonzero(self.reason == Reason.KEPT) / n) if n else float("nan")


def beat_times_s(rr_ms: FloatArray) -> FloatArray:
    """Beat times (s) as the running sum of the intervals; NaN intervals add nothing."""
    return np.nancumsum(np.where(np.isfinite(rr_ms), rr_ms, 0.0)) / 1000.0


def clean_rr(
    rr_ms: FloatArray,
    t_s: FloatArray | None = None,
    *,
    min_rr_ms: float = MIN_RR_MS,
    max_rr_ms: float = MAX_RR_MS,
    ectopic_threshold: float = ECTOPIC_THRESHOLD,
    median_beats: int = MEDIAN_BEATS,
    gap_tolerance_ms: float = GAP_TOLERANCE_MS,
) -> CleanRR:
    """Reject impossible, ectopic and missing intervals and mark gaps.

    ``rr_ms``: intervals in ms. ``t_s``: time (s) of the beat that *ends* each
    interval; if omitted it is the running sum of ``rr_ms`` (so an over-long
    "interval" such as a 300 s signal loss still moves the clock on).
    Never raises on bad values; empty input gives empty arrays.
    """
    rr = as_float_array(rr_ms)
    if t_s is None:
        times = beat_times_s(rr)
        times_given = False
    else:
        times = as_float_array(t_s)
        if times.size != rr.size:
            raise ValueError(f"t_s has {times.size} values but rr_ms has {rr.size}")
        times_given = True
    finite = np.isfinite(rr) & np.isfinite(times)
    in_range = finite & (rr >= min_rr_ms) & (rr <= max_rr_ms)
    reason = np.full(rr.size, Reason.KEPT, dtype=np.int64)
    reason[~finite] = Reason.MISSING
    reason[finite & ~in_range] = Reason.OUT_OF_RANGE
    idx = np.flatnonzero(in_range)
    if idx.size:
        # median over in-range beats only, so a 300 s "gap interval" cannot drag it
        med = median_filter(rr[idx], size=max(1, median_beats), mode="nearest")
        ectopic = np.abs(rr[idx] - med) > ectopic_threshold * med
        reason[idx[ectopic]] = Reason.ECTOPIC
    keep = reason == Reason.KEPT
    prev_kept = np.zeros(rr.size, dtype=bool)
    prev_kept[1:] = keep[:-1]
    successive_raw = prev_kept
    if times_given and rr.size > 1:
        dt_ms = np.full(rr.size, np.nan)
        dt_ms[1:] = np.diff(times) * 1000.0
        with np.errstate(invalid="ignore"):
            successive_raw = successive_raw & (np.abs(dt_ms - rr) <= gap_tolerance_ms)
    kept = np.flatnonzero(keep)
    return CleanRR(
        t_s=times[kept],
        rr_ms=rr[kept],
        successive=successive_raw[kept],
        raw_t_s=np.where(np.isfinite(times), times, np.nan),
        reason=reason,
    )
