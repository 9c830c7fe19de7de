"""The daily unit's fields (pure part): resting HR, step activity, baselines.

The nocturnal HRV fields are tested in test_features_night_hrv.py.
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from processing.dailyfeatures import (
    BASELINE_FEATURES,
    DailyInputs,
    baseline_fields,
    daily_fields,
    local_seconds,
)
from processing.featurejobs import stale_fields_possible
from processing.windows import NS, DayCalendar, Unit

TZ = "Europe/Oslo"
MIN = 60 * NS


def _day(date: dt.date, tz: str = TZ) -> tuple[int, int]:
    start = dt.datetime.combine(date, dt.time(), ZoneInfo(tz))
    return DayCalendar(tz).day_of(int(start.timestamp()) * NS)


def _inputs(date: dt.date, **kw: object) -> DailyInputs:
    start, end = _day(date)
    return DailyInputs(start_ns=start, end_ns=end, day=date, timezone=TZ, **kw)  # type: ignore[arg-type]


def _hr(start: int, segments: list[tuple[float, float, float]], period_s: int = 10) -> tuple:
    """HR samples every ``period_s`` over (from_h, to_h, bpm) local-hour segments of a day."""
    t, hr = [], []
    for a, b, bpm in segments:
        for s in range(int(a * 3600), int(b * 3600), period_s):
            t.append(start + s * NS)
            hr.append(bpm + (0.5 if (s // period_s) % 2 else -0.5))
    return np.array(t, dtype=np.int64), np.array(hr, dtype=np.float64)


def test_resting_hr_is_the_lowest_stable_bin_of_the_local_night() -> None:
    date = dt.date(2025, 11, 26)
    start, _ = _day(date)
    # 00-06 local at 58 bpm with a stable 50 bpm hour; a lower evening (22 h) must not count
    hr_t, hr = _hr(start, [(0, 3, 58.0), (3, 4, 50.0), (4, 6, 58.0), (22, 23, 45.0)])
    out = daily_fields(_inputs(date, hr_t=hr_t, hr_bpm=hr, contact_lost=np.zeros(hr.size, bool)))
    assert out["resting_hr_bpm"] == pytest.approx(50.0, abs=0.05)
    assert out["hr_samples"] == hr.size
    # contact lost during the low hour: those samples are not valid, the night is 58
    lost = (hr_t >= start + 3 * 3600 * NS) & (hr_t < start + 4 * 3600 * NS)
    out = daily_fields(_inputs(date, hr_t=hr_t, hr_bpm=hr, contact_lost=lost))
    assert out["resting_hr_bpm"] == pytest.approx(58.0, abs=0.05)


def test_resting_hr_uses_the_local_clock_on_a_25_hour_day() -> None:
    date = dt.date(2025, 10, 26)  # Europe/Oslo falls back: 25 hours
    start, end = _day(date)
    assert end - start == 25 * 3600 * NS
    # local 00:00-06:00 is 7 real hours (02:00-03:00 repeats); 49 bpm at real hours 6-7,
    # which is local 05:00-06:00: inside the night
    hr_t, hr = _hr(start, [(0, 6, 60.0), (6, 7, 49.0), (7, 12, 70.0)])
    out = daily_fields(_inputs(date, hr_t=hr_t, hr_bpm=hr, contact_lost=np.zeros(hr.size, bool)))
    assert out["resting_hr_bpm"] == pytest.approx(49.0, abs=0.05)
    local = local_seconds(np.array([start, start + 3 * 3600 * NS]), TZ)
    assert (local % 86400).tolist() == [0.0, 2 * 3600.0]  # 02:00 twice: the repeated hour


def _activity(start: int, minutes: range, per_minute: dict[int, int]) -> tuple:
    """Activity samples at 1 Hz whose steps add up to ``per_minute[m]`` (default 0)."""
    t, steps = [], []
    for m in minutes:
        total = per_minute.get(m, 0)
        for s in range(60):
            t.append(start + m * MIN + s * NS)
            steps.append(total // 60 + (1 if s < total % 60 else 0))
    return np.array(t, dtype=np.int64), np.array(steps, dtype=np.float64)


def test_activity_is_steps_per_worn_minute() -> None:
    date = dt.date(2025, 11, 26)
    start, _ = _day(date)
    worn = range(6 * 60, 18 * 60)  # 720 worn minutes (HR every minute)
    hr_t = np.array([start + m * MIN for m in worn], dtype=np.int64)
    hr = np.full(hr_t.size, 70.0)
    walk = {m: 110 for m in range(8 * 60, 8 * 60 + 30)}  # 30 min brisk walking
    stroll = {m: 40 for m in range(12 * 60, 12 * 60 + 90)}
    per_min = {**walk, **stroll}
    # activity also at night (not worn: no HR) with steps that must not count
    act_t, steps = _activity(start, range(2 * 60, 18 * 60), {**per_min, 150: 500})
    out = daily_fields(
        _inputs(
            date, hr_t=hr_t, hr_bpm=hr, contact_lost=np.zeros(hr.size, bool), act_t=act_t,
            steps=steps,
        )
    )  # fmt: skip
    w = len(worn)
    x = np.array([per_min.get(m, 0) for m in worn], dtype=float)
    assert out["steps_mean_per_min"] == pytest.approx(x.sum() / w)
    assert out["steps_sd_per_min"] == pytest.approx(x.std(ddof=1))
    assert out["steps_zero_fraction"] == pytest.approx((w - 120) / w)
    assert out["steps_mvpa_min"] == 30.0  # >= 100 steps/min
    assert out["steps_total"] == int(steps.sum())  # completeness counts every sample
    assert not {"counts_sedentary_min", "steps_sedentary_min", "activity_mean"} & set(out)

    # under 600 worn minutes: undefined
    short = hr_t < start + 12 * 3600 * NS
    out = daily_fields(
        _inputs(
            date, hr_t=hr_t[short], hr_bpm=hr[short], contact_lost=np.zeros(int(short.sum()), bool),
            act_t=act_t, steps=steps,
        )
    )  # fmt: skip
    assert math.isnan(float(out["steps_mean_per_min"]))


def test_baseline_scores_against_the_previous_days() -> None:
    day = dt.date(2025, 11, 26)
    rng = np.random.default_rng(3)
    values = 60 + rng.normal(0, 1.5, 14)
    history = {
        day - dt.timedelta(days=14 - k): {
            "resting_hr_bpm": float(v),
            "ln_rmssd_night": 3.8 + 0.05 * (k % 3),
        }
        for k, v in enumerate(values)
    }
    history[day - dt.timedelta(days=40)] = {"resting_hr_bpm": 200.0}  # outside 28 days
    out = baseline_fields(day, {"resting_hr_bpm": 75.0, "ln_rmssd_night": 3.0}, history)
    mean, sd = values.mean(), values.std(ddof=1)
    med = np.median(values)
    mad = np.median(np.abs(values - med))
    assert out["resting_hr_bpm_z"] == pytest.approx((75 - mean) / sd)
    assert out["resting_hr_bpm_robust_z"] == pytest.approx(0.6745 * (75 - med) / mad)
    assert float(out["ln_rmssd_night_z"]) < -2
    assert out["baseline_established"] is True
    assert math.isnan(float(out["steps_mean_per_min_z"]))  # no activity today: not part of the flag
    assert set(out) == {
        "baseline_established",
        *(f"{f}_{s}" for f in BASELINE_FEATURES for s in ("z", "robust_z")),
    }

    # six valid days are not a baseline yet
    recent = {d: v for d, v in history.items() if (day - d).days <= 6}
    out = baseline_fields(day, {"resting_hr_bpm": 75.0}, recent)
    assert math.isnan(float(out["resting_hr_bpm_z"]))
    assert out["baseline_established"] is False
    assert baseline_fields(day, {}, history)["baseline_established"] is False


def test_a_daily_point_missing_an_optional_field_replaces_the_old_point() -> None:
    unit = Unit("daily", "p", 0, 86400 * NS)
    assert stale_fields_possible(unit, "daily,participant=p hr_samples=3i,hr_mean=70.0 0")


def test_sleep_and_rhythm_fields_of_a_synthetic_strap_week() -> None:
    """The HR + steps rest detector recovers the week's nights; weekly fields follow."""
    from processing.dailysleep import Minutes, sleep_rhythm_fields
    from tests.unit.synthetic_week import WALK_STEPS, week

    first, days = dt.date(2025, 11, 10), 8  # Monday .. next Monday
    w = week(first - dt.timedelta(days=6), days + 6, TZ)
    m = Minutes(int(w.t_ns[0]), w.local_s, w.hr_bpm, w.steps)
    day = first + dt.timedelta(days=5)  # Saturday: a weekend morning
    out, night = sleep_rhythm_fields(m, day)
    on_h, off_h = w.sleep[day]
    assert night is not None and out["sleep_method"] == "hr_rest"
    assert out["sleep_onset_h"] == pytest.approx(on_h, abs=0.3)
    assert out["sleep_offset_h"] == pytest.approx(off_h, abs=0.3)
    assert out["sleep_period_min"] == pytest.approx((off_h - on_h) * 60, abs=30)
    assert out["sleep_waso_min"] == 0
    assert 20 < float(out["hr_dip_pct"]) < 35  # 54 vs about 72 bpm: 25 %
    assert out["sleep_nights_7d"] == 7
    # nights ending Sun..Sat: two weekend midpoints (4.75 h) and five workday ones (3.0 h)
    assert out["social_jetlag_h"] == pytest.approx(1.75, abs=0.2)
    assert out["sleep_midpoint_sd_h"] == pytest.approx(
        np.std([3.0] * 5 + [4.75] * 2, ddof=1), abs=0.2
    )
    # 6 day pairs; the two across a workday/weekend change differ in 90 + 120 minutes
    assert out["sri_7d"] == pytest.approx(-100 + 200 * (1 - 2 * 210 / (6 * 1440)), abs=3)
    assert out["steps_peak30_per_min"] == WALK_STEPS
    assert 0.3 < float(out["steps_is_7d"]) <= 1.0 and float(out["steps_ra_7d"]) > 0.8
    assert out["hr_mesor_bpm"] == pytest.approx(66, abs=3)
    assert 3 < float(out["hr_acrophase_h"]) < 21  # HR peaks by day
    assert math.isnan(float(out["counts_is_7d"]))  # no accelerometer counts
    # with counts, Cole-Kripke takes over: still counts at night, busy by day
    counts = np.where(w.hr_bpm < 60, 0.0, 300.0 + w.steps * 10)
    out_ck, _ = sleep_rhythm_fields(
        Minutes(m.start_ns, m.local_s, m.hr_bpm, m.steps, counts=counts), day
    )
    assert out_ck["sleep_method"] == "cole_kripke"
    assert out_ck["sleep_onset_h"] == pytest.approx(on_h, abs=0.2)
    assert float(out_ck["counts_is_7d"]) > 0.3


