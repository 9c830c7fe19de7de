"""Sleep, timing, regularity and rhythm fields of a ``daily`` point, from a minute series.

Pure: arrays in, fields out; :mod:`processing.dailyfeatures` calls it and
:mod:`processing.featurejobs` reads the minute series from InfluxDB.

Input (:class:`Minutes`): one value per elapsed UTC minute from ``start_ns``
(the local noon seven days before the day, so the night ending on each of
the 7 days d-6 .. d is complete) to the end of day d:

* ``hr_bpm``: mean of the minute's valid HR samples (hr_bpm > 0), NaN none;
* ``steps``: steps in the minute, NaN = no activity sample (a worn minute
  without one counts as 0 steps when the series has step data at all:
  :func:`with_zero_steps`);
* optional accelerometer epochs reduced to minutes (``counts``: activity
  counts per minute, ``angle_z_deg``: mean z-angle of the minute), from the
  gateway's epoch reduction; absent (empty) for straps without one.

Per night (noon of the day before to noon of the day, local time) the sleep
period comes from the best source present:

1. ``hdcza``: z-angle minutes -> :func:`hdcza.angle_sleep` (van Hees 2018
   window; TST/WASO from sustained inactivity, van Hees 2015).
2. ``cole_kripke``: counts -> Cole-Kripke + Webster rescoring
   (:func:`sleep.cole_kripke_webster`), periods merged over wake gaps
   <= 30 min, the longest of >= 60 min; TST/WASO by :func:`sleep.tst_waso`.
3. ``hr_rest``: HR + steps -> :func:`rest_hr.rest_period` (a heuristic,
   not validated against PSG: see that module).

Fields (NaN = undefined; ``sleep_method`` absent when no period):

* night ending on day d: ``sleep_method``, ``sleep_onset_h``,
  ``sleep_offset_h``, ``sleep_midpoint_h`` (hours from local midnight of
  day d, -12..12), ``sleep_period_min``, ``sleep_tst_min``,
  ``sleep_waso_min``; ``hr_dip_pct`` (:mod:`hr_dip`) of that night against
  the rest of the noon-to-noon stretch.
* over the 7 nights ending on d-6 .. d: ``sleep_nights_7d`` (nights with a
  period), ``sleep_midpoint_sd_h``, ``social_jetlag_h``, ``sri_7d``
  (:mod:`sleep_timing`; minutes with data: HR, or counts/angle when present).
* over local days d-6 .. d, on steps per minute (and on counts when given):
  ``steps_is_7d``, ``steps_iv_7d``, ``steps_ra_7d``, ``steps_l5_7d``,
  ``steps_m10_7d``, ``steps_l5_onset_h_7d``, ``steps_m10_onset_h_7d``
  (:mod:`circadian`), ``counts_*_7d`` likewise.
* on local day d: cosinor of minute HR (``hr_mesor_bpm``,
  ``hr_amplitude_bpm``, ``hr_acrophase_h``) and of steps per minute
  (``steps_mesor_per_min``, ``steps_amplitude_per_min``,
  ``steps_acrophase_h``), :mod:`cosinor`; ``steps_peak30_per_min``
  (:mod:`cadence`) over the day's worn minutes with a step count.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from processing.features import cadence, circadian, cosinor, hdcza, hr_dip, rest_hr, sleep
from processing.features._types import FloatArray
from processing.features.sleep_timing import midpoint_sd_h, social_jetlag_h, sri_from_periods

MINUTE_NS: Final = 60_000_000_000
DAY_MIN: Final = 1440
RHYTHM_DAYS: Final = 7
CK_MIN_PERIOD: Final = 60
RHYTHM_KEYS: Final = ("is", "iv", "ra", "l5", "m10", "l5_onset_h", "m10_onset_h")
SLEEP_FIELDS: Final = (
    "sleep_onset_h",
    "sleep_offset_h",
    "sleep_midpoint_h",
    "sleep_period_min",
    "sleep_tst_min",
    "sleep_waso_min",
    "hr_dip_pct",
)
WEEK_FIELDS: Final = ("sleep_midpoint_sd_h", "social_jetlag_h", "sri_7d")
COSINOR_FIELDS: Final = (
    "hr_mesor_bpm",
    "hr_amplitude_bpm",
    "hr_acrophase_h",
    "steps_mesor_per_min",
    "steps_amplitude_per_min",
    "steps_acrophase_h",
)
#: Float fields of this module that may be absent (NaN) on a day.
FLOAT_FIELDS: Final = (
    *SLEEP_FIELDS,
    *WEEK_FIELDS,
    *(f"{src}_{k}_7d" for src in ("steps", "counts") for k in RHYTHM_KEYS),
    *COSINOR_FIELDS,
    "steps_peak30_per_min",
)


def _empty() -> FloatArray:
    return np.zeros(0, dtype=np.float64)


@dataclass(slots=True)
class Minutes:
    """Minute series from ``start_ns`` (UTC ns); ``local_s`` = local wall-clock seconds."""

    start_ns: int
    local_s: FloatArray
    hr_bpm: FloatArray
    steps: FloatArray
    counts: FloatArray = field(default_factory=_empty)
    angle_z_deg: FloatArray = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Night:
    method: str
    onset: int  # minute index
    offset: int  # minute index after the period
    tst_min: float
    waso_min: float


def _day_local_s(day: dt.date) -> float:
    """Local midnight of ``day`` in local seconds since the epoch."""
    return float((day - dt.date(1970, 1, 1)).days * 86_400)


def _index_at(local_s: FloatArray, t_local_s: float) -> int:
    """First minute index at or after local time ``t_local_s``."""
    return int(np.searchsorted(np.maximum.accumulate(local_s), t_local_s, side="left"))


def _has(x: FloatArray, a: int, b: int) -> bool:
    return x.size >= b and bool(np.any(np.isfinite(x[a:b])))


def night_period(m: Minutes, day: dt.date) -> Night | None:
    """The sleep period of the night ending on the morning of ``day`` (None if none)."""
    midnight = _day_local_s(day)
    a = _index_at(m.local_s, midnight - 43_200)
    b = _index_at(m.local_s, midnight + 43_200)
    if b - a < DAY_MIN // 2:
        return None
    if _has(m.angle_z_deg, a, b):
        res = hdcza.angle_sleep(m.angle_z_deg[a:b], 60.0)
        if res is None:
            return None
        return Night("hdcza", a + res.onset, a + res.offset, res.tst_min, res.waso_min)
    if _has(m.counts, a, b):
        state = sleep.cole_kripke_webster(m.counts[a:b])
        grid = np.datetime64(0, "m") + np.arange(b - a)
        periods = sleep.sleep_periods(grid, state, min_period=CK_MIN_PERIOD)
        if not periods:
            return None
        p = max(periods, key=lambda x: x.in_bed_min)
        on = int((p.onset - grid[0]).astype(np.int64))
        off = int((p.offset - grid[0]).astype(np.int64))
        ts = sleep.tst_waso(state, on, off)
        return Night("cole_kripke", a + on, a + off, ts.tst_min, ts.waso_min)
    rest = rest_hr.rest_period(m.hr_bpm[a:b], m.steps[a:b])
    if rest is None:
        return None
    return Night("hr_rest", a + rest.onset, a + rest.offset, rest.tst_min, rest.waso_min)


def _clock_h(m: Minutes, index: int, day: dt.date) -> float:
    """Hours from local midnight of ``day`` of the start of minute ``index``."""
    if index >= m.local_s.size:
        return (m.local_s[-1] + 60.0 - _day_local_s(day)) / 3600.0
    return (m.local_s[index] - _day_local_s(day)) / 3600.0


def night_fields(m: Minutes, day: dt.date, night: Night | None) -> dict[str, float | str]:
    """The night's :data:`SLEEP_FIELDS` and ``sleep_method`` (absent without a period)."""
    if night is None:
        return {name: math.nan for name in SLEEP_FIELDS}
    onset_h = _clock_h(m, night.onset, day)
    offset_h = _clock_h(m, night.offset, day)
    midnight = _day_local_s(day)
    a = _index_at(m.local_s, midnight - 43_200)
    b = _index_at(m.local_s, midnight + 43_200)
    inside = np.zeros(b - a, dtype=bool)
    inside[night.onset - a : night.offset - a] = True
    return {
        "sleep_method": night.method,
        "sleep_onset_h": onset_h,
        "sleep_offset_h": offset_h,
        "sleep_midpoint_h": (onset_h + offset_h) / 2.0,
        "sleep_period_min": float(night.offset - night.onset),
        "sleep_tst_min": night.tst_min,
        "sleep_waso_min": night.waso_min,
        "hr_dip_pct": hr_dip.hr_dip_pct(m.hr_bpm[a:b], inside),
    }


