"""Activity, adherence, sleep, heart rate and baselines: small exact cases."""

from __future__ import annotations

import numpy as np
import pytest

from processing.features.activity import daily_activity, regular_minutes
from processing.features.adherence import Missing, label_missing, missing_summary, nonwear_minutes
from processing.features.baseline import rolling_baseline
from processing.features.heart_rate import daily_hr, hr_during, resting_hr_by_night
from processing.features.sleep import (
    sleep_periods,
    sleep_regularity_index,
    sleep_wake,
)

DAY0 = np.datetime64("2024-03-04T00:00", "m")


def test_daily_activity_hand_case() -> None:
    t = DAY0 + np.arange(2 * 1440)
    c = np.zeros(2 * 1440)
    c[:720] = 150.0
    c[720:1440] = 0.0
    c[1440:] = 3000.0
    wear = np.ones(c.size, dtype=bool)
    wear[1440:2400] = False  # 480 worn minutes left on day 2 -> invalid (< 600)
    d = daily_activity(t, c, wear)
    assert d.features["counts_mean_per_min"][0] == pytest.approx(75.0)
    assert d.features["counts_sd_per_min"][0] == pytest.approx(np.std(c[:1440], ddof=1))
    assert d.features["counts_zero_fraction"][0] == pytest.approx(0.5)
    assert d.features["counts_sedentary_min"][0] == 720
    assert d.features["counts_mvpa_min"][0] == 0
    assert d.valid.tolist() == [True, False]
    assert np.isnan(d.features["counts_mean_per_min"][1])


def test_regular_minutes_fills_dst_gap_with_nan() -> None:
    t = np.array(
        ["2003-03-30T01:58", "2003-03-30T01:59", "2003-03-30T03:00"], dtype="datetime64[m]"
    )
    grid, v = regular_minutes(t, np.array([1.0, 2.0, 3.0]))
    assert grid.size == 63
    assert np.isnan(v[2:62]).all() and v[-1] == 3.0


def test_nonwear_runs_and_spikes() -> None:
    c = np.full(400, 50.0)
    c[100:250] = 0.0  # 150 zero minutes
    c[170] = 30.0  # a knock in the middle: tolerated
    c[300:350] = 0.0  # only 50 minutes: worn
    nw = nonwear_minutes(c)
    assert nw[100:250].all()
    assert not nw[300:350].any()
    assert not nw[:100].any()
    c[np.arange(10)] = np.nan
    assert not nonwear_minutes(c)[:10].any()


def test_label_missing_causes() -> None:
    present = np.array([True, False, False, False, False, False, True])
    gw = np.array([True, True, True, False, True, True, True])
    up = np.array([True, True, True, True, False, True, True])
    conn = np.array([True, False, False, False, True, True, True])
    batt = np.array([80, 5, 80, 80, 80, 80, 80], dtype=float)
    worn = np.array([True, True, True, True, True, False, False])
    lab = label_missing(
        data_present=present,
        gateway_alive=gw,
        uplink_ok=up,
        sensor_connected=conn,
        battery_pct=batt,
        worn=worn,
    )
    assert [Missing(v).name for v in lab] == [
        "OK",
        "SENSOR_BATTERY",
        "OUT_OF_RANGE",
        "GATEWAY_DOWN",
        "UPLINK_DOWN",
        "NOT_WORN",
        "NOT_WORN",
    ]
    assert missing_summary(lab)["not_worn"] == 2


def test_sleep_wake_and_periods() -> None:
    t = DAY0 + np.arange(1440)
    c = np.full(1440, 300.0)
    c[60:480] = 0.0  # 01:00-08:00 still
    c[200:210] = 300.0  # a 10-min awakening
    s = sleep_wake(c)
    assert s[100] == 1.0 and s[700] == 0.0
    periods = sleep_periods(t, s)
    assert len(periods) == 1
    p = periods[0]
    assert p.onset <= DAY0 + 64 and p.offset >= DAY0 + 470
    assert 0.9 < p.efficiency < 1.0


def test_sri_known_values() -> None:
    day = np.r_[np.ones(480), np.zeros(960)]
    assert sleep_regularity_index(np.tile(day, 3)) == pytest.approx(100.0)
    shifted = np.r_[day, np.roll(day, 720)]
    # half of the 1440 pairs agree
    expected = -100 + 200 * np.mean(day == np.roll(day, 720))
    assert sleep_regularity_index(np.r_[shifted, np.nan]) == pytest.approx(expected)
    assert np.isnan(sleep_regularity_index(day))


def test_resting_hr_and_daily_hr() -> None:
    t = np.arange(0, 2 * 86400, 1.0)  # 1 Hz HR, local seconds
    hr = np.full(t.size, 70.0)
    night = (t % 86400) < 6 * 3600
    hr[night] = 58.0
    hr[(t >= 86400 + 3600) & (t < 86400 + 3600 + 300)] = 50.0  # a quiet 5 min, night 2
    hr[(t >= 86400 + 7200) & (t < 86400 + 7500)] = np.where(
        np.arange(300) % 2, 40.0, 60.0
    )  # low mean (50) but unstable (SD 10): not resting
    res = resting_hr_by_night(t, hr)
    days = sorted(res)
    assert res[days[0]] == pytest.approx(58.0)
    assert res[days[1]] == pytest.approx(50.0)
    d = daily_hr(t, hr)
    first = d[np.datetime64("1970-01-01")]
    assert first["hr_p50"] == pytest.approx(70.0)
    assert hr_during(t, hr, [(0.0, 3600.0)]) == pytest.approx(58.0)
    assert np.isnan(hr_during(t, hr, []))


def test_rolling_baseline_scores_and_establishment() -> None:
    days = np.datetime64("2024-01-01") + np.arange(12)
    x = np.array([10, 12, 11, 13, 9, 10, 12, np.nan, 11, 30, 10, 11], dtype=float)
    b = rolling_baseline(days, x, window_days=7, min_days=5)
    assert not b.established[:5].any()
    assert np.isnan(b.z[:5]).all()
    i = 9  # the outlier, baseline = days 2..8 (valid: 11,13,9,10,12,11)
    ref = np.array([11, 13, 9, 10, 12, 11.0])
    assert b.established[i]
    assert b.z[i] == pytest.approx((30 - ref.mean()) / ref.std(ddof=1))
    med = np.median(ref)
    assert b.robust_z[i] == pytest.approx(0.6745 * (30 - med) / np.median(np.abs(ref - med)))
    const = rolling_baseline(days, np.full(12, 5.0), min_days=3)
    assert np.isnan(const.z[5]) and np.isnan(const.robust_z[5]) and const.established[5]