def test_daily_fields_use_the_sleep_period_for_the_night_hrv() -> None:
    from processing.dailysleep import Minutes
    from tests.unit.synthetic_week import week

    day = dt.date(2025, 11, 12)  # Wednesday: asleep 23:00 .. 07:00
    w = week(day - dt.timedelta(days=6), 7, TZ)
    start, end = _day(day)
    m = Minutes(int(w.t_ns[0]), w.local_s, w.hr_bpm, w.steps)
    sel = (w.t_ns >= start) & (w.t_ns < end)
    # a window at 23:30 the evening before (inside the period, outside 00-06) and one at 03:00
    windows = np.array([start - 1800 * NS, start + 3 * 3600 * NS], dtype=np.int64)
    inputs = _inputs(
        day,
        hr_t=w.t_ns[sel],
        hr_bpm=w.hr_bpm[sel],
        contact_lost=np.zeros(int(sel.sum()), bool),
        window_t=windows,
        window_rmssd=np.array([30.0, 50.0]),
        window_usable=np.ones(2, bool),
        minutes=m,
    )
    out = daily_fields(inputs)
    assert out["sleep_method"] == "hr_rest"
    assert out["hrv_night_windows"] == 2
    assert out["ln_rmssd_night"] == pytest.approx(np.median(np.log([30.0, 50.0])))
    # without the minute series (the day's own samples only) the clock night is used
    del inputs.minutes
    inputs.minutes = None
    clock = daily_fields(inputs)
    assert "sleep_method" not in clock or clock.get("sleep_method") is None
    assert clock["hrv_night_windows"] == 1