def _labels(m: Minutes) -> np.ndarray:
    return np.floor(m.local_s / 60.0).astype(np.int64).astype("datetime64[m]")


def rhythm_fields(m: Minutes, day: dt.date) -> dict[str, float]:
    """IS/IV/RA/L5/M10 over local days d-6 .. d of steps (and counts) per minute."""
    first = _index_at(m.local_s, _day_local_s(day - dt.timedelta(days=RHYTHM_DAYS - 1)))
    last = _index_at(m.local_s, _day_local_s(day + dt.timedelta(days=1)))
    labels = _labels(m)[first:last]
    out: dict[str, float] = {}
    for src, values in (("steps", m.steps), ("counts", m.counts)):
        if values.size < last:
            out.update({f"{src}_{k}_7d": math.nan for k in RHYTHM_KEYS})
            continue
        c = circadian.circadian_features(labels, values[first:last]).as_dict()
        out.update({f"{src}_{k}_7d": float(c[k]) for k in RHYTHM_KEYS})
    return out


def week_fields(
    m: Minutes, day: dt.date, nights: dict[dt.date, Night | None]
) -> dict[str, float | int]:
    """Midpoint SD, social jet lag and SRI over the 7 nights ending on d-6 .. d."""
    mids: dict[dt.date, float] = {}
    periods: list[tuple[int, int]] = []
    for k, night in nights.items():
        if night is not None:
            mids[k] = (_clock_h(m, night.onset, k) + _clock_h(m, night.offset, k)) / 2.0
            periods.append((night.onset, night.offset))
    a = _index_at(m.local_s, _day_local_s(day - dt.timedelta(days=RHYTHM_DAYS)) + 43_200)
    b = _index_at(m.local_s, _day_local_s(day) + 43_200)
    valid = np.isfinite(m.hr_bpm)
    for extra in (m.counts, m.angle_z_deg):
        if extra.size == valid.size:
            valid |= np.isfinite(extra)
    shifted = [(p - a, q - a) for p, q in periods]
    return {
        "sleep_nights_7d": len(mids),
        "sleep_midpoint_sd_h": midpoint_sd_h(mids),
        "social_jetlag_h": social_jetlag_h(mids),
        "sri_7d": sri_from_periods(valid[a:b], shifted),
    }


