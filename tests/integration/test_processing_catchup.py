"""Crash catch-up: raw data stored (and acknowledged) before a crash still gets its features.

Raw points are written straight into InfluxDB, as a worker that was killed
between the raw write and the feature computation leaves them. A worker
started with ``catchup_h = 0`` computes nothing for them; a worker started
with the default catch-up marks and computes their HRV windows and day.
"""

from __future__ import annotations

import time

import pytest

from processing import schema
from processing.writer import InfluxWriter
from tests.integration.processing_fixture import Pipeline, hr_messages, pipeline, wait_until

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
NS = 1_000_000_000


def test_restart_computes_the_features_of_raw_data_stored_before_a_crash(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    # recent (wall clock), 10 s into a window: the first beats stay in it
    start = (time.time_ns() - 40 * 60 * NS) // (300 * NS) * (300 * NS) + 10 * NS
    messages = hr_messages(
        study=p.study, participant="p-crash", device="d-1", n_messages=72, start_ns=start
    )
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    try:
        writer.write([text for m in messages for text in schema.message_lines(m)])
    finally:
        writer.close()

    off = p.start("w-off", features={"catchup_h": 0})
    time.sleep(2.5)  # longer than idle_s: a dirty unit would have been computed
    assert p.stop(off) == 0
    assert p.count("hrv_window", "n_beats") == 0 and p.count("daily", "hr_samples") == 0

    on = p.start("w-on")  # default catchup_h
    wait_until(
        lambda: p.count("hrv_window", "n_beats") == 2 and p.count("daily", "hr_samples") >= 1,
        30,
        "the catch-up to compute the windows and the day",
    )
    assert on.metrics.received == 0  # nothing new arrived: the catch-up did it
    assert p.stop(on) == 0
    rows = p.flux('|> filter(fn: (r) => r._measurement == "daily" and r._field == "hr_samples")')
    assert sum(int(r["_value"]) for r in rows) == 72 * 5