def test_sleep_fields_are_plain_python_numbers_for_line_protocol() -> None:
    from processing.dailysleep import Minutes, sleep_rhythm_fields
    from processing.schema import line
    from tests.unit.synthetic_week import week

    day = dt.date(2025, 11, 12)
    w = week(day - dt.timedelta(days=6), 7, TZ)
    out, _ = sleep_rhythm_fields(Minutes(int(w.t_ns[0]), w.local_s, w.hr_bpm, w.steps), day)
    assert all(type(v) in (float, int, str) for v in out.values())
    text = line("daily", {"participant": "p"}, out, 0)
    assert text is not None and "np." not in text and "sleep_onset_h=-" in text


class _RRQuery:
    """A stand-in for the InfluxDB query API that answers the RR series query only."""

    def __init__(self, t_ns: np.ndarray, rr_ms: np.ndarray) -> None:
        self.rows = [["t", "v"], *([str(t), str(v)] for t, v in zip(t_ns, rr_ms, strict=True))]

    def query_csv(self, flux: str, org: str, dialect: object) -> list[list[str]]:
        return self.rows if '"rr"' in flux else []


@pytest.mark.parametrize(("hour", "days"), [(3, 1), (23, 2)])
def test_a_window_after_noon_also_recomputes_the_next_day(hour: int, days: int) -> None:
    from processing.featurejobs import FeatureJobs

    date = dt.date(2025, 11, 12)
    start, _ = _day(date)
    w0 = start + hour * 3600 * NS
    rr = np.full(300, 1000.0)
    t = w0 + (np.arange(300, dtype=np.int64) + 1) * 1000 * 1_000_000
    jobs = FeatureJobs(query_api=_RRQuery(t, rr), org="o", bucket="b", study="s",
                       window_s=300, timezone=TZ)  # fmt: skip
    result = jobs.compute(Unit("hrv", "p", w0, w0 + 300 * NS))
    assert result.lines
    assert [u.start_ns for u in result.followups] == [
        _day(date + dt.timedelta(days=k))[0] for k in range(days)
    ]


