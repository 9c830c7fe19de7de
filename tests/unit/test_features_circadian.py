"""Circadian IS/IV/L5/M10/RA: known answers and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from processing.features.circadian import (
    circadian_features,
    circadian_rolling,
    interdaily_stability,
    intradaily_variability,
)

START = np.datetime64("2024-03-04T00:00", "m")


def _minutes(days: int) -> np.ndarray:
    return START + np.arange(days * 1440)


def test_pure_24h_rhythm_gives_is_1_and_iv_near_0() -> None:
    t = _minutes(10)
    x = 100 + 80 * np.sin(2 * np.pi * np.arange(t.size) / 1440)
    c = circadian_features(t, x)
    assert c.is_ == pytest.approx(1.0, abs=1e-12)
    # sampled sinusoid over whole cycles: IV = 2 (1 - cos(2 pi / 24)) = 0.068
    assert c.iv == pytest.approx(2 * (1 - np.cos(2 * np.pi / 24)), rel=1e-2)
    assert c.iv < 0.1


def test_white_noise_gives_iv_near_2_and_is_near_0() -> None:
    rng = np.random.default_rng(0)
    t = _minutes(60)
    hours = np.repeat(rng.normal(size=60 * 24), 60)  # i.i.d. hourly values
    c = circadian_features(t, hours)
    assert c.iv == pytest.approx(2.0, abs=0.15)
    assert c.is_ < 0.05


def test_hand_computed_is_iv() -> None:
    # two days of hourly data: day 2 repeats day 1 except hour 0 (+2)
    hour = np.datetime64("2024-01-01T00", "h") + np.arange(48)
    day = np.arange(24, dtype=float)
    x = np.concatenate([day, day])
    x[24] += 2.0
    n, p = 48, 24
    xbar = x.mean()
    prof = (x[:24] + x[24:]) / 2
    expected_is = n * np.sum((prof - xbar) ** 2) / (p * np.sum((x - xbar) ** 2))
    expected_iv = n * np.sum(np.diff(x) ** 2) / ((n - 1) * np.sum((x - xbar) ** 2))
    assert interdaily_stability(hour, x) == pytest.approx(expected_is, rel=1e-12)
    assert intradaily_variability(x) == pytest.approx(expected_iv, rel=1e-12)


def test_iv_skips_differences_across_missing_hours() -> None:
    x = np.array([1.0, 2.0, np.nan, 4.0, 3.0])
    xv = x[np.isfinite(x)]
    expected = (((2 - 1) ** 2 + (3 - 4) ** 2) / 2) / (np.sum((xv - xv.mean()) ** 2) / 4)
    assert intradaily_variability(x) == pytest.approx(expected, rel=1e-12)


def test_l5_m10_square_wave() -> None:
    t = _minutes(7)
    clock_h = (np.arange(t.size) % 1440) / 60
    # 10 at night 23:00-07:00, 200 from 08:00 to 20:00, 50 otherwise
    x = np.where(
        (clock_h >= 23) | (clock_h < 7),
        10.0,
        np.where((clock_h >= 8) & (clock_h < 20), 200.0, 50.0),
    )
    c = circadian_features(t, x)
    assert c.l5 == pytest.approx(10.0)
    assert c.l5_onset_h >= 23.0 or c.l5_onset_h <= 2.0  # any 5 h inside 23-07
    assert c.m10 == pytest.approx(200.0)
    assert 8.0 <= c.m10_onset_h <= 10.0
    assert c.ra == pytest.approx(190 / 210)


def test_nonwear_nan_is_left_out_not_zero() -> None:
    t = _minutes(7)
    x = 100 + 80 * np.sin(2 * np.pi * np.arange(t.size) / 1440)
    x[2000:2300] = np.nan
    c = circadian_features(t, x)
    assert c.is_ == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("values", [np.array([]), np.full(3000, np.nan), np.full(1440 * 3, 5.0)])
def test_thin_or_constant_gives_nan(values: np.ndarray) -> None:
    c = circadian_features(_minutes(3)[: values.size], values)
    assert np.isnan(c.is_) and np.isnan(c.iv)


def test_rolling_span() -> None:
    t = _minutes(5)
    x = 100 + 80 * np.sin(2 * np.pi * np.arange(t.size) / 1440)
    out = circadian_rolling(t, x, span_days=3)
    assert len(out) == 5
    assert np.isnan(out[0][1].is_)  # one day only
    assert out[-1][1].is_ == pytest.approx(1.0)
