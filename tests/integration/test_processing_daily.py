"""Daily features and personal baselines through the real InfluxDB, then the rules runner.

Seventeen local days of synthetic stored data (written with the schema code,
as the service stores it) for one participant: a stable night heart rate,
good and flagged HRV windows in the night and by day, and steps. The last
three days shift (resting HR up, nocturnal RMSSD down). The service's own
daily feature job computes the days once each, oldest first; the stored
``daily`` points must carry the features and z-scores computed here
independently, and one pass of the rules runner must raise
``baseline-resting-hr-high`` and ``baseline-rmssd-low`` from the stored
values.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from processing import config as pconfig
from processing import schema
from processing.rules.influx_source import InfluxSource
from processing.rules.loader import load_rules
from processing.rules.runner import serve
from processing.service import Service
from processing.windows import NS, DayCalendar, Unit
from processing.writer import InfluxWriter
from tests.integration.processing_fixture import Pipeline, pipeline

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TZ = "Europe/Oslo"
P = "p-base"
FIRST = dt.date(2025, 11, 10)
N_DAYS = 17
SHIFTED = 3  # the last three days
NOW = int(dt.datetime(2025, 11, 27, 1, 0, tzinfo=ZoneInfo(TZ)).timestamp()) * NS


def _start(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), ZoneInfo(TZ)).timestamp()) * NS


def _unit(day: dt.date) -> Unit:
    start, end = DayCalendar(TZ).day_of(_start(day))
    return Unit("daily", P, start, end)


def synthetic(study: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """Stored points and the true per-day values (resting HR, RMSSD, steps/min)."""
    rng = np.random.default_rng(11)
    lines: list[str | None] = []
    truth: dict[str, list[float]] = {"resting": [], "rmssd": [], "steps": []}
    raw = {"study": study, "participant": P, "device": "strap-1"}
    for k in range(N_DAYS):
        day = FIRST + dt.timedelta(days=k)
        t0 = _start(day)
        shifted = k >= N_DAYS - SHIFTED
        resting = 72 if shifted else 58 + int(rng.integers(-2, 3))
        # night 00-06: every 10 s, +-1 bpm around the resting level (so every 5-min bin's
        # mean is exactly it); from 06:00 one sample a minute at 75 bpm (still worn)
        for s in range(0, 6 * 3600, 10):
            bpm = resting + (1 if (s // 10) % 2 else -1)
            lines.append(_hr(raw, bpm, t0 + s * NS))
        per_min = 8 if shifted else int(rng.integers(25, 40))
        for m in range(6 * 60, 16 * 60 + 30):  # 630 worn minutes with a step count
            t = t0 + m * 60 * NS
            lines.append(_hr(raw, 75, t))
            steps = per_min + (m % 3) - 1  # mean per_min over whole 3-minute cycles
            lines.append(
                schema.line(
                    "activity",
                    {**raw, "device": "band-1"},
                    {"steps": steps, "cadence_spm": float(steps), "seq": 1},
                    t,
                )
            )
        win = {"study": study, "participant": P, "window": "300s"}
        rmssd_day = []
        for w in range(12):  # good windows 00:00-01:00
            rmssd = 20.0 + w % 3 if shifted else round(45.0 + rng.normal(0, 3), 2)
            rmssd_day.append(rmssd)
            fields = {"rmssd_ms": rmssd, "quality": "", "n_beats": 300}
            lines.append(schema.line("hrv_window", win, fields, t0 + w * 300 * NS))
        # flags that blank only DFA/SampEn leave the window usable for RMSSD
        rmssd_day.append(44.0)
        usable = {"rmssd_ms": 44.0, "quality": "dfa_undefined,sampen_undefined", "n_beats": 300}
        lines.append(schema.line("hrv_window", win, usable, t0 + 2 * 3600 * NS))
        bad = {"rmssd_ms": 900.0, "quality": "low_coverage", "n_beats": 40}
        lines.append(schema.line("hrv_window", win, bad, t0 + 3 * 3600 * NS))
        daytime = {"rmssd_ms": 5.0, "quality": "", "n_beats": 600}  # not in the night
        lines.append(schema.line("hrv_window", win, daytime, t0 + 14 * 3600 * NS))
        truth["resting"].append(float(resting))
        truth["rmssd"].append(float(np.median(np.log(rmssd_day))))
        truth["steps"].append(float(per_min))
    return [x for x in lines if x], {k: np.array(v) for k, v in truth.items()}


def _hr(tags: dict[str, str], bpm: int, t: int) -> str | None:
    return schema.line("hr", tags, {"hr_bpm": bpm, "contact": True, "seq": 1}, t)


def expected_z(values: np.ndarray, i: int) -> float:
    """z of day i against all earlier days (all within 28 days), computed here by hand."""
    ref = values[:i]
    return float((values[i] - ref.mean()) / ref.std(ddof=1))


def daily_points(p: Pipeline) -> dict[dt.date, dict[str, object]]:
    rows = p.flux(f'|> filter(fn: (r) => r._measurement == "daily" and r.participant == "{P}")')
    out: dict[dt.date, dict[str, object]] = {}
    for r in rows:
        day = r["_time"].astimezone(ZoneInfo(TZ)).date()
        out.setdefault(day, {})[r["_field"]] = r["_value"]
    return out


def test_daily_units_store_features_and_baselines_that_fire_the_rules(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    lines, truth = synthetic(p.study)
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    try:
        for k in range(0, len(lines), 20_000):
            writer.write(lines[k : k + 20_000])
    finally:
        writer.close()
    config = pconfig.load(p.write_config(features={"timezone": TZ}))
    worker = Service(config)
    days = [FIRST + dt.timedelta(days=k) for k in range(N_DAYS)]
    try:
        # the running worker's path: compute each day once, oldest first, and write it
        worker._run_features([_unit(d) for d in days], 120.0)
        assert worker.metrics.features_computed == N_DAYS
        stored = daily_points(p)
        assert sorted(stored) == days
        for i, day in enumerate(days):
            point = stored[day]
            assert point["resting_hr_bpm"] == truth["resting"][i]
            # the low-coverage and the daytime window are left out
            assert point["ln_rmssd_night"] == pytest.approx(truth["rmssd"][i])
            assert point["hrv_night_windows"] == 14
            assert point["hrv_night_usable_fraction"] == pytest.approx(13 / 14)
            assert "rmssd_ms" not in point
            assert point["steps_mean_per_min"] == pytest.approx(truth["steps"][i])
            assert point["wear_min"] == 360 + 630
            assert point["baseline_established"] is (i >= 7)
            if i < 7:
                assert "resting_hr_bpm_z" not in point
                continue
            for name, key in (("resting_hr_bpm", "resting"), ("ln_rmssd_night", "rmssd")):
                assert point[f"{name}_z"] == pytest.approx(expected_z(truth[key], i))
            assert point["steps_mean_per_min_z"] == pytest.approx(expected_z(truth["steps"], i))
        last = stored[days[-1]]
        assert float(last["resting_hr_bpm_z"]) > 2 and float(last["ln_rmssd_night_z"]) < -2  # type: ignore[arg-type]

        # Recomputing a day that did not change leaves the later days alone; a late
        # change to an old day sends every later stored day (its baseline) round again.
        jobs = worker._feature_jobs()
        assert jobs.compute(_unit(days[3])).followups == []
        late = _start(days[3]) + 3600 * NS
        tags = {"study": p.study, "participant": P, "device": "strap-1"}
        late_lines = [_hr(tags, 50, late + s * NS) for s in range(0, 600, 10)]
        worker.writer.write([x for x in late_lines if x])
        result = jobs.compute(_unit(days[3]))
        assert [u.start_ns for u in result.followups] == [_unit(d).start_ns for d in days[4:]]
    finally:
        if worker._influx_client is not None:
            worker._influx_client.close()
        worker.writer.close()

    # The rules runner reads the stored values and raises the baseline alerts.
    rules = load_rules(REPO / "rules")
    with p.client() as client:
        source = InfluxSource(query_api=client.query_api(), org=p.influx.org, bucket=p.bucket,
                              study=p.study, lookback_ns=35 * 86400 * NS, timezone=TZ)  # fmt: skip
        read = source.daily(NOW, list(rules))[P][days[-1]]
    assert read["resting_hr_bpm_z"] == last["resting_hr_bpm_z"]
    assert read["ln_rmssd_night"] == last["ln_rmssd_night"]  # the stored daily value
    code = serve(config, rules, interval_s=1, lookback_s=35 * 86400,
                 stop=threading.Event(), once=True, clock=lambda: NOW)  # fmt: skip
    assert code == 0
    fired = {
        r["rule"]
        for r in p.flux(
            '|> filter(fn: (r) => r._measurement == "alert" and r._field == "state"'
            f' and r.participant == "{P}" and r._value == "firing")'
        )
    }
    assert {"baseline-resting-hr-high", "baseline-rmssd-low"} <= fired
    assert "baseline-activity-low" not in fired  # 3 low days, the rule wants 5


SLEEP_P = "p-sleep"


def test_a_strap_week_stores_sleep_and_rhythm_fields(pipeline: Pipeline) -> None:
    """Eight days of one-per-minute HR and steps (tests/unit/synthetic_week.py) through
    InfluxDB: the service's daily job reads the minute series back over 7 days and
    stores the rest-detector night, weekly timing and rhythm fields."""
    from tests.unit.synthetic_week import WALK_STEPS, week

    p = pipeline
    first, days = dt.date(2025, 11, 10), 8  # Monday .. Monday
    w = week(first, days, TZ, seed=7)
    raw = {"study": p.study, "participant": SLEEP_P, "device": "strap-1"}
    lines: list[str | None] = []
    for t, bpm, steps in zip(w.t_ns.tolist(), w.hr_bpm.tolist(), w.steps.tolist(), strict=True):
        lines.append(_hr(raw, round(bpm), t))
        if steps > 0:
            lines.append(schema.line("activity", raw, {"steps": int(steps), "seq": 1}, t))
    # nocturnal HRV: a window at 23:30 (inside the sleep period, outside 00-06) and at 03:00
    last = first + dt.timedelta(days=days - 1)  # a Monday: asleep 23:00 .. 07:00
    win = {"study": p.study, "participant": SLEEP_P, "window": "300s"}
    for offset_s, rmssd in ((-1800, 30.0), (3 * 3600, 50.0)):
        fields = {"rmssd_ms": rmssd, "quality": "", "n_beats": 300}
        lines.append(schema.line("hrv_window", win, fields, _start(last) + offset_s * NS))
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    try:
        writer.write([x for x in lines if x])
    finally:
        writer.close()
    config = pconfig.load(p.write_config(features={"timezone": TZ}))
    worker = Service(config)
    units = []
    for k in range(days):
        start, end = DayCalendar(TZ).day_of(_start(first + dt.timedelta(days=k)))
        units.append(Unit("daily", SLEEP_P, start, end))
    try:
        worker._run_features(units, 300.0)
    finally:
        if worker._influx_client is not None:
            worker._influx_client.close()
        worker.writer.close()
    rows = p.flux(
        f'|> filter(fn: (r) => r._measurement == "daily" and r.participant == "{SLEEP_P}")'
    )
    stored: dict[dt.date, dict[str, object]] = {}
    for r in rows:
        stored.setdefault(r["_time"].astimezone(ZoneInfo(TZ)).date(), {})[r["_field"]] = r["_value"]
    for k in range(days):  # the data start at noon before the first night
        day = first + dt.timedelta(days=k)
        point = stored[day]
        on_h, off_h = w.sleep[day]
        assert point["sleep_method"] == "hr_rest"
        assert point["sleep_onset_h"] == pytest.approx(on_h, abs=0.3)
        assert point["sleep_offset_h"] == pytest.approx(off_h, abs=0.3)
        assert 20 < float(point["hr_dip_pct"]) < 35  # type: ignore[arg-type]
        assert point["steps_peak30_per_min"] == WALK_STEPS
        assert point["sleep_nights_7d"] == min(k + 1, 7)
    week_end = stored[last]
    assert week_end["social_jetlag_h"] == pytest.approx(1.75, abs=0.2)
    assert week_end["sri_7d"] == pytest.approx(-100 + 200 * (1 - 2 * 210 / (6 * 1440)), abs=3)
    assert 0.3 < float(week_end["steps_is_7d"]) <= 1.0  # type: ignore[arg-type]
    assert week_end["hr_mesor_bpm"] == pytest.approx(66, abs=3)
    # the night's HRV comes from the sleep period: the 23:30 window counts
    assert week_end["hrv_night_windows"] == 2
    assert week_end["ln_rmssd_night"] == pytest.approx(float(np.median(np.log([30.0, 50.0]))))
    assert "counts_is_7d" not in week_end  # no accelerometer: absent, not zero


ACC_P = "p-acc"


def test_accelerometer_epochs_drive_sleep_and_count_rhythm(pipeline: Pipeline) -> None:
    """The same strap week plus the gateway's accelerometer epochs, stored from
    wire ``accel`` messages: the daily job reads them back per minute, so the
    night comes from the z-angle (HDCZA) and counts_* rhythm fields appear."""
    from collector import wire
    from tests.unit.synthetic_week import week

    p = pipeline
    first, days = dt.date(2025, 11, 10), 8
    w = week(first, days, TZ, seed=7)
    raw = {"study": p.study, "participant": ACC_P, "device": "arm-1"}
    lines: list[str | None] = []
    for t, bpm in zip(w.t_ns.tolist(), w.hr_bpm.tolist(), strict=True):
        lines.append(_hr(raw, round(bpm), t))
    asleep = np.zeros(w.t_ns.size, dtype=bool)
    for morning, (on_h, off_h) in w.sleep.items():
        midnight = (morning - dt.date(1970, 1, 1)).days * 86_400
        asleep |= (w.local_s >= midnight + on_h * 3600) & (w.local_s < midnight + off_h * 3600)
    rng = np.random.default_rng(3)
    samples: list[wire.Sample] = []
    for t, still in zip(w.t_ns.tolist(), asleep.tolist(), strict=True):
        counts = 0.0 if still else float(rng.uniform(800, 3000))
        for half in (0, 1):
            angle = 20.0 if still else float(rng.uniform(-60, 60))
            samples.append(
                wire.AccelEpochSample(
                    t + half * 30 * NS, 30, 1500, 3.0, 2.0, 0.0, 0.0, 0.0, counts / 2, angle
                )
            )
        samples.append(wire.AccelEpochSample(t, 60, 3000, 3.0, 2.0, 0.0, 0.0, 0.0, counts, 0.0))
    clock = wire.ClockQuality(True, "ntp", 5.0)
    for seq, k in enumerate(range(0, len(samples), 1000)):  # ~180 bytes a sample
        message = wire.Message(
            "accel",
            p.study,
            ACC_P,
            "arm-1",
            "gw-1",
            seq,
            int(w.t_ns[-1]),
            clock,
            tuple(samples[k : k + 1000]),
        )
        lines += schema.message_lines(wire.decode(wire.encode(message)))
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    try:
        writer.write([x for x in lines if x])
    finally:
        writer.close()
    config = pconfig.load(p.write_config(features={"timezone": TZ}))
    worker = Service(config)
    units = []
    for k in range(days):
        start, end = DayCalendar(TZ).day_of(_start(first + dt.timedelta(days=k)))
        units.append(Unit("daily", ACC_P, start, end))
    try:
        worker._run_features(units, 300.0)
    finally:
        if worker._influx_client is not None:
            worker._influx_client.close()
        worker.writer.close()
    rows = p.flux(f'|> filter(fn: (r) => r._measurement == "daily" and r.participant == "{ACC_P}")')
    stored: dict[dt.date, dict[str, object]] = {}
    for r in rows:
        stored.setdefault(r["_time"].astimezone(ZoneInfo(TZ)).date(), {})[r["_field"]] = r["_value"]
    for k in range(1, days):
        day = first + dt.timedelta(days=k)
        point = stored[day]
        on_h, off_h = w.sleep[day]
        assert point["sleep_method"] == "hdcza"
        assert point["sleep_onset_h"] == pytest.approx(on_h, abs=0.5)
        assert point["sleep_offset_h"] == pytest.approx(off_h, abs=0.5)
    week_end = stored[first + dt.timedelta(days=days - 1)]
    assert 0.3 < float(week_end["counts_is_7d"]) <= 1.0  # type: ignore[arg-type]
    assert "counts_m10_7d" in week_end
