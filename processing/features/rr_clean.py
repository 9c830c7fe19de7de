"""RR-interval artefact handling, gap detection and per-window quality.

A BLE chest strap reports RR intervals (ms); the gateway knows (or reconstructs)
the time of each beat. This module turns that raw stream into NN intervals:

1. **Missing values** (NaN, inf) are dropped.
2. **Range rule:** ``min_rr_ms <= RR <= max_rr_ms`` (default 300..2000 ms,
   i.e. 30..200 bpm). Anything longer is a lost connection or a missed run of
   beats, not an interval, and is treated as a gap.
3. **Artefact beats** among the in-range intervals, by the adaptive beat
   classification of Lipponen & Tarvainen (2019), the method of Kubios HRV
   and of NeuroKit2's ``signal_fixpeaks(method="kubios")`` (see
   :func:`classify_beats` for the formulas). Its thresholds scale with the
   local spread of the series, so sinus rhythm with strong respiratory sinus
   arrhythmia (young people, sleep, slow breathing) is kept, where a fixed
   20 % rule rejects the top of each breath. One addition of this project:
   no threshold is below 10 % of the local median RR, so the quantisation
   jitter of very regular stretches is not taken for artefacts. What is
   rejected, per class:

   * *ectopic* (a short-long or long-short pair around one beat): both
     intervals that share the beat, so no successive difference crosses it;
   * *missed* beat (one interval of about two normal ones): that interval is
     **rejected, not split**. Halving it would invent a beat and a successive
     difference of exactly 0 ms, biasing RMSSD/pNN50 down; the spline of the
     frequency domain bridges the hole anyway;
   * *extra* beat (two short intervals adding up to a normal one): **both are
     rejected, not merged**. A strap sends intervals, not the ECG, so the
     merge cannot be checked, and a merged interval is not an input interval
     (the per-interval ``reason`` accounting needs one);
   * *long/short* (any other outlier): that interval.

   ``method="malik20"`` keeps the former rule: ``|RR_k - med_k| > 0.2 med_k``
   with ``med_k`` the centred median of 11 in-range intervals (Malik et al.
   1989). It rejects real rhythms with > 20 % RSA; it is kept for comparison.
4. **Gaps:** a kept interval is *successive* only if the previous input
   interval was kept and, when beat times are given, the beat times agree with
   the interval: ``|1000 (t_k - t_{k-1}) - RR_k| <= gap_tolerance_ms``
   (NeuroKit2's rule, 10 ms). Successive differences, Poincaré pairs, DFA
   segments and SampEn templates never cross a non-successive point.

References: Lipponen JA, Tarvainen MP (2019) A robust algorithm for heart rate
variability time series artefact correction using novel beat classification.
J Med Eng Technol 43(3):173-181. Malik M, Cripps T, Farrell T, Camm AJ (1989)
Med Biol Eng Comput 27:603-611. Task Force of the ESC/NASPE (1996)
Circulation 93:1043-1065.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.ndimage import median_filter

from ._types import BoolArray, FloatArray, IntArray, as_float_array

MIN_RR_MS = 300.0
MAX_RR_MS = 2000.0
GAP_TOLERANCE_MS = 10.0
# Lipponen & Tarvainen 2019 (their published constants)
LT_ALPHA = 5.2  # threshold = alpha x quartile deviation
LT_C1 = 0.13  # slope of the ectopic decision boundary in (dRR, S12)
LT_C2 = 0.17  # its offset
LT_THRESHOLD_BEATS = 91  # centred window of the quartile deviation
LT_MEDIAN_BEATS = 11  # centred window of the median RR
LT_MIN_THRESHOLD_FRAC = 0.1  # this project: thresholds >= 10 % of median RR (classify_beats)
# the former rule, method="malik20"
ECTOPIC_THRESHOLD = 0.2
MEDIAN_BEATS = 11

Method = Literal["lipponen2019", "malik20"]
DEFAULT_METHOD: Method = "lipponen2019"
_ROW_CHUNK = 16_384  # rows of a rolling window sorted at once (memory bound)


class Reason(enum.IntEnum):
    """Why an input interval was kept or rejected."""

    KEPT = 0
    MISSING = 1
    OUT_OF_RANGE = 2
    ECTOPIC = 3  # an interval next to an ectopic beat (malik20: any outlier)
    MISSED = 4  # about two intervals: a beat was not detected
    EXTRA = 5  # one of two short intervals around a spurious beat
    LONG_SHORT = 6  # any other outlying interval


ARTEFACT_REASONS = (Reason.ECTOPIC, Reason.MISSED, Reason.EXTRA, Reason.LONG_SHORT)


class Quality(enum.IntFlag):
    """Quality flags of one HRV window (0 = all good).

    Any of NO_BEATS, TOO_FEW_BEATS, LOW_COVERAGE, MANY_ARTEFACTS, CLOCK_STEP makes every
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
    #: the gateway clock stepped back over this window: its beats belong to two
    #: timelines (set by processing's feature job, processing/clocksteps.py)
    CLOCK_STEP = enum.auto()


