"""HDCZA, the HR rest detector, cosinor, peak-30 cadence, HR dip and weekly timing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from processing.features import cadence, cosinor, hdcza, hr_dip, rest_hr, sleep_timing
from tests.unit.features_data import require

NOON_TO_NOON = 1440


def _night_hr(rng: np.random.Generator, onset: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Minute HR and steps from noon: awake 70-95 bpm with steps, asleep 52-58 bpm."""
    hr = 80 + 8 * rng.standard_normal(NOON_TO_NOON)
    steps = np.where(rng.random(NOON_TO_NOON) < 0.3, rng.integers(5, 110, NOON_TO_NOON), 0.0)
    hr[onset:offset] = 55 + 1.5 * rng.standard_normal(offset - onset)
    steps[onset:offset] = 0.0
    return hr, steps.astype(float)


def test_rest_period_finds_the_low_hr_night_and_its_wake_bout() -> None:
    rng = np.random.default_rng(1)
    onset, offset = 11 * 60, 19 * 60  # 23:00 .. 07:00
    hr, steps = _night_hr(rng, onset, offset)
    hr[15 * 60 : 15 * 60 + 25] = 85  # 25 min awake at 03:00 (HR up, no steps)
    p = rest_hr.rest_period(hr, steps)
    assert p is not None
    assert abs(p.onset - onset) <= 20 and abs(p.offset - offset) <= 20
    assert 15 <= p.waso_min <= 25  # the 31-min running median trims the bout's edges
    hr[15 * 60 : 15 * 60 + 45] = 85  # 45 min awake: more than the 30-min merge gap
    p = rest_hr.rest_period(hr, steps)
    assert p is not None and p.offset - p.onset < 5 * 60
    assert p.tst_min == pytest.approx((p.offset - p.onset) - p.waso_min)


def test_rest_period_bounds_and_data_gaps() -> None:
    rng = np.random.default_rng(2)
    hr, steps = _night_hr(rng, 11 * 60, 13 * 60)  # 2 h: too short
    assert rest_hr.rest_period(hr, steps) is None
    hr, steps = _night_hr(rng, 11 * 60, 19 * 60)
    hr[10 * 60 : 11 * 60] = np.nan  # not worn in the hour before onset: onset unknown
    assert rest_hr.rest_period(hr, steps) is None
    hr, steps = _night_hr(rng, 11 * 60, 19 * 60)
    steps[15 * 60 : 15 * 60 + 60 : 3] = 20  # walking about for an hour splits the night
    p = rest_hr.rest_period(hr, steps)
    assert p is not None and p.offset - p.onset < 5 * 60


