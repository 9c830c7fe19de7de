"""Nocturnal ln RMSSD: definition, the daily unit, and the quality rule on a well-worn strap."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from processing.dailyfeatures import DailyInputs, daily_fields
from processing.features.hrv import hrv_windows
from processing.features.night_hrv import nocturnal_hrv, usable_quality
from processing.features.rr_clean import quality_names
from processing.rules.engine import RuleEngine, Subject
from processing.rules.loader import load_rules
from processing.windows import NS, DayCalendar
from wellsense_sim.physiology import BeatGenerator, Model, Profile

REPO = Path(__file__).resolve().parents[2]
TZ = "Europe/Oslo"
H = 3600.0


def test_median_of_ln_rmssd_over_usable_windows_wholly_in_the_night() -> None:
    day = 20_000 * 86_400.0  # local midnight
    start = day + np.array([0.0, 300, 600, 1 * H, 6 * H - 300, 6 * H, 12 * H, -300])
    rmssd = np.array([30.0, 40.0, 50.0, 900.0, 60.0, 5.0, 5.0, 5.0])
    usable = np.array([True, True, True, False, True, True, True, True])
    nights = nocturnal_hrv(start, rmssd, usable)
    night = nights[np.datetime64(20_000, "D")]
    # in the night: 00:00, 00:05, 00:10, 01:00 (unusable), 05:55 (ends at 06:00)
    assert night.hrv_night_windows == 5
    assert night.hrv_night_usable_fraction == pytest.approx(4 / 5)
    assert night.ln_rmssd_night == pytest.approx((math.log(40.0) + math.log(50.0)) / 2)
    # 23:55 of the evening before lies outside 00-06 h: not part of any night
    assert set(nights) == {np.datetime64(20_000, "D")}


def test_sleep_periods_replace_the_clock_night_and_key_by_the_morning() -> None:
    evening = 20_000 * 86_400.0 + 23 * H
    start = evening + 300.0 * np.arange(12)  # 23:00-00:00
    rmssd = np.full(12, 42.0)
    nights = nocturnal_hrv(
        start, rmssd, np.ones(12, bool), sleep_periods_s=[(evening, evening + H)]
    )
    night = nights[np.datetime64(20_001, "D")]
    assert night.hrv_night_windows == 12
    assert night.ln_rmssd_night == pytest.approx(math.log(42.0))


def test_a_night_without_usable_windows_is_nan_and_zero_rmssd_is_left_out() -> None:
    start = 20_000 * 86_400.0 + np.array([0.0, 300.0])
    night = nocturnal_hrv(start, np.array([np.nan, 0.0]), np.array([False, True]))
    only = night[np.datetime64(20_000, "D")]
    assert math.isnan(only.ln_rmssd_night) and only.hrv_night_usable_fraction == 0.0


@pytest.mark.parametrize(
    ("quality", "usable"),
    [
        ("", True),
        ("dfa_undefined,sampen_undefined", True),
        ("short_for_frequency,gap_in_window", True),
        ("low_coverage", False),
        ("gap_in_window,many_artefacts", False),
        ("too_few_beats", False),
        ("constant_rr", False),
    ],
)
def test_usable_means_rmssd_is_defined(quality: str, usable: bool) -> None:
    assert usable_quality(quality.split(",")) is usable


def _day(date: dt.date) -> tuple[int, int]:
    start = dt.datetime.combine(date, dt.time(), ZoneInfo(TZ))
    return DayCalendar(TZ).day_of(int(start.timestamp()) * NS)


def test_the_daily_unit_stores_the_night_ending_on_its_morning() -> None:
    date = dt.date(2025, 11, 26)
    start, _ = _day(date)
    window_t = start + np.array([0, 300, 600, 14 * 3600], dtype=np.int64) * NS
    out = daily_fields(
        DailyInputs(
            start_ns=start,
            end_ns=start + 86_400 * NS,
            day=date,
            timezone=TZ,
            window_t=window_t,
            window_rmssd=np.array([30.0, 40.0, 50.0, 5.0]),  # 14:00 is daytime: left out
            window_usable=np.array([True, True, True, True]),
        )
    )
    assert out["ln_rmssd_night"] == pytest.approx(math.log(40.0))
    assert out["hrv_night_windows"] == 3
    assert out["hrv_night_usable_fraction"] == 1.0
    assert "rmssd_ms" not in out
    empty = daily_fields(
        DailyInputs(start_ns=start, end_ns=start + 86_400 * NS, day=date, timezone=TZ)
    )
    assert empty["hrv_night_windows"] == 0 and math.isnan(float(empty["ln_rmssd_night"]))


def _night_windows(model: Model, day_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 00-06 h windows of a well-worn strap whose beats are stamped at 1 s notifications.

    RR intervals are quantised to 1/1024 s (the BLE Heart Rate Measurement
    unit) and every beat carries the time of the notification that delivered
    it (the next whole second): the coarsest clock the live path can give.
    """
    beats = BeatGenerator(model, day_ns).beats_until(day_ns + 6 * 3600 * NS)
    true_s = np.array([b.t_ns for b in beats]) / NS - day_ns / NS
    rr = np.round(np.array([b.rr_ms for b in beats]) * 1.024) / 1.024
    with np.errstate(all="ignore"):
        win = hrv_windows(np.ceil(true_s), rr, window_s=300.0, origin_s=0.0)
    usable = np.array([usable_quality(quality_names(int(f))) for f in win.flags])
    t_ns = day_ns + (win.start_s * NS).astype(np.int64)
    return t_ns, win.features["rmssd_ms"], usable


def test_quality_rule_stays_quiet_for_a_well_worn_strap_at_1s_notifications() -> None:
    tz = "UTC"
    model = Model(Profile(contact_losses_per_hour=0.0, nonwear_bouts_per_day=0.0), seed=3)
    rules = load_rules(REPO / "rules")
    written: list[object] = []
    engine = RuleEngine(rules, study="s", publish=lambda e, s: None, write=written.append)
    first = dt.date(2025, 11, 20)
    for k in range(4):
        date = first + dt.timedelta(days=k)
        day_ns = int(dt.datetime.combine(date, dt.time(), ZoneInfo(tz)).timestamp()) * NS
        t_ns, rmssd, usable = _night_windows(model, day_ns)
        fields = daily_fields(
            DailyInputs(
                start_ns=day_ns,
                end_ns=day_ns + 86_400 * NS,
                day=date,
                timezone=tz,
                window_t=t_ns,
                window_rmssd=rmssd,
                window_usable=usable,
            )
        )
        assert fields["hrv_night_windows"] == 72
        assert fields["hrv_night_usable_fraction"] == 1.0
        assert 2.5 < float(fields["ln_rmssd_night"]) < 5.0  # 12-150 ms
        engine.on_daily_features("p-1", date, {k: float(v) for k, v in fields.items()})
        # control: a loose strap (a fifth of the night usable) fires on day 3
        loose = {"hrv_night_windows": 72.0, "hrv_night_usable_fraction": 0.2}
        engine.on_daily_features("p-2", date, loose)
    fired = [e for e in written if getattr(e, "rule", "") == "quality-hrv-low"]
    assert [getattr(e, "subject", None) for e in fired] == [Subject.of_participant("p-2")]