def test_accelerometer_epochs_slot_in_as_minutes_and_hdcza_takes_over() -> None:
    from processing.dailysleep import Minutes, epochs_to_minutes, sleep_rhythm_fields
    from tests.unit.synthetic_week import week

    day = dt.date(2025, 11, 12)  # asleep 23:00 .. 07:00
    w = week(day - dt.timedelta(days=6), 7, TZ)
    start = int(w.t_ns[0])
    # 30-s epochs: counts add up per minute, the z-angle is averaged
    t30 = np.repeat(w.t_ns, 2) + np.tile([0, 30 * NS], w.t_ns.size)
    counts = epochs_to_minutes(start, w.t_ns.size, t30, np.ones(t30.size), how="sum")
    assert np.all(counts == 2.0)
    rng = np.random.default_rng(9)
    asleep = w.hr_bpm < 60
    angle = np.where(asleep, -20.0, 80 * np.sin(np.cumsum(rng.normal(0, 0.3, w.t_ns.size))))
    angle30 = np.repeat(angle, 2) + np.tile([-0.01, 0.01], w.t_ns.size)
    angle_min = epochs_to_minutes(start, w.t_ns.size, t30, angle30, how="mean")
    assert np.allclose(angle_min, angle)
    m = Minutes(start, w.local_s, w.hr_bpm, w.steps, angle_z_deg=angle_min)
    out, _ = sleep_rhythm_fields(m, day)
    assert out["sleep_method"] == "hdcza"
    assert out["sleep_onset_h"] == pytest.approx(-1.0, abs=0.25)
    assert out["sleep_offset_h"] == pytest.approx(7.0, abs=0.25)
    assert out["sleep_tst_min"] == pytest.approx(480, abs=20)