def test_rest_detector_on_real_24h_rr_records() -> None:
    """nsr2db has no clock times or sleep labels: check plausibility only (bench/sleep.py)."""
    root = require("rr") / "nsr2db"
    found = 0
    for path in sorted(root.glob("*.txt.gz"))[:8]:
        v = np.loadtxt(path)
        t = v[0] + np.cumsum(v[1:])
        ok = (v[1:] > 0.3) & (v[1:] < 2.0)
        minute = (t[ok] // 60).astype(np.int64)
        cnt = np.bincount(minute)
        hr = np.where(
            cnt >= 20, np.bincount(minute, weights=60 / v[1:][ok]) / np.maximum(cnt, 1), np.nan
        )
        p = rest_hr.rest_period(hr, np.full(hr.size, np.nan))
        if p is None:
            continue
        found += 1
        inside = np.zeros(hr.size, bool)
        inside[p.onset : p.offset] = True
        assert 3 * 60 <= p.offset - p.onset <= 12 * 60
        assert hr_dip.hr_dip_pct(hr, inside) > 5.0  # night HR clearly lower
    assert found >= 6


def _angle_night(rng: np.random.Generator, onset: int, offset: int) -> np.ndarray:
    """Minute z-angle from noon: awake = posture changing every minute, asleep = still
    with a turn every 90 min."""
    angle = 80 * np.sin(np.cumsum(rng.normal(0, 0.3, NOON_TO_NOON)))
    night = np.full(offset - onset, -10.0)
    for k in range(0, night.size, 90):
        night[k:] = rng.uniform(-60, 60)
    angle[onset:offset] = night + 0.05 * rng.standard_normal(night.size)
    return angle


def test_hdcza_window_and_sustained_inactivity() -> None:
    rng = np.random.default_rng(4)
    onset, offset = 10 * 60 + 30, 18 * 60 + 45  # 22:30 .. 06:45
    res = hdcza.angle_sleep(_angle_night(rng, onset, offset), 60.0)
    assert res is not None
    assert abs(res.onset - onset) <= 15 and abs(res.offset - offset) <= 15
    assert res.tst_min > 0.9 * (offset - onset)
    assert res.waso_min < 30
    awake = 80 * np.sin(np.cumsum(rng.normal(0, 0.3, NOON_TO_NOON)))
    period = hdcza.hdcza_period(awake, 60.0)
    assert period is None or period[1] - period[0] < 120


def test_sustained_inactivity_needs_five_minutes() -> None:
    a = np.array([0, 40, 0, 1, 2, 3, 4, 30, 0, 1, 2, 3, 4, 5, 60], dtype=float)
    s = hdcza.sustained_inactivity(a, 60.0)
    assert np.all(s[2:7] == 1.0)  # 2..6: five epochs, four small changes
    assert np.all(s[8:14] == 1.0) and s[14] == 0.0 and s[7] == 0.0


def test_cosinor_recovers_a_sinusoid() -> None:
    t = np.arange(0, 24, 1 / 60)
    y = 70 + 12 * np.cos(2 * np.pi * (t - 15.5) / 24)
    c = cosinor.cosinor(t, y)
    assert c.mesor == pytest.approx(70) and c.amplitude == pytest.approx(12)
    assert c.acrophase_h == pytest.approx(15.5) and c.r2 == pytest.approx(1.0)
    assert np.isnan(cosinor.cosinor(t[: 10 * 60], y[: 10 * 60]).mesor)  # 10 h: no phase


def test_peak30_and_hr_dip() -> None:
    steps = np.zeros(900)
    steps[:30] = 120.0
    steps[30:40] = 200.0
    assert cadence.peak_cadence(steps) == pytest.approx((10 * 200 + 20 * 120) / 30)
    assert np.isnan(cadence.peak_cadence(steps[:500]))  # < 600 minutes
    hr = np.r_[np.full(600, 80.0), np.full(480, 60.0)]
    night = np.r_[np.zeros(600, bool), np.ones(480, bool)]
    assert hr_dip.hr_dip_pct(hr, night) == pytest.approx(25.0)
    assert np.isnan(hr_dip.hr_dip_pct(hr, np.ones(hr.size, bool)))


def test_midpoint_sd_social_jetlag_and_sri() -> None:
    mon = dt.date(2025, 11, 10)  # a Monday
    mids = {mon + dt.timedelta(days=k): 3.0 for k in range(7)}
    mids[dt.date(2025, 11, 15)] = 5.0  # Saturday morning
    mids[dt.date(2025, 11, 16)] = 6.0  # Sunday morning
    assert sleep_timing.social_jetlag_h(mids) == pytest.approx(2.5)
    assert sleep_timing.midpoint_sd_h(mids) == pytest.approx(np.std([3] * 5 + [5, 6], ddof=1))
    assert np.isnan(sleep_timing.midpoint_sd_h(dict(list(mids.items())[:3])))
    valid = np.ones(7 * 1440, bool)
    same = [(d * 1440 + 660, d * 1440 + 1140) for d in range(7)]
    assert sleep_timing.sri_from_periods(valid, same) == pytest.approx(100.0)
    shifted = [
        (a + (240 if d % 2 else 0), b + (240 if d % 2 else 0)) for d, (a, b) in enumerate(same)
    ]
    sri = sleep_timing.sri_from_periods(valid, shifted)
    # each pair of days differs in 2 x 240 of 1440 minutes: SRI = -100 + 200 * 960/1440
    assert sri == pytest.approx(-100 + 200 * (1440 - 480) / 1440, abs=1.0)
