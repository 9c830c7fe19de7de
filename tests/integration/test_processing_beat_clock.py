"""A strap's notifications through the collector's beat clock, MQTT, processing and InfluxDB.

The stored ``hrv_window`` points, which the feature job computes from the
``rr`` points read back from InfluxDB (the recompute path), equal the HRV of
the beats exactly where the gateway placed them (``wire.hr_beat_times_ns`` of
the sent samples), and agree with the HRV of the true beat times.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from collector import ble_events as ev
from collector import wire
from collector.batcher import Batcher, Route
from collector.gatt_uuids import Characteristic
from collector.ingest import Ingest
from collector.outbox import Outbox
from processing.features.hrv import HRV_KEYS, hrv_window_at
from tests.integration.processing_fixture import Pipeline, pipeline, publish_messages, wait_until
from wellsense_sim import encode
from wellsense_sim.strap import NS_PER_S, StrapParams, beats_from_rr, notify_beats

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
WINDOW_S = 300
T0 = 1_764_115_200 * NS_PER_S + 17 * NS_PER_S  # not on a window boundary


def _messages(study: str, tmp_path: Path) -> tuple[list[wire.Message], list[int], list[float]]:
    """hr messages of a 26-min strap recording via the collector; true beats and RR."""
    n = 1900
    rr = [820.0 + 80.0 * math.sin(i / 3.5) + 30.0 * math.sin(i / 37.0) for i in range(n)]
    params = StrapParams(drift_ppm=50.0, latency_ms=(0.0, 50.0), loss=0.02, seed="e2e")
    notes = notify_beats(beats_from_rr(rr, start_ns=T0), params, start_ns=T0)
    outbox = Outbox(tmp_path / "outbox.sqlite3", synchronous="NORMAL")
    batcher = Batcher(
        outbox=outbox,
        study=study,
        gateway="gw-1",
        clock_quality=lambda: wire.ClockQuality(True, "sim", 1.0),
        wall_ns=lambda: T0,
        max_samples=60,
        max_interval_s=3600,
    )
    ingest = Ingest(batcher, {"chest": Route("p-beats", "gw-1-chest")}, now_ns=lambda: T0)
    hrm = Characteristic.HEART_RATE_MEASUREMENT.uuid
    true_ns: list[int] = []
    true_rr: list[float] = []
    for note in notes:
        if note.lost:
            continue
        data = encode.heart_rate_measurement(70, contact=True, rr_ms=note.rr_ms)
        ingest.handle(ev.RawNotification(note.received_ns, "chest", hrm, data, 1))
        true_ns += note.beat_ns
        true_rr += note.rr_ms
    batcher.flush_all()
    messages = [wire.decode(m.payload, topic=m.topic) for m in outbox.peek(10_000)]
    outbox.close()
    return [m for m in messages if m.stream == "hr"], true_ns, true_rr


def _window(t_ns: list[int], rr: list[float], start_ns: int) -> dict[str, float]:
    t = np.asarray(t_ns, dtype=np.int64)
    inside = (t >= start_ns) & (t < start_ns + WINDOW_S * NS_PER_S)
    row = hrv_window_at(t[inside], np.asarray(rr)[inside], start_ns=start_ns, window_s=WINDOW_S)
    assert row is not None
    return {k: float(row[k]) for k in HRV_KEYS}


def test_stored_windows_are_the_gateways_beats_and_agree_with_the_truth(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    messages, true_ns, true_rr = _messages(pipeline.study, tmp_path)
    samples = [s for m in messages for s in m.samples if isinstance(s, wire.HrSample) and s.rr_ms]
    assert any(s.rr_break for s in samples[1:])  # lost notifications: breaks on the wire
    placed = [t for s in samples for t in wire.hr_beat_times_ns(s)]
    rr = [v for s in samples for v in s.rr_ms]
    assert rr == true_rr

    window_ns = WINDOW_S * NS_PER_S
    starts = sorted({t - t % window_ns for t in placed})
    service = pipeline.start(features={"hrv_window_s": WINDOW_S})
    publish_messages(pipeline.broker, messages)
    wait_until(
        lambda: pipeline.count("hrv_window", "n_beats") == len(starts),
        60,
        f"{len(starts)} hrv windows computed",
    )
    rows = pipeline.flux('|> filter(fn: (r) => r._measurement == "hrv_window")')
    stored: dict[int, dict[str, float]] = {}
    for r in rows:
        start = int(r["_time"].timestamp()) * NS_PER_S
        stored.setdefault(start, {})[r["_field"]] = r["_value"]
    assert sorted(stored) == starts

    agreeing = 0
    complete = 0
    for start in starts:
        gateway = _window(placed, rr, start)
        for key in HRV_KEYS:  # the recompute path saw exactly the gateway's beats
            if math.isnan(gateway[key]):
                assert key not in stored[start], (start, key)
            else:
                assert stored[start][key] == pytest.approx(gateway[key], rel=1e-9), (start, key)
        truth = _window(true_ns, rr, start)
        if all(math.isfinite(v) for v in truth.values()):
            complete += 1
            rmssd_ok = abs(gateway["rmssd_ms"] / truth["rmssd_ms"] - 1) <= 0.02
            agreeing += rmssd_ok and all(math.isfinite(v) for v in gateway.values())
    assert complete >= 4 and agreeing == complete
    assert pipeline.stop(service) == 0
