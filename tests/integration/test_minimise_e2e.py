"""Data minimisation end to end: only features, status and health leave the gateway.

Emulated strap (time x60: a 5-min window passes in 5 s) -> real ``wellsense
collect`` subprocess with ``[minimise] enabled`` -> the suite's Mosquitto ->
processing (in-process, features on) -> the suite's InfluxDB. A second
subscriber records every message that reaches the broker.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import scratch_dir
from tests.integration.harness import Collector, Emulator, Subscriber, write_collector_config
from tests.integration.processing_fixture import Pipeline, pipeline, wait_until

__all__ = ["pipeline"]  # the fixture, imported for pytest
pytestmark = pytest.mark.integration


@pytest.fixture
def workdir() -> Path:
    return scratch_dir("minimise-e2e")


@pytest.fixture
def emulator(workdir: Path) -> Iterator[Emulator]:
    emu = Emulator(workdir, participants=1, time_scale=60).start()
    try:
        yield emu
    finally:
        emu.stop()


def _query(p: Pipeline, predicate: str) -> list[dict[str, Any]]:
    """Records matching ``predicate``; the simulation clock runs ahead of now()."""
    flux = (
        f'from(bucket: "{p.bucket}")'
        " |> range(start: 2000-01-01T00:00:00Z, stop: 2100-01-01T00:00:00Z)"
        f" |> filter(fn: (r) => {predicate})"
    )
    with p.client() as client:
        tables = client.query_api().query(flux)
    return [record.values for table in tables for record in table.records]


def _gateway_windows(p: Pipeline) -> list[dict[str, Any]]:
    return _query(
        p, 'r._measurement == "hrv_window" and r._field == "n_beats" and r.source == "gateway"'
    )


def test_minimised_gateway_sends_only_features_status_and_health(
    workdir: Path, emulator: Emulator, pipeline: Pipeline
) -> None:
    config = write_collector_config(
        workdir / "collector.toml",
        pipeline.broker,
        study=pipeline.study,
        participants=1,
        data_dir=workdir / "gw",
    )
    with config.open("a") as f:
        f.write("\n[minimise]\nenabled = true\nwindow_s = 300\nkeep_raw_days = 7\n")
    sub = Subscriber(pipeline.broker, f"wellsense/v1/{pipeline.study}/#", f"sub-{pipeline.study}")
    pipeline.start(features={"hrv_window_s": 300})
    collector = Collector(config, pipeline.broker, emulator, workdir / "collector.log").start()
    try:
        wait_until(lambda: len(_gateway_windows(pipeline)) >= 2, 50, "two gateway HRV windows")
    finally:
        assert collector.stop() == 0
        sub.close()

    with sub.lock:
        streams = {m.stream for m in sub.messages}
    assert streams <= {"features", "status", "health"}, streams
    assert {"features", "status", "health"} <= streams
    assert not sub.invalid, sub.invalid[:3]
    raw = _query(pipeline, 'contains(value: r._measurement, set: ["hr", "rr", "activity"])')
    assert raw == [], "raw data reached storage"
    assert _query(pipeline, 'r._measurement == "device_status"'), "status did not flow"
    windows = _gateway_windows(pipeline)
    assert {w["participant"] for w in windows} == {"p-0001"}
    assert {w["device"] for w in windows} == {"gw-test-s1"}
    assert all(int(w["_value"]) > 0 for w in windows)
    # Nothing server-computed: without RR the server's feature job writes nothing.
    assert _query(pipeline, 'r._measurement == "hrv_window" and not exists r.source') == []
    # The raw data stayed on the gateway.
    with sqlite3.connect(workdir / "gw" / "raw.sqlite3") as conn:
        beats = conn.execute("SELECT count(*) FROM rr").fetchone()[0]
        hr = conn.execute("SELECT count(*) FROM hr").fetchone()[0]
    assert beats > 300 and hr > 50
