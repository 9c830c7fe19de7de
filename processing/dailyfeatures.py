"""The fields of one ``daily`` point, from one participant's stored data of one local day.

Pure: arrays in, a dict of fields out. :mod:`processing.featurejobs` queries
the inputs from InfluxDB and writes the result; the unit tests call
:func:`daily_fields` directly. Every physiological number comes from the
feature library (``processing.features``); this module only chooses inputs
and parameters for the service's data and documents them (docs/storage.md).

Per participant and local day [start, end) (23, 24 or 25 hours):

* completeness (:func:`processing.completeness.daily_completeness`) and the
  daily HR summary (``heart_rate.daily_hr``) as before.
* ``resting_hr_bpm`` (bpm): ``heart_rate.resting_hr_by_night`` on the day's
  valid HR samples (``hr_bpm > 0``, contact not reported lost) on the local
  wall clock: the lowest mean of a 5-min bin starting 00:00-06:00 local time
  with a sample in >= 80 % of its minutes and HR SD <= 5 bpm. The night that ends on the
  morning of day d lies inside day d, so the unit stays self-contained.
* ``ln_rmssd_night`` (ln ms): ``night_hrv.nocturnal_hrv`` over the day's
  ``hrv_window`` points (windows starting from noon of the day before; a
  window stored both by the server and by a gateway counts once, the
  server's value): the median of ln RMSSD over the usable windows lying
  wholly inside the sleep period of the night that ends on the morning of
  the day, or inside 00:00-06:00 local time of that night when no period
  was detected (see the sleep item below). *Usable*: no quality
  flag that leaves RMSSD undefined (``night_hrv.usable_quality``).
  ``hrv_night_windows`` (int) counts that night's windows with RR data and
  ``hrv_night_usable_fraction`` (0..1) the usable share, which the
  ``quality-hrv-low`` rule reads. Daytime windows stay in ``hrv_window``.
* activity from the wearable's step stream. Steps per minute s_m = sum of
  the ``steps`` of the activity samples stamped in elapsed minute m of the
  day (a sample's steps cover the time since the previous sample; sent at
  >= 1 Hz by the gateway); a minute without an activity sample is missing.
  A minute is *worn* if it holds a valid HR sample (the ``wear_min``
  definition); on a day without any HR sample every minute with activity
  data counts. ``activity.daily_activity`` over the worn minutes with a step
  count (needs >= 600, Troiano et al. 2008) gives, for the W such minutes:
  ``steps_mean_per_min`` = sum(s_m)/W, ``steps_sd_per_min`` (ddof=1),
  ``steps_zero_fraction`` = #(s_m = 0)/W and ``steps_mvpa_min`` =
  #(s_m >= 100) (100 steps/min ~ 3 METs, moderate intensity: Tudor-Locke et
  al. 2018, Br J Sports Med 52:776). The ``steps_`` prefix keeps them apart
  from the accelerometer-count features (``counts_*``) of actigraphy files.
  No sedentary minutes are stored: that cut point is for accelerometer
  counts and no step cadence cut point is established (a minute without
  steps is in ``steps_zero_fraction``).
* sleep, timing, regularity and rhythm (:mod:`processing.dailysleep`): the
  night ending on the day (sleep period from HDCZA, Cole-Kripke or the HR +
  steps rest detector, whichever the data allow, with ``sleep_method``),
  TST/WASO, HR dip, the 7-night midpoint SD, social jet lag and SRI, the
  7-day IS/IV/RA/L5/M10 of steps (and counts), the day's cosinor of HR and
  steps and its peak-30 cadence, from a minute series that starts at local
  noon seven days before (``DailyInputs.minutes``; without one, the day's
  own samples). When the night's sleep period is known, ``ln_rmssd_night``
  uses the windows wholly inside it instead of 00:00-06:00 (windows are read
  from noon of the day before).
* for each of :data:`BASELINE_FEATURES`: ``<feature>_z`` and
  ``<feature>_robust_z`` from ``baseline.rolling_baseline`` over the values
  of the previous 28 local days (>= 7 valid) as stored in earlier ``daily``
  points (day d itself excluded); absent while not established or when the
  baseline's SD / MAD is 0. ``baseline_established`` (bool) is true when
  every baseline feature defined today has an established baseline, false
  otherwise (also when none is defined).

References: Plews DJ et al. (2013) Sports Med 43:773-781 (ln RMSSD).
Tudor-Locke C et al. (2018) Br J Sports Med 52:776-788.
Troiano RP et al. (2008) Med Sci Sports Exerc 40:181-188. Baseline and HR
references are in the modules used (docs/features.md).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np

from processing.completeness import daily_completeness
from processing.dailysleep import FLOAT_FIELDS as SLEEP_RHYTHM_FIELDS
from processing.dailysleep import Minutes, Night, sleep_rhythm_fields
from processing.features._types import FloatArray, IntArray
from processing.features.activity import daily_activity
from processing.features.baseline import MIN_DAYS, WINDOW_DAYS, rolling_baseline
from processing.features.heart_rate import daily_hr, resting_hr_by_night
from processing.features.night_hrv import nocturnal_hrv

NS: Final = 1_000_000_000
MINUTE_NS: Final = 60 * NS
HOUR_NS: Final = 3600 * NS
DAY_S: Final = 86_400
LAST_SECOND_OF_DAY: Final = 86_399.999

#: Cadence cut point for moderate-to-vigorous minutes (steps/min), Tudor-Locke 2018.
MVPA_STEPS_PER_MIN: Final = 100.0
ACTIVITY_FIELDS: Final = (
    "steps_mean_per_min",
    "steps_sd_per_min",
    "steps_zero_fraction",
    "steps_mvpa_min",
)
#: Daily features with a personal baseline (``<f>_z``, ``<f>_robust_z``).
BASELINE_FEATURES: Final = ("resting_hr_bpm", "ln_rmssd_night", *ACTIVITY_FIELDS)
DAILY_HR_KEYS: Final = ("hr_mean", "hr_p5", "hr_p50", "hr_p95")
#: Float fields that are absent when undefined: if a recomputation loses one,
#: the old point must be deleted first (see ``featurejobs.stale_fields_possible``).
OPTIONAL_FIELDS: Final = (
    *DAILY_HR_KEYS,
    *BASELINE_FEATURES,
    "hrv_night_usable_fraction",
    *(f"{f}_{s}" for f in BASELINE_FEATURES for s in ("z", "robust_z")),
    *SLEEP_RHYTHM_FIELDS,
    "sleep_method",
)
#: Stored fields read back from earlier days: the baseline features, plus fields
#: that change whenever a day's HR or sleep changes, so a late change to a day
#: also recomputes the later days whose 7-day rhythm and night read its minutes.
HISTORY_FIELDS: Final = (
    *BASELINE_FEATURES,
    "hr_mean",
    "wear_min",
    "steps_total",
    "sleep_onset_h",
    "sleep_offset_h",
)


def _empty_int() -> IntArray:
    return np.zeros(0, dtype=np.int64)


def _empty_float() -> FloatArray:
    return np.zeros(0, dtype=np.float64)


@dataclass(slots=True)
class DailyInputs:
    """What one daily unit reads from storage (times are UTC ns).

    ``history`` maps each local date before ``day`` (at most
    :data:`~processing.features.baseline.WINDOW_DAYS` back) to the baseline
    feature values its stored ``daily`` point holds.
    """

    start_ns: int
    end_ns: int
    day: dt.date
    timezone: str
    hr_t: IntArray = field(default_factory=_empty_int)
    hr_bpm: FloatArray = field(default_factory=_empty_float)
    contact_lost: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    rr_beats: int = 0
    act_t: IntArray = field(default_factory=_empty_int)
    steps: FloatArray = field(default_factory=_empty_float)
    window_t: IntArray = field(default_factory=_empty_int)
    window_rmssd: FloatArray = field(default_factory=_empty_float)
    window_usable: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    window_s: int = 300
    history: Mapping[dt.date, Mapping[str, float]] = field(default_factory=dict)
    minutes: Minutes | None = None

    def has_data(self) -> bool:
        """A daily point exists for days with stored HR or activity steps."""
        return bool(self.hr_bpm.size or self.steps.size)


def local_seconds(t_ns: IntArray, timezone: str) -> FloatArray:
    """Local wall-clock seconds since the epoch: UTC seconds + the zone's UTC offset.

    The offset is looked up once per UTC hour (zones change offset on hour or
    half-hour boundaries of UTC; a half-hour change is resolved per hour).
    """
    t = np.asarray(t_ns, dtype=np.int64)
    if t.size == 0:
        return np.zeros(0)
    tz = ZoneInfo(timezone)
    hours, idx = np.unique(t // HOUR_NS, return_inverse=True)
    zero = dt.timedelta()
    offsets = np.zeros(hours.size)
    for i, h in enumerate(hours.tolist()):
        offsets[i] = (dt.datetime.fromtimestamp(h * 3600, tz).utcoffset() or zero).total_seconds()
    return t / NS + offsets[idx]


def resting_hr(inputs: DailyInputs, valid: np.ndarray) -> float:
    """``resting_hr_bpm`` of the night that ends on the morning of ``inputs.day`` (NaN if none)."""
    if not np.any(valid):
        return math.nan
    t_local = local_seconds(inputs.hr_t[valid], inputs.timezone)
    nights = resting_hr_by_night(t_local, inputs.hr_bpm[valid])
    return float(nights.get(np.datetime64(inputs.day, "D"), math.nan))


def night_hrv_fields(
    inputs: DailyInputs, period_s: tuple[float, float] | None = None
) -> dict[str, float | int]:
    """``ln_rmssd_night`` and the night's window counts (the night ending on ``inputs.day``).

    ``period_s``: the night's sleep period (local seconds), else the clock night.
    """
    start_s = local_seconds(inputs.window_t, inputs.timezone)
    nights = nocturnal_hrv(
        start_s,
        inputs.window_rmssd,
        inputs.window_usable,
        window_s=float(inputs.window_s),
        sleep_periods_s=None if period_s is None else [period_s],
    )
    night = nights.get(np.datetime64(inputs.day, "D"))
    if night is None:
        return {
            "ln_rmssd_night": math.nan,
            "hrv_night_windows": 0,
            "hrv_night_usable_fraction": math.nan,
        }
    return {
        "ln_rmssd_night": night.ln_rmssd_night,
        "hrv_night_windows": night.hrv_night_windows,
        "hrv_night_usable_fraction": night.hrv_night_usable_fraction,
    }


def minute_grid(inputs: DailyInputs, valid_hr: np.ndarray) -> tuple[FloatArray, np.ndarray]:
    """Steps per elapsed minute of the day (NaN = no activity sample) and the worn mask."""
    n = max(1, -(-(inputs.end_ns - inputs.start_ns) // MINUTE_NS))
    steps = np.full(n, np.nan)
    if inputs.act_t.size:
        idx = np.clip((inputs.act_t - inputs.start_ns) // MINUTE_NS, 0, n - 1)
        s = np.asarray(inputs.steps, dtype=np.float64)
        ok = np.isfinite(s)
        seen = np.bincount(idx[ok], minlength=n) > 0
        total = np.bincount(idx[ok], weights=s[ok], minlength=n)
        steps = np.where(seen, total, np.nan)
    if inputs.hr_t.size:
        worn = np.zeros(n, dtype=bool)
        hr_idx = np.clip((inputs.hr_t[valid_hr] - inputs.start_ns) // MINUTE_NS, 0, n - 1)
        worn[hr_idx] = True
    else:
        worn = np.isfinite(steps)
    return steps, worn


def day_minutes(inputs: DailyInputs, valid_hr: np.ndarray) -> Minutes:
    """The day's own minute series (when no longer series was read)."""
    steps, _ = minute_grid(inputs, valid_hr)
    n = steps.size
    hr = np.full(n, np.nan)
    if np.any(valid_hr):
        idx = np.clip((inputs.hr_t[valid_hr] - inputs.start_ns) // MINUTE_NS, 0, n - 1)
        cnt = np.bincount(idx, minlength=n)
        tot = np.bincount(idx, weights=inputs.hr_bpm[valid_hr], minlength=n)
        hr = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    t = inputs.start_ns + np.arange(n, dtype=np.int64) * MINUTE_NS
    return Minutes(inputs.start_ns, local_seconds(t, inputs.timezone), hr, steps)


def period_local_s(m: Minutes, night: Night | None) -> tuple[float, float] | None:
    """A night's sleep period as local seconds [onset, offset), or None."""
    if night is None or night.offset <= night.onset:
        return None
    return float(m.local_s[night.onset]), float(m.local_s[night.offset - 1]) + 60.0


def activity_fields(inputs: DailyInputs, valid_hr: np.ndarray) -> dict[str, float]:
    """The ``steps_*`` activity fields (:data:`ACTIVITY_FIELDS`) over the worn minutes."""
    steps, worn = minute_grid(inputs, valid_hr)
    label = np.full(steps.size, np.datetime64(inputs.day, "m"))
    result = daily_activity(label, steps, worn, kind="steps", mvpa_min=MVPA_STEPS_PER_MIN)
    if result.day.size == 0:
        return {name: math.nan for name in ACTIVITY_FIELDS}
    return {name: float(result.features[name][0]) for name in ACTIVITY_FIELDS}


def baseline_fields(
    day: dt.date,
    today: Mapping[str, float],
    history: Mapping[dt.date, Mapping[str, float]],
    *,
    window_days: int = WINDOW_DAYS,
    min_days: int = MIN_DAYS,
) -> dict[str, float | bool]:
    """``<f>_z``, ``<f>_robust_z`` and ``baseline_established`` for :data:`BASELINE_FEATURES`."""
    out: dict[str, float | bool] = {}
    past = sorted(d for d in history if d < day)
    labels = np.array([*past, day], dtype="datetime64[D]")
    established_all = True
    defined = 0
    for name in BASELINE_FEATURES:
        x_today = float(today.get(name, math.nan))
        values = np.array(
            [float(history[d].get(name, math.nan)) for d in past] + [x_today], dtype=np.float64
        )
        b = rolling_baseline(labels, values, window_days=window_days, min_days=min_days)
        out[f"{name}_z"] = float(b.z[-1])
        out[f"{name}_robust_z"] = float(b.robust_z[-1])
        if math.isfinite(x_today):
            defined += 1
            established_all &= bool(b.established[-1])
    out["baseline_established"] = defined > 0 and established_all
    return out


def daily_fields(inputs: DailyInputs) -> dict[str, float | int | bool | str]:
    """Every field of the day's ``daily`` point (NaN = undefined, left out when written)."""
    hr_t, hr = inputs.hr_t, inputs.hr_bpm
    fields: dict[str, float | int | bool | str] = dict(
        daily_completeness(hr_t, hr, inputs.contact_lost, inputs.rr_beats, inputs.steps)
    )
    valid = (hr > 0) & ~np.asarray(inputs.contact_lost, dtype=bool)
    if np.any(valid):
        # daily_hr buckets by local calendar day; every sample of this unit is in
        # one local day, so place them on a day-aligned local clock (a 25-hour
        # DST day's last hour is clipped into it rather than spilling over).
        elapsed_s = np.minimum((hr_t[valid] - inputs.start_ns) / NS, LAST_SECOND_OF_DAY)
        for summary in daily_hr(elapsed_s, hr[valid]).values():
            fields.update(summary)
    minutes = inputs.minutes or day_minutes(inputs, valid)
    rhythm, period = sleep_rhythm_fields(minutes, inputs.day)
    night = night_hrv_fields(inputs, period_local_s(minutes, period))
    fields.update(rhythm)
    today: dict[str, float] = {
        "resting_hr_bpm": resting_hr(inputs, valid),
        "ln_rmssd_night": float(night["ln_rmssd_night"]),
        **activity_fields(inputs, valid),
    }
    fields.update(night)
    fields.update(today)
    fields.update(baseline_fields(inputs.day, today, inputs.history))
    return fields


def baseline_values(fields: Mapping[str, object]) -> dict[str, float]:
    """The :data:`HISTORY_FIELDS` of a ``daily`` point's fields (NaN where absent)."""
    out: dict[str, float] = {}
    for name in HISTORY_FIELDS:
        value = fields.get(name)
        out[name] = float(value) if isinstance(value, int | float) else math.nan
    return out


def same_values(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """True if two :data:`HISTORY_FIELDS` dicts agree (NaN equals NaN)."""
    for name in HISTORY_FIELDS:
        x, y = a.get(name, math.nan), b.get(name, math.nan)
        if not (x == y or (math.isnan(x) and math.isnan(y))):
            return False
    return True
