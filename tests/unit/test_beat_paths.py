"""One placement of beats: gateway ingest -> wire -> processing, the raw store, the CLI.

Notifications of a simulated strap (own 1 s cadence, drift, latency, lost
notifications) go through the collector's ingest (one beat clock per
connection) into wire messages; processing's ``rr`` points, the gateway's raw
store (data minimisation) and ``wellsense features hrv`` on a notification CSV
must give the same beat times to the nanosecond, and the stored times alone
must show every break the gateway flagged (the recompute-from-InfluxDB path
reads nothing else).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np

from collector import ble_events as ev
from collector import wire
from collector.batcher import Batcher, Route
from collector.gatt_uuids import Characteristic
from collector.ingest import Ingest
from collector.outbox import Outbox
from collector.rawstore import RawStore
from processing import schema
from processing.features import cli
from processing.features.rr_clean import Reason, clean_rr
from wellsense_sim import encode
from wellsense_sim.strap import (
    NS_PER_S,
    StrapNotification,
    StrapParams,
    beats_from_rr,
    notify_beats,
)

T0 = 1_764_000_000 * NS_PER_S
HRM = Characteristic.HEART_RATE_MEASUREMENT.uuid
DEVICE = "gw-1-chest"


def _notifications(n_beats: int, *, seed: int, start_ns: int) -> list[StrapNotification]:
    rr = [800.0 + 90.0 * np.sin(i / 4.0) + 25.0 * ((i * 7919) % 13 - 6) / 6 for i in range(n_beats)]
    params = StrapParams(drift_ppm=40.0, latency_ms=(0.0, 50.0), loss=0.03, seed=seed)
    return [
        n
        for n in notify_beats(beats_from_rr(rr, start_ns=start_ns), params, start_ns=start_ns)
        if not n.lost
    ]


def _ingest(tmp_path: Path, sessions: list[list[StrapNotification]]) -> list[wire.Message]:
    outbox = Outbox(tmp_path / "outbox.sqlite3", synchronous="NORMAL")
    batcher = Batcher(
        outbox=outbox,
        study="s1",
        gateway="gw-1",
        clock_quality=lambda: wire.ClockQuality(True, "ntp", 5.0),
        wall_ns=lambda: T0,
        max_samples=100,
        max_interval_s=3600,
    )
    ingest = Ingest(batcher, {"chest": Route("p-1", DEVICE)}, now_ns=lambda: T0)
    for session, notes in enumerate(sessions, start=1):
        for n in notes:
            data = encode.heart_rate_measurement(70, contact=True, rr_ms=n.rr_ms)
            ingest.handle(ev.RawNotification(n.received_ns, "chest", HRM, data, session))
    batcher.flush_all()
    messages = [wire.decode(m.payload, topic=m.topic) for m in outbox.peek(10_000)]
    outbox.close()
    return [m for m in messages if m.stream == "hr"]


def _rr_points(messages: list[wire.Message]) -> tuple[list[int], list[float]]:
    """(time, rr_ms) of every ``rr`` line processing writes, in order."""
    times: list[int] = []
    rr: list[float] = []
    for m in messages:
        for line in schema.message_lines(m):
            if line.startswith("rr,"):
                match = re.search(r" rr_ms=([0-9.e+-]+),seq=\d+i (\d+)$", line)
                assert match, line
                rr.append(float(match.group(1)))
                times.append(int(match.group(2)))
    return times, rr


def test_processing_raw_store_and_cli_place_every_beat_alike(tmp_path: Path) -> None:
    notes = _notifications(1500, seed=5, start_ns=T0)
    messages = _ingest(tmp_path, [notes])
    samples = [s for m in messages for s in m.samples]
    assert all(isinstance(s, wire.HrSample) for s in samples)
    assert any(s.rr_break for s in samples[1:])  # lost notifications broke the timeline
    assert all(m.topic.endswith("/hr") for m in messages)

    processing_ns, processing_rr = _rr_points(messages)

    with RawStore(tmp_path / "raw.sqlite3", keep_raw_days=30, clock=lambda: T0) as store:
        for m in messages:
            store.store("p-1", DEVICE, "hr", m.samples)
        store_ns, store_rr = store.beats(DEVICE, 0, 2**62)

    csv = tmp_path / "notifications.csv"
    rows = [f"{n.received_ns},{' '.join(repr(v) for v in n.rr_ms)}" for n in notes]
    csv.write_text("received_ns,rr_ms\n" + "\n".join(rows) + "\n")
    rec = cli.read_rr(csv)
    assert rec.notifications is not None
    cli_ns, cli_rr = cli.notification_beats(rec.notifications)

    assert len(processing_ns) == sum(len(n.rr_ms) for n in notes)
    assert processing_ns == store_ns == cli_ns
    assert processing_rr == store_rr == cli_rr
    assert processing_ns == sorted(set(processing_ns))  # strictly increasing


def test_cli_computes_windows_from_a_notification_file(tmp_path: Path) -> None:
    notes = _notifications(900, seed=6, start_ns=T0)
    csv = tmp_path / "notifications.csv"
    rows = [f"{n.received_ns},{' '.join(repr(v) for v in n.rr_ms)}" for n in notes]
    csv.write_text("received_ns,rr_ms\n" + "\n".join(rows) + "\n")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["hrv", str(csv)], "wf") == 0
    windows = json.loads(buf.getvalue())["windows"]
    assert windows and all(w["start_s"] % 300 == 0 for w in windows)  # epoch-aligned
    full = [w for w in windows if w["n_beats"] > 300]
    assert full and all(w["rmssd_ms"] is not None for w in full)


def test_stored_times_alone_show_every_break(tmp_path: Path) -> None:
    # two connections; lost notifications in both
    first = _notifications(1200, seed=7, start_ns=T0)
    second = _notifications(1200, seed=8, start_ns=first[-1].received_ns + 5 * NS_PER_S)
    messages = _ingest(tmp_path, [first, second])
    samples = [s for m in messages for s in m.samples if isinstance(s, wire.HrSample) and s.rr_ms]
    breaks: list[bool] = []
    for s in samples:
        breaks += [bool(s.rr_break)] + [False] * (len(s.rr_ms) - 1)
    # the first sample of each connection starts a new timeline
    first_of_second = sum(1 for n in first for _ in n.rr_ms)
    assert breaks[0] and breaks[first_of_second]

    t_ns, rr = _rr_points(messages)  # what InfluxDB holds
    t0 = t_ns[0] - t_ns[0] % (300 * NS_PER_S)
    clean = clean_rr(np.asarray(rr), (np.asarray(t_ns) - t0).astype(np.float64) / 1e9)
    kept = clean.reason == Reason.KEPT
    prev_kept = np.concatenate([[False], kept[:-1]])
    # processing's successive test on stored times == the gateway's flag (for kept pairs)
    successive = np.zeros(len(rr), dtype=bool)
    successive[kept] = clean.successive
    both = kept & prev_kept
    assert np.array_equal(successive[both], ~np.asarray(breaks)[both])
    assert np.count_nonzero(np.asarray(breaks)[both]) > 3


def test_v1_samples_keep_the_old_placement() -> None:
    sample = wire.HrSample(T0, 60, True, None, (800.0, 812.5))
    assert wire.hr_beat_times_ns(sample) == [T0 - 812_500_000, T0]
    placed = wire.HrSample(T0, 60, True, None, (800.0, 812.5), beat_ns=T0 - 300, rr_break=False)
    assert wire.hr_beat_times_ns(placed) == [T0 - 300 - 812_500_000, T0 - 300]
