"""Ingest + batcher: BLE records become wire messages committed to the outbox."""

from __future__ import annotations

from pathlib import Path

from collector import ble_events as ev
from collector import wire
from collector.batcher import Batcher, Route
from collector.gatt_uuids import Characteristic
from collector.ingest import Ingest
from collector.outbox import Outbox
from wellsense_sim import encode

T0 = 1_764_000_000 * 10**9
S = 10**9
HRM = Characteristic.HEART_RATE_MEASUREMENT.uuid
RSC = Characteristic.RSC_MEASUREMENT.uuid


def _setup(tmp_path: Path, max_samples: int = 1000) -> tuple[Ingest, Outbox, Batcher]:
    outbox = Outbox(tmp_path / "outbox.sqlite3", synchronous="NORMAL")
    batcher = Batcher(
        outbox=outbox,
        study="s1",
        gateway="gw-1",
        clock_quality=lambda: wire.ClockQuality(True, "ntp", 5.0),
        wall_ns=lambda: T0,
        max_samples=max_samples,
        max_interval_s=3600,
    )
    ingest = Ingest(batcher, {"chest": Route("p-1", "gw-1-chest")}, now_ns=lambda: T0)
    return ingest, outbox, batcher


def _messages(outbox: Outbox) -> list[wire.Message]:
    return [wire.decode(m.payload, topic=m.topic) for m in outbox.peek(1000)]


def _hrm(ts: int, hr: int, contact: bool | None, rr: tuple[float, ...] = ()) -> ev.RawNotification:
    data = encode.heart_rate_measurement(hr, contact=contact, rr_ms=rr)
    return ev.RawNotification(ts, "chest", HRM, data, 1)


def test_heart_rate_contact_events_and_parse_errors(tmp_path: Path) -> None:
    ingest, outbox, batcher = _setup(tmp_path)
    ingest.handle(_hrm(T0, 60, True, (1000.0,)))
    ingest.handle(_hrm(T0 + S, 61, False))
    ingest.handle(_hrm(T0 + 2 * S, 62, True, (977.5390625,)))
    ingest.handle(ev.RawNotification(T0 + 3 * S, "chest", HRM, b"\x10\x3c\x01", 1))  # odd RR byte
    ingest.handle(ev.RawNotification(T0, "stranger", HRM, b"\x00\x3c", 1))  # unconfigured: dropped
    batcher.flush_all()
    messages = _messages(outbox)
    hr = next(m for m in messages if m.stream == "hr")
    assert [s.hr_bpm for s in hr.samples] == [60, 61, 62]  # type: ignore[union-attr]
    assert hr.samples[0].rr_ms == (1000.0,)  # type: ignore[union-attr]
    status = next(m for m in messages if m.stream == "status")
    assert [s.event for s in status.samples] == ["contact_lost", "contact_restored"]  # type: ignore[union-attr]
    assert ingest.sensors["chest"].parse_errors == 1
    assert [m.seq for m in messages] == [0, 1]  # one counter per device across streams


def test_steps_are_integrated_from_cadence_without_losing_fractions(tmp_path: Path) -> None:
    ingest, outbox, batcher = _setup(tmp_path)
    data = encode.rsc_measurement(speed_m_s=1.2, cadence_per_min=100, running=False)
    for i in range(7):  # 100 steps/min every 1.5 s: 2.5 steps per interval
        ingest.handle(ev.RawNotification(T0 + i * 1_500_000_000, "chest", RSC, data, 1))
    ingest.handle(ev.SensorDisconnected(T0 + 11 * S, "chest", "AA", 1, "link lost", False))
    ingest.handle(ev.RawNotification(T0 + 20 * S, "chest", RSC, data, 2))
    batcher.flush_all()
    activity = next(m for m in _messages(outbox) if m.stream == "activity")
    steps = [s.steps for s in activity.samples]  # type: ignore[union-attr]
    assert steps[0] is None and steps[-1] is None  # nothing claimed across a gap
    assert sum(steps[1:-1]) == 15 and set(steps[1:-1]) == {2, 3}  # 6 intervals x 2.5


def test_batches_close_at_max_samples_and_health_reports_sensors(tmp_path: Path) -> None:
    ingest, outbox, _ = _setup(tmp_path, max_samples=2)
    for i in range(5):
        ingest.handle(_hrm(T0 + i * S, 70, None))
    assert [len(m.samples) for m in _messages(outbox)] == [2, 2]
    ingest.handle(ev.BatteryLevel(T0, "chest", 42))
    health = ingest.health_sensors()["chest"]
    assert health.battery_pct == 42 and health.last_sample_age_s == 0.0


def test_impossible_heart_rate_drops_its_notification_and_the_beat_clock_breaks(
    tmp_path: Path,
) -> None:
    ingest, outbox, batcher = _setup(tmp_path)
    for i in range(6):
        hr = 65535 if i == 3 else 60  # a uint16 glitch in the 4th notification
        ingest.handle(_hrm(T0 + i * S, hr, True, (1000.0,)))
    batcher.flush_all()
    (hr_msg,) = [m for m in _messages(outbox) if m.stream == "hr"]  # the batch survives
    samples = [s for s in hr_msg.samples if isinstance(s, wire.HrSample)]
    assert [s.ts_ns for s in samples] == [T0 + i * S for i in (0, 1, 2, 4, 5)]
    assert ingest.sensors["chest"].dropped_samples == 2  # the HR value and its RR value
    # The beat clock never saw the glitch: like a notification lost on the air,
    # the next one starts a new timeline (processing does not pair across it).
    assert [s.rr_break for s in samples] == [True, False, False, True, False]
    health = ingest.health_sensors()["chest"]
    assert health.dropped_samples == 2


def test_impossible_rr_value_is_dropped_alone_and_the_clock_stays_exact(tmp_path: Path) -> None:
    def run(directory: Path, middle: tuple[float, ...]) -> tuple[Ingest, list[wire.HrSample]]:
        directory.mkdir()
        ingest, outbox, batcher = _setup(directory)
        for i in range(8):
            rr = middle if i == 4 else (1000.0,)
            ingest.handle(_hrm(T0 + i * S, 60, True, rr))
        batcher.flush_all()
        (hr_msg,) = [m for m in _messages(outbox) if m.stream == "hr"]
        return ingest, [s for s in hr_msg.samples if isinstance(s, wire.HrSample)]

    ingest, glitched = run(tmp_path / "a", (500.0, 0.0, 500.0))  # the strap's RR 0 ms
    _, clean = run(tmp_path / "b", (500.0, 500.0))
    assert glitched[4].rr_ms == (500.0, 500.0)
    assert ingest.sensors["chest"].dropped_samples == 1
    # A 0 ms interval takes no time: the running sum is not short, and the beats
    # are placed exactly as if the glitch had never been sent.
    assert glitched == clean


def test_a_dropped_long_rr_leaves_the_running_sum_short_and_the_clock_breaks() -> None:
    """Why a dropped value must not be papered over: the beat clock finds the hole.

    If a real (not zero) interval went missing from a notification, the
    running sum lags the arrivals; the clock's lower bound breaks the timeline
    rather than pair beats across the hole.
    """
    from collector.beats import BeatClock

    clock = BeatClock()
    clock.add(T0, (1000.0,))
    for i in range(1, 4):
        clock.add(T0 + i * S, (1000.0,))
    assert clock.last_break is False
    clock.add(T0 + 4 * S, (500.0,))  # 500 of the 1000 ms dropped
    assert clock.last_break is True  # the short sum violates the lower bound at once
    clock.add(T0 + 5 * S, (1000.0,))
    assert clock.last_break is False  # and the new timeline goes on
