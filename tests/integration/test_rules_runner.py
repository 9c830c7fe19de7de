"""``wellsense rules run`` against the suite's real InfluxDB 2.7 and Mosquitto.

Stored points (written as the processing service writes them) for three
participants and a gateway; one evaluation must raise exactly the expected
alerts on MQTT and in the ``alert`` measurement, a restart must not repeat
them, and new data must resolve them.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from processing import config as pconfig
from processing import schema
from processing.rules.engine import NS
from processing.rules.loader import load_rules
from processing.rules.runner import serve
from processing.writer import InfluxWriter
from tests.integration.processing_fixture import Collector, Pipeline, pipeline, wait_until

__all__ = ["pipeline"]

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NOW = int(dt.datetime(2025, 11, 26, 1, 0, tzinfo=dt.UTC).timestamp()) * NS
HOUR = 3600 * NS
DAY = 24 * HOUR


def day_ns(k: int) -> int:
    """Midnight UTC of day k before today (k=1: yesterday, the newest complete day)."""
    return NOW - HOUR - k * DAY


def stored_lines(study: str) -> list[str]:
    rng = np.random.default_rng(7)
    lines: list[str | None] = []
    # p-1: last heart rate 7 h ago (worn), battery 9 %
    tags = {"study": study, "participant": "p-1", "device": "strap-1"}
    lines.append(schema.line("hr", tags, {"hr_bpm": 70, "contact": True, "seq": 1}, NOW - 7 * HOUR))
    lines.append(
        schema.line(
            "device_status",
            {**tags, "event": "battery"},
            {"battery_pct": 9, "seq": 2},
            NOW - 6 * HOUR,
        )
    )
    # gateway: offline for 2 h
    gw = {"study": study, "gateway": "gw-1"}
    lines.append(schema.line("gateway_state", gw, {"state": "offline"}, NOW - 2 * HOUR))
    lines.append(
        schema.line("gateway_health", gw, {"uptime_s": 99.0, "seq": 5}, NOW - 2 * HOUR - NS)
    )
    # p-2: 30 days of resting HR and nocturnal ln RMSSD as the service stores them in
    # `daily` (no z-scores: the engine derives them); the last 3 days RMSSD low, HR high
    for k in range(30, 0, -1):
        low = k <= 3
        daily = {"study": study, "participant": "p-2", "tz": "UTC"}
        resting = 75.0 if low else float(rng.normal(60, 2))
        ln_rmssd = math.log(20.0) if low else float(rng.normal(math.log(45.0), 0.07))
        fields = {"resting_hr_bpm": resting, "ln_rmssd_night": ln_rmssd}
        lines.append(schema.line("daily", daily, fields, day_ns(k)))
    # p-3: the last 3 nights most HRV windows had no usable RMSSD (a loose strap)
    for k in range(5, 0, -1):
        daily = {"study": study, "participant": "p-3", "tz": "UTC"}
        usable = 0.25 if k <= 3 else 1.0
        fields = {"hrv_night_windows": 72, "hrv_night_usable_fraction": usable}
        lines.append(schema.line("daily", daily, fields, day_ns(k)))
    return [line for line in lines if line]


EXPECTED = {
    ("adherence-no-data", "p-1", ""),
    ("adherence-low-wear", "p-1", ""),
    ("adherence-battery-low", "p-1", "strap-1"),
    ("adherence-gateway-offline", "", "gw-1"),
    ("baseline-rmssd-low", "p-2", ""),
    ("baseline-resting-hr-high", "p-2", ""),
    ("quality-hrv-low", "p-3", ""),
}


def alert_rows(p: Pipeline) -> list[dict[str, object]]:
    return p.flux(
        '|> filter(fn: (r) => r._measurement == "alert" and r._field == "state")'
        ' |> group() |> sort(columns: ["_time"])'
    )


def test_runner_raises_restores_and_resolves(pipeline: Pipeline) -> None:
    p = pipeline
    config = pconfig.load(p.write_config())
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    writer.write(stored_lines(p.study))
    rules = load_rules(REPO / "rules")
    listener = Collector(p.broker, f"wellsense/v1/{p.study}/_alerts/#")

    def once(now: int) -> int:
        return serve(config, rules, interval_s=1, lookback_s=35 * 86400,
                     stop=threading.Event(), once=True, clock=lambda: now)  # fmt: skip

    try:
        assert once(NOW) == 0
        rows = alert_rows(p)
        got = {(r["rule"], r.get("participant") or "", r.get("device") or r.get("gateway") or "")
               for r in rows}  # fmt: skip
        assert got == EXPECTED
        assert {r["_value"] for r in rows} == {"firing"}
        wait_until(lambda: len(listener.payloads.queue) >= 2 * len(EXPECTED), 10, "MQTT alerts")
        records = listener.records()
        events = [r for r in records if r["schema"] == "wellsense.alert.v1"]
        assert {e["rule"] for e in events} == {rule for rule, _, _ in EXPECTED}
        states = {(r.get("participant"), r.get("gateway")): r for r in records
                  if r["schema"] == "wellsense.alert-state.v1"}  # fmt: skip
        assert set(states[("p-1", None)]["alerts"]) == {
            "adherence-no-data",
            "adherence-low-wear",
            "adherence-battery-low/strap-1",
        }

        # a restart restores the open alerts: nothing is repeated
        assert once(NOW + 60 * NS) == 0
        assert len(alert_rows(p)) == len(EXPECTED)

        # the strap is worn again: no-data and low-wear resolve
        tags = {"study": p.study, "participant": "p-1", "device": "strap-1"}
        writer.write([schema.line("hr", tags, {"hr_bpm": 72, "contact": True, "seq": 3}, NOW + HOUR)
                      or ""])  # fmt: skip
        assert once(NOW + HOUR + 30 * NS) == 0
        resolved = {r["rule"] for r in alert_rows(p) if r["_value"] == "resolved"}
        assert resolved == {"adherence-no-data", "adherence-low-wear"}
    finally:
        listener.close()
        writer.close()


def test_hrv_good_fraction_counts_windows_whose_rmssd_is_defined(pipeline: Pipeline) -> None:
    """Flags that blank only DFA/SampEn/LF-HF do not make a window bad; blocking ones do."""
    from processing.rules.influx_source import InfluxSource
    from processing.rules.loader import load_rules_text

    p = pipeline
    win = {"study": p.study, "participant": "p-4", "window": "300s"}
    qualities = ["", "dfa_undefined,sampen_undefined", "short_for_frequency,gap_in_window",
                 "low_coverage", "many_artefacts,gap_in_window"]  # fmt: skip
    lines = [
        schema.line("hrv_window", win, {"rmssd_ms": 40.0, "quality": q}, day_ns(1) + i * 300 * NS)
        for i, q in enumerate(qualities)
    ]
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    try:
        writer.write([x for x in lines if x])
    finally:
        writer.close()
    rules = load_rules_text(
        '[[rule]]\nid = "q"\ndescription = "A screening signal for the study team, not a '
        'diagnosis."\nscope = "participant"\ncondition = "hrv_good_fraction < 0.5"\n'
        'severity = "info"\ncooldown = "0s"\nnotify = ["data-manager"]\n'
    )
    with p.client() as client:
        source = InfluxSource(query_api=client.query_api(), org=p.influx.org, bucket=p.bucket,
                              study=p.study, lookback_ns=5 * DAY, timezone="UTC")  # fmt: skip
        read = source.daily(NOW, list(rules))["p-4"]
    (day,) = read
    assert read[day]["hrv_windows"] == 5.0
    assert read[day]["hrv_good_fraction"] == 3 / 5