BLOCKING = (
    Quality.NO_BEATS
    | Quality.TOO_FEW_BEATS
    | Quality.LOW_COVERAGE
    | Quality.MANY_ARTEFACTS
    | Quality.CLOCK_STEP
)


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


# --------------------------------------------------------------------------- Lipponen & Tarvainen


def _rolling_quantiles(x: FloatArray, width: int, qs: tuple[float, ...]) -> list[FloatArray]:
    """Quantiles (linear interpolation) of centred windows of ``width`` values.

    Near the ends the window is cut short rather than padded (as pandas'
    ``rolling(width, center=True, min_periods=1)``), so the first and last
    beats are judged against the beats that exist.
    """
    n = x.size
    half = width // 2
    width = 2 * half + 1
    padded = np.concatenate((np.full(half, np.nan), x, np.full(half, np.nan)))
    rows = np.lib.stride_tricks.sliding_window_view(padded, width)
    k = np.arange(n)
    count = np.minimum(k + half, n - 1) - np.maximum(k - half, 0) + 1
    out = [np.empty(n) for _ in qs]
    for lo in range(0, n, _ROW_CHUNK):
        hi = min(lo + _ROW_CHUNK, n)
        srt = np.sort(rows[lo:hi], axis=1)  # NaN padding sorts to the end
        m = count[lo:hi]
        r = np.arange(hi - lo)
        for j, q in enumerate(qs):
            pos = q * (m - 1)
            below = np.floor(pos).astype(np.int64)
            above = np.minimum(below + 1, m - 1)
            v0 = srt[r, below]
            out[j][lo:hi] = v0 + (pos - below) * (srt[r, above] - v0)
    return out


def _threshold(values: FloatArray, alpha: float, width: int, floor: FloatArray) -> FloatArray:
    """``alpha`` x quartile deviation of ``|values|`` over centred windows, at least ``floor``."""
    q1, q3 = _rolling_quantiles(np.abs(values), width, (0.25, 0.75))
    return np.maximum(alpha * (q3 - q1) / 2.0, floor)


def _neighbour(x: FloatArray, shift: int) -> FloatArray:
    """``x[k + shift]`` with mirror reflection at the ends (``np.pad`` mode "reflect")."""
    pad = abs(shift)
    return np.pad(x, pad, mode="reflect")[pad + shift : pad + shift + x.size]


