"""Profile streams on the gateway: ACC frames become accel epochs (raw stays),
PPI becomes RR with quality, InfiniTime step counts become steps."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from collector import ble_events as ev
from collector import wire
from collector.batcher import Batcher, Route
from collector.ingest import Ingest
from collector.outbox import Outbox
from collector.pmd import PMD_DATA_UUID
from collector.profiles.pinetime import RAW_MOTION_UUID, STEP_COUNT_UUID
from wellsense_sim.pmd_frames import encode_delta_frame

pytest.importorskip("numpy")

T0 = 1_764_000_000 * 10**9  # a multiple of 30 s
S = 10**9
MS = 10**6


def _setup(tmp_path: Path) -> tuple[Ingest, Outbox, Batcher]:
    outbox = Outbox(tmp_path / "outbox.sqlite3", synchronous="NORMAL")
    batcher = Batcher(
        outbox=outbox,
        study="s1",
        gateway="gw-1",
        clock_quality=lambda: wire.ClockQuality(True, "ntp", 5.0),
        wall_ns=lambda: T0,
        max_samples=1000,
        max_interval_s=3600,
    )
    ingest = Ingest(batcher, {"arm": Route("p-1", "gw-1-arm")}, now_ns=lambda: T0)
    return ingest, outbox, batcher


def _messages(outbox: Outbox) -> list[wire.Message]:
    return [wire.decode(m.payload, topic=m.topic) for m in outbox.peek(1000)]


def _started(
    stream: str, fs_hz: float | None = None, factor: float | None = None
) -> ev.StreamStarted:
    return ev.StreamStarted(T0, "arm", 1, "polar_h10", stream, PMD_DATA_UUID, 2, fs_hz, factor)


def test_acc_frames_leave_as_epochs_only(tmp_path: Path) -> None:
    ingest, outbox, batcher = _setup(tmp_path)
    ingest.handle(ev.SensorConnected(T0, "arm", "C0:FF:EE:00:00:01", "Polar H10", 1, False))
    ingest.handle(_started("acc", 50.0, 1.0))
    sensor_t0 = 5 * S  # the strap's own clock: unrelated to Unix time
    per_frame = 36  # 0.72 s at 50 Hz
    frames = int(160 * 50 / per_frame)  # the first boundary is T0 + 30 s: four epochs
    for k in range(frames):
        first = k * per_frame
        samples = [(3 * ((first + i) % 2), -2, 1000) for i in range(per_frame)]  # still, face up
        last_ns = sensor_t0 + (first + per_frame - 1) * 20 * MS
        data = encode_delta_frame(last_ns, samples)
        received = T0 + (first + per_frame - 1) * 20 * MS + 30 * MS  # 30 ms BLE latency
        ingest.handle(ev.RawNotification(received, "arm", PMD_DATA_UUID, data, 1))
    ingest.handle(ev.SensorDisconnected(T0 + 200 * S, "arm", "C0:FF:EE:00:00:01", 1, "x", False))
    batcher.flush_all()
    accel = [s for m in _messages(outbox) if m.stream == "accel" for s in m.samples]
    epochs = [s for s in accel if isinstance(s, wire.AccelEpochSample)]
    thirty = [e for e in epochs if e.epoch_s == 30]
    assert len(thirty) >= 4 and all(e.n_samples == 1500 for e in thirty)
    assert all(e.angle_z_deg == pytest.approx(90.0, abs=0.5) for e in thirty)
    assert all(e.enmo_mg < 5 for e in thirty)
    assert {e.epoch_s for e in epochs} == {30, 60}
    # raw acceleration is nowhere in what the gateway publishes: 7 500 samples of
    # 3 axes became a handful of epochs
    published = sum(len(m.payload) for m in outbox.peek(1000))
    assert published < 4 * 1024
    assert all(m.topic.rsplit("/", 1)[1] in {"accel", "status"} for m in outbox.peek(1000))


def test_acc_before_a_start_response_is_dropped(tmp_path: Path) -> None:
    ingest, outbox, batcher = _setup(tmp_path)
    data = encode_delta_frame(S, [(0, 0, 1000)] * 36)
    ingest.handle(ev.RawNotification(T0, "arm", PMD_DATA_UUID, data, 1))
    batcher.flush_all()
    assert _messages(outbox) == []


def _ppi_frame(samples: list[tuple[int, int, int, int]]) -> bytes:
    body = b"".join(struct.pack("<BHHB", *s) for s in samples)
    return bytes([3]) + bytes(8) + bytes([0]) + body


def test_ppi_becomes_rr_with_quality(tmp_path: Path) -> None:
    ingest, outbox, batcher = _setup(tmp_path)
    ingest.handle(_started("ppi"))
    frame = _ppi_frame([(60, 1000, 8, 0b110), (61, 990, 8, 0b111), (62, 970, 9, 0b110)])
    ingest.handle(ev.RawNotification(T0 + 3 * S, "arm", PMD_DATA_UUID, frame, 1))
    ingest.handle(ev.RawNotification(T0 + 4 * S, "arm", PMD_DATA_UUID, b"\x03\x00", 1))
    batcher.flush_all()
    (hr,) = [m for m in _messages(outbox) if m.stream == "hr"]
    (sample,) = hr.samples
    assert isinstance(sample, wire.HrSample)
    assert sample.rr_ms == (1000.0, 970.0)  # the blocked interval is left out
    assert (sample.hr_bpm, sample.contact) == (62, True)
    assert sample.beat_ns is not None
    assert ingest.sensors["arm"].parse_errors == 1


def test_pinetime_steps_per_notification_and_raw_motion_stays(tmp_path: Path) -> None:
    ingest, outbox, batcher = _setup(tmp_path)
    for i, count in enumerate((100, 130, 12)):  # 12: the watch's midnight reset
        data = struct.pack("<I", count)
        ingest.handle(ev.RawNotification(T0 + i * 60 * S, "arm", STEP_COUNT_UUID, data, 1))
    motion = struct.pack("<3h", 10, -20, 1000)
    ingest.handle(ev.RawNotification(T0, "arm", RAW_MOTION_UUID, motion, 1))
    batcher.flush_all()
    messages = _messages(outbox)
    assert [m.stream for m in messages] == ["activity"]
    assert [s.steps for s in messages[0].samples] == [None, 30, None]  # type: ignore[union-attr]