def day_fields(m: Minutes, day: dt.date, worn: np.ndarray | None = None) -> dict[str, float]:
    """Cosinor of HR and steps over local day d, and the peak-30 cadence."""
    a = _index_at(m.local_s, _day_local_s(day))
    b = _index_at(m.local_s, _day_local_s(day + dt.timedelta(days=1)))
    t_h = (m.local_s[a:b] % 86_400) / 3600.0
    hr = cosinor.cosinor(t_h, m.hr_bpm[a:b])
    steps = m.steps[a:b] if m.steps.size >= b else np.full(b - a, np.nan)
    st = cosinor.cosinor(t_h, steps)
    if worn is None:
        worn = np.isfinite(m.hr_bpm[a:b]) if np.any(np.isfinite(m.hr_bpm[a:b])) else None
    day_steps = steps if worn is None else np.where(worn, steps, np.nan)
    return {
        "hr_mesor_bpm": hr.mesor,
        "hr_amplitude_bpm": hr.amplitude,
        "hr_acrophase_h": hr.acrophase_h,
        "steps_mesor_per_min": st.mesor,
        "steps_amplitude_per_min": st.amplitude,
        "steps_acrophase_h": st.acrophase_h,
        "steps_peak30_per_min": cadence.peak_cadence(day_steps),
    }


def with_zero_steps(m: Minutes) -> Minutes:
    """Worn minutes (with HR) without an activity sample count as 0 steps.

    A strap sends steps only while its wearer moves (RSC), so a worn minute
    without a sample took no steps. Only when the series has any step data
    at all: a device without a step stream keeps NaN (no step features).
    """
    if m.steps.size != m.hr_bpm.size or not np.any(np.isfinite(m.steps)):
        return m
    steps = np.where(np.isnan(m.steps) & np.isfinite(m.hr_bpm), 0.0, m.steps)
    return Minutes(m.start_ns, m.local_s, m.hr_bpm, steps, m.counts, m.angle_z_deg)


def sleep_rhythm_fields(
    m: Minutes, day: dt.date
) -> tuple[dict[str, float | int | str], Night | None]:
    """Every field above, and the night ending on ``day`` (for the nocturnal HRV)."""
    m = with_zero_steps(m)
    nights = {
        day - dt.timedelta(days=k): night_period(m, day - dt.timedelta(days=k))
        for k in range(RHYTHM_DAYS - 1, -1, -1)
    }
    out: dict[str, float | int | str] = {}
    out.update(night_fields(m, day, nights[day]))
    out.update(week_fields(m, day, nights))
    out.update(rhythm_fields(m, day))
    out.update(day_fields(m, day))
    # plain Python numbers: line protocol formats them (repr of np.float64 is not a number)
    clean = {k: v if isinstance(v, str | int) else float(v) for k, v in out.items()}
    return clean, nights[day]


def epochs_to_minutes(
    start_ns: int, n_minutes: int, epoch_t_ns: np.ndarray, values: FloatArray, *, how: str
) -> FloatArray:
    """Accelerometer epochs (30 or 60 s) onto the minute grid: ``how`` = "sum" or "mean"."""
    t = np.asarray(epoch_t_ns, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    idx = (t - start_ns) // MINUTE_NS
    ok = (idx >= 0) & (idx < n_minutes) & np.isfinite(v)
    cnt = np.bincount(idx[ok], minlength=n_minutes)
    tot = np.bincount(idx[ok], weights=v[ok], minlength=n_minutes)
    with np.errstate(invalid="ignore", divide="ignore"):
        res = tot if how == "sum" else tot / np.maximum(cnt, 1)
    return np.where(cnt > 0, res, np.nan)