def classify_beats(
    rr_ms: FloatArray,
    *,
    alpha: float = LT_ALPHA,
    c1: float = LT_C1,
    c2: float = LT_C2,
    threshold_beats: int = LT_THRESHOLD_BEATS,
    median_beats: int = LT_MEDIAN_BEATS,
    min_threshold_frac: float = LT_MIN_THRESHOLD_FRAC,
) -> IntArray:
    """Artefact class of each interval (Lipponen & Tarvainen 2019); 0 = normal.

    ``rr_ms``: consecutive in-range intervals (ms), all finite. Returns a
    :class:`Reason` code per interval *where the artefact was classified*
    (ECTOPIC at the second interval of the short-long/long-short pair, EXTRA
    at the first of the two short ones); :func:`artefact_reasons` widens that
    to every interval to reject. All quantities below are per interval k:

    * ``dRR_k = RR_k - RR_{k-1}`` (``dRR_0 = 0``), normalised by
      ``Th1_k = alpha * QD_k(|dRR|)``, where QD is the quartile deviation
      ``(Q3 - Q1) / 2`` over the ``threshold_beats`` (91) centred beats.
    * ``mRR_k = RR_k - med_k`` (``med_k``: median of the ``median_beats``
      (11) centred intervals), doubled where negative, normalised by
      ``Th2_k = alpha * QD_k(|mRR|)``.
    * Subspaces: ``S11 = dRR_k``; ``S12 = max(dRR_{k-1}, dRR_{k+1})`` if
      ``dRR_k > 0``, min if < 0; ``S22 = min(dRR_{k+1}, dRR_{k+2})`` if
      ``dRR_k >= 0``, max if < 0 (mirror-reflected at the ends).
    * A beat with ``|dRR_k| > 1`` is **ectopic** when ``dRR_k > 1 and S12 <
      -c1 dRR_k - c2`` or ``dRR_k < -1 and S12 > -c1 dRR_k + c2``. Otherwise
      it, and the next one when ``|dRR_{k+1}| < |dRR_{k+2}|``, is tested
      for *long* (``dRR > 1 and S22 < -1``), *long or short* (``|mRR| > 3``)
      and *short* (``dRR < -1 and S22 > 1``): a short one with ``|RR_k +
      RR_{k+1} - med_k| < Th2_k`` is **extra**; a long one with
      ``|RR_k / 2 - med_k| < Th2_k`` is **missed**; the rest **long/short**.
      A beat so tested as "the next one" is not itself a starting beat (the
      sequential scan of the paper's Fig. 1, resolved here without a loop).

    Constants alpha = 5.2, c1 = 0.13, c2 = 0.17 are the paper's. One addition
    of this project: both thresholds are at least ``min_threshold_frac`` (10 %)
    of ``med_k``. Holter and strap intervals are quantised (7.8 ms at 128 Hz),
    so in a regular stretch the quartile deviation collapses to a step or two
    and the paper's rule (and NeuroKit2's) flags jitter as artefacts: a median
    3.4 % (nsr2db) and 5.1 % (chf2db) of beats, 1.4 % of the artefact-filtered
    healthy-irurzun records; the beats only it flags jump by a median 4-8 % of
    RR (``bench/artefacts.py``). With the floor no beat is classified unless
    its interval differs from the previous one by more than 10 % of ``med_k``
    or lies more than 30 % above (15 % below) ``med_k``. Premature beats
    (typically 20-50 % early) are still caught, except where strong, fast
    RSA swings as much from beat to beat (limits in docs/features.md).
    The last two intervals are never starting beats (the paper needs
    ``dRR_{k+2}``). Single pass: NeuroKit2 with ``iterative=True`` corrects
    and classifies again; rejecting instead of correcting has no second pass.
    """
    x = as_float_array(rr_ms)
    n = x.size
    cls = np.zeros(n, dtype=np.int64)
    if n < 3:
        return cls
    (med,) = _rolling_quantiles(x, median_beats, (0.5,))
    floor = min_threshold_frac * med
    d = np.zeros(n)
    d[1:] = np.diff(x)
    dn = d / _threshold(d, alpha, threshold_beats, floor)
    m = x - med
    m[m < 0] *= 2.0
    th2 = _threshold(m, alpha, threshold_beats, floor)
    mn = m / th2

    prev, nxt, nxt2 = _neighbour(dn, -1), _neighbour(dn, 1), _neighbour(dn, 2)
    s12 = np.where(dn > 0, np.maximum(prev, nxt), np.where(dn < 0, np.minimum(prev, nxt), 0.0))
    s22 = np.where(dn >= 0, np.minimum(nxt, nxt2), np.maximum(nxt, nxt2))

    k = np.arange(n)
    big = (np.abs(dn) > 1) & (k < n - 2)
    ectopic = ((dn > 1) & (s12 < -c1 * dn - c2)) | ((dn < -1) & (s12 > -c1 * dn + c2))
    also_next = np.abs(nxt) < np.abs(nxt2)
    # The paper scans beats in order; a starting beat that is not ectopic and
    # also tests the next beat makes the scan skip that next beat. Along a run
    # of such beats every other one starts, the others are skipped.
    chain = big & ~ectopic & also_next
    run_start = chain & ~np.concatenate(([False], chain[:-1]))
    first_of_run = np.maximum.accumulate(np.where(run_start, k, 0))
    covers = chain & ((k - first_of_run) % 2 == 0)
    covered = np.concatenate(([False], covers[:-1]))
    start = big & ~covered

    cand = (start & ~ectopic) | covered
    is_long = (dn > 1) & (s22 < -1)
    is_short = (dn < -1) & (s22 > 1)
    outlier = cand & (is_long | is_short | (np.abs(mn) > 3))
    pair_sum = x + np.concatenate((x[1:], [np.nan]))
    with np.errstate(invalid="ignore"):
        extra = outlier & is_short & (np.abs(pair_sum - med) < th2)
    missed = outlier & ~extra & is_long & (np.abs(x / 2.0 - med) < th2)
    cls[outlier] = Reason.LONG_SHORT
    cls[missed] = Reason.MISSED
    cls[extra] = Reason.EXTRA
    cls[start & ectopic] = Reason.ECTOPIC
    return cls


def artefact_reasons(cls: IntArray) -> IntArray:
    """Reason per interval to reject, from :func:`classify_beats`' classes.

    Ectopic at k rejects k-1 and k (the beat between them is the ectopic
    one); extra at k rejects k and k+1; missed and long/short reject k.
    An interval hit twice keeps the first reason in that order.
    """
    n = cls.size
    out = np.zeros(n, dtype=np.int64)
    for reason, spread in (
        (Reason.ECTOPIC, (-1, 0)),
        (Reason.EXTRA, (0, 1)),
        (Reason.MISSED, (0,)),
        (Reason.LONG_SHORT, (0,)),
    ):
        at = np.flatnonzero(cls == reason)
        for s in spread:
            j = at + s
            j = j[(j >= 0) & (j < n)]
            j = j[out[j] == 0]
            out[j] = reason
    return out


def _malik20(rr_ms: FloatArray, ectopic_threshold: float, median_beats: int) -> IntArray:
    """The former rule: ``|RR_k - med_k| > ectopic_threshold * med_k`` (Malik et al. 1989)."""
    med = median_filter(rr_ms, size=max(1, median_beats), mode="nearest")
    return np.where(np.abs(rr_ms - med) > ectopic_threshold * med, Reason.ECTOPIC, 0).astype(
        np.int64
    )


def clean_rr(
    rr_ms: FloatArray,
    t_s: FloatArray | None = None,
    *,
    min_rr_ms: float = MIN_RR_MS,
    max_rr_ms: float = MAX_RR_MS,
    method: Method = DEFAULT_METHOD,
    ectopic_threshold: float = ECTOPIC_THRESHOLD,
    median_beats: int = MEDIAN_BEATS,
    gap_tolerance_ms: float = GAP_TOLERANCE_MS,
) -> CleanRR:
    """Reject impossible, artefact and missing intervals and mark gaps.

    ``rr_ms``: intervals in ms. ``t_s``: time (s) of the beat that *ends* each
    interval; if omitted it is the running sum of ``rr_ms`` (so an over-long
    "interval" such as a 300 s signal loss still moves the clock on).
    ``method``: ``"lipponen2019"`` (default, :func:`classify_beats`) or
    ``"malik20"`` (the former 20 % rule; ``ectopic_threshold`` and
    ``median_beats`` apply to it only). Artefacts are sought among the
    in-range intervals only, so a 300 s "gap interval" cannot move a median
    or a threshold. Never raises on bad values; empty input gives empty arrays.
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
        if method == "lipponen2019":
            artefact = artefact_reasons(classify_beats(rr[idx]))
        elif method == "malik20":
            artefact = _malik20(rr[idx], ectopic_threshold, median_beats)
        else:
            raise ValueError(f"unknown artefact method {method!r}")
        hit = artefact != 0
        reason[idx[hit]] = artefact[hit]
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
