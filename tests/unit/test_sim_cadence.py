"""The emulator's straps: own cadence at any time compression, latency, loss, replay.

The emulator is driven without D-Bus: a hand-moved clock and
:meth:`DeviceState.pump`, exactly what its ticker calls.
"""

from __future__ import annotations

import gzip
import itertools
import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.features_data import require
from wellsense_sim.clock import SimClock, SimClockParams
from wellsense_sim.config import load_toml
from wellsense_sim.emulator import DeviceState, Emulator
from wellsense_sim.physiology import NS_PER_S
from wellsense_sim.replay import Replay, ReplayError, read_rr_ms
from wellsense_sim.wearable import WearableConfig

T0 = 1_736_157_600 * NS_PER_S  # 2025-01-06T10:00:00Z: awake, worn
ADDRESS = "C0:FF:EE:00:00:01"


class ManualClock:
    """A SimClock whose real (monotonic) time the test moves."""

    def __init__(self, time_scale: float) -> None:
        self.mono_ns = 0
        self.clock = SimClock(SimClockParams(epoch_ns=T0, time_scale=time_scale, anchor_wall_ns=0),
                              wall_ns=lambda: 0, monotonic_ns=lambda: self.mono_ns)


def _emulator(tmp_path: Path, time_scale: float, **wearable: Any) -> tuple[Emulator, DeviceState,
                                                                          ManualClock]:
    manual = ManualClock(time_scale)
    emu = Emulator("unix:path=/nonexistent", clock=manual.clock, truth_log=tmp_path / "truth.jsonl")
    emu.open_truth_log()
    device = emu.add_wearable(WearableConfig(ADDRESS, seed=5, **wearable))
    device.wearable.worn_override = True
    return emu, device, manual


def _listen(emu: Emulator, device: DeviceState) -> list[tuple[int, bytes]]:
    """Start a notify session on heart rate; returns the list (sim time, payload) fills."""
    seen: list[tuple[int, bytes]] = []
    hr = device.chars["2a37"]
    plain = hr.notify

    def notify(value: bytes) -> None:
        seen.append((emu.clock.now_ns(), value))
        plain(value)

    hr.notify = notify  # type: ignore[method-assign]
    device.connected = True
    emu.current_sender = ":1.42"
    hr.start_notify()
    return seen


def _run(device: DeviceState, manual: ManualClock, real_steps_ns: Iterable[int]) -> None:
    for step in real_steps_ns:
        manual.mono_ns += step
        device.pump(manual.clock.now_ns())


def _truth(emu: Emulator, tmp_path: Path) -> list[dict[str, Any]]:
    emu.close_truth_log()
    rows = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["connection"], r["index"]))


def _rr_of(payload: bytes) -> list[float]:
    flags = payload[0]
    off = 1 + (2 if flags & 0x01 else 1) + (2 if flags & 0x08 else 0)
    n = (len(payload) - off) // 2 if flags & 0x10 else 0
    return [u * 1000 / 1024 for u in struct.unpack_from(f"<{n}H", payload, off)]


def test_cadence_is_the_straps_own_at_time_compression(tmp_path: Path) -> None:
    emu, device, manual = _emulator(tmp_path, 720, drift_ppm=50.0, latency_min_ms=0.0,
                                    latency_max_ms=50.0)
    seen = _listen(emu, device)
    _run(device, manual, [1_000_000] * 1000)  # 1 real s in 1 ms steps = 720 sim s
    truth = _truth(emu, tmp_path)
    # 1 s of a clock 50 ppm fast: 720 notifications in 720 sim seconds, not one per beat
    assert len(truth) in (719, 720)
    sent = [r["sent_ns"] for r in truth]
    assert all(abs(b - a - 999_950_002) <= 2 for a, b in itertools.pairwise(sent))
    assert {len(r["rr_ms"]) for r in truth} >= {1, 2}  # beats do not line up with sends
    # each went out once the sim clock reached its arrival time, not before
    assert [r["fate"] for r in truth] == ["delivered"] * len(truth)
    assert all(r["delivered_ns"] >= r["received_ns"] for r in truth)
    # the bytes on D-Bus carry exactly the logged RR values, in order
    assert [_rr_of(p) for _, p in seen] == [r["rr_ms"] for r in truth]
    assert device.stats.hr_notifications == len(truth)
    assert device.stats.rr_values == sum(len(r["rr_ms"]) for r in truth)


def test_what_is_sent_does_not_depend_on_how_often_the_emulator_wakes(tmp_path: Path) -> None:
    runs = []
    for i, steps in enumerate(([1_000_000] * 2000, [37_000_000] * 54, [2_000_000_000])):
        path = tmp_path / f"r{i}"
        path.mkdir()
        emu, device, manual = _emulator(path, 360, drift_ppm=-30.0, loss=0.02)
        _listen(emu, device)
        _run(device, manual, steps)
        runs.append([(r["sent_ns"], r["received_ns"], r["rr_ms"], r["beat_ns"], r["fate"])
                     for r in _truth(emu, path) if r["sent_ns"] <= T0 + 700 * NS_PER_S])
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0]) > 600


def test_latency_keeps_order_and_delays_delivery(tmp_path: Path) -> None:
    emu, device, manual = _emulator(tmp_path, 1, latency_min_ms=20.0, latency_max_ms=45.0)
    seen = _listen(emu, device)
    _run(device, manual, [5_000_000] * 12_000)  # 60 s at x1, woken every 5 ms
    truth = _truth(emu, tmp_path)
    lat_ms = [(r["received_ns"] - r["sent_ns"]) / 1e6 for r in truth]
    assert min(lat_ms) >= 20.0 and max(lat_ms) <= 45.0
    arrivals = [r["received_ns"] for r in truth]
    assert arrivals == sorted(arrivals)
    # delivered after the arrival time, within one wake-up (5 ms)
    assert all(0 <= r["delivered_ns"] - r["received_ns"] <= 5_000_000 for r in truth)
    assert [t for t, _ in seen] == [r["delivered_ns"] for r in truth]


def test_lost_notifications_are_logged_not_sent(tmp_path: Path) -> None:
    emu, device, manual = _emulator(tmp_path, 600, loss=0.1)
    seen = _listen(emu, device)
    _run(device, manual, [10_000_000] * 300)  # 1800 sim s
    truth = _truth(emu, tmp_path)
    lost = [r for r in truth if r["fate"] == "lost"]
    assert 0.06 < len(lost) / len(truth) < 0.14
    assert device.stats.hr_lost == len(lost)
    assert len(seen) == len(truth) - len(lost) == device.stats.hr_notifications
    delivered = [r["rr_ms"] for r in truth if r["fate"] == "delivered"]
    assert [_rr_of(p) for _, p in seen] == delivered


def test_contact_loss_breaks_the_rr_sequence(tmp_path: Path) -> None:
    emu, device, manual = _emulator(tmp_path, 60, latency_max_ms=0.0)
    _listen(emu, device)
    _run(device, manual, [50_000_000] * 20)  # 60 sim s
    device.wearable.contact_override = False
    off_ns = emu.clock.now_ns()
    _run(device, manual, [50_000_000] * 10)  # 30 sim s without contact
    on_ns = emu.clock.now_ns()
    device.wearable.contact_override = None
    _run(device, manual, [50_000_000] * 20)
    truth = _truth(emu, tmp_path)
    beats = [(t, rr) for r in truth for t, rr in zip(r["beat_ns"], r["rr_ms"], strict=True)]
    # no RR value for a beat without contact, nor for the first beat after it
    assert not [t for t, _ in beats if off_ns < t <= on_ns]
    after = [(t, rr) for t, rr in beats if t > on_ns]
    before = [(t, rr) for t, rr in beats if t <= off_ns]
    assert after[0][1] < 2000 and after[0][0] - after[0][1] * 1e6 > on_ns - 1e6
    # everywhere else each RR value is the time since the previous beat (1/1024 s ticks)
    for (t0, _), (t1, rr) in itertools.pairwise(before):
        assert abs((t1 - t0) / 1e6 - rr) <= 1000 / 1024
    off_notes = [r for r in truth if off_ns + 1e9 < r["sent_ns"] <= on_ns]
    assert off_notes and not any(r["contact"] for r in off_notes)


def test_disconnect_ends_the_cadence_and_logs_what_was_in_flight(tmp_path: Path) -> None:
    emu, device, manual = _emulator(tmp_path, 3600, latency_min_ms=40.0, latency_max_ms=50.0)
    _listen(emu, device)
    # 1 ms real = 3.6 sim s: stop right after a send, before its 40-50 ms latency
    _run(device, manual, [1_000_000] * 10)
    pending = device.next_event_ns()
    device.disconnect("test")
    assert device.cadence is None and device.next_event_ns() is None
    emu.current_sender = ":1.42"
    device.chars["2a37"].start_notify()
    assert device.connection == 2
    _run(device, manual, [1_000_000] * 10)
    truth = _truth(emu, tmp_path)
    assert {r["connection"] for r in truth} == {1, 2}
    assert pending is not None
    undelivered = [r for r in truth if r["fate"] == "undelivered"]
    assert len(undelivered) == device.stats.hr_undelivered <= 1
    # a new connection starts a new timeline: its first notification follows its own start
    second = [r for r in truth if r["connection"] == 2]
    assert second[0]["index"] == 0


# --------------------------------------------------------------------------- replay


def test_replay_reads_the_three_formats_and_quirks(tmp_path: Path) -> None:
    rr = require("rr")
    nsr = read_rr_ms(rr / "nsr2db" / "nsr001_rr_secs.txt.gz")
    assert len(nsr) == 106459  # manifest: n_rr (the offset line is dropped)
    assert nsr[0] == pytest.approx(695.3125)
    chf = read_rr_ms(rr / "chf2db" / "chf201_rr_secs.txt.gz")
    assert all((v / 7.8125).is_integer() for v in chf[:1000])  # 1/128 s annotations
    irurzun = read_rr_ms(rr / "healthy-irurzun" / "000.txt")  # CRLF, ms, no offset line
    assert irurzun[:3] == [789.0, 727.0, 789.0]
    stray = read_rr_ms(rr / "healthy-irurzun" / "008.txt")  # ends with a stray '@'
    assert len(stray) > 50_000 and all(v > 0 for v in stray)
    # the same rules on small files
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"225.5\n0.75\n0.8\n"))
    assert read_rr_ms(tmp_path / "a.txt.gz") == [750.0, 800.0]
    (tmp_path / "b.txt").write_bytes(b"800\r\n810\r\n\r\n@\n")
    assert read_rr_ms(tmp_path / "b.txt") == [800.0, 810.0]
    assert read_rr_ms(tmp_path / "b.txt", unit="s", skip_first=False) == [800_000.0, 810_000.0]
    with pytest.raises(ReplayError, match="no numbers"):
        (tmp_path / "c.txt").write_text("@\n")
        read_rr_ms(tmp_path / "c.txt")


def test_replay_offset_duration_and_gaps() -> None:
    rr = [800.0] * 10 + [5000.0] + [900.0] * 10
    replay = Replay(rr, start_ns=T0, offset_s=2.0, duration_s=12.0)
    # from the first beat after 2 s (1.6 s), whole intervals within 12 s
    assert replay.rr_ms == (800.0,) * 8 + (5000.0,)
    beats = replay.beats_until(T0 + 100 * NS_PER_S)
    assert [b.t_ns - T0 for b in beats[:2]] == [800_000_000, 1_600_000_000]
    assert [b.after_gap for b in beats] == [False] * 8 + [True]
    assert replay.finished
    with pytest.raises(ReplayError, match="past the end"):
        Replay(rr, start_ns=T0, offset_s=1000.0)


def test_replay_sends_the_recording_beat_by_beat(tmp_path: Path) -> None:
    rr_ms = [800.0 + 7.8125 * (i % 9) for i in range(200)] + [3000.0] + [850.0] * 100
    path = tmp_path / "rec.txt"
    path.write_text("\n".join(f"{v:.4f}" for v in rr_ms))
    emu, device, manual = _emulator(tmp_path, 120, replay=str(path), replay_offset_s=0.0,
                                    drift_ppm=0.0, latency_max_ms=30.0)
    device.wearable.worn_override = None  # a recording is worn throughout
    _listen(emu, device)
    _run(device, manual, [20_000_000] * 300)  # 720 sim s: past the end
    truth = _truth(emu, tmp_path)
    sent = [v for r in truth for v in r["rr_ms"]]
    # the first beat has no interval, nor has the beat that ends the gap
    expect = rr_ms[1:200] + rr_ms[201:]
    assert len(sent) == len(expect)
    # the strap measures on its own 1/1024 s ticks: within one tick, never accumulating
    assert all(abs(a - b) <= 1000 / 1024 for a, b in zip(sent, expect, strict=True))
    start = device.wearable.replay
    assert start is not None
    beats = [t for r in truth for t in r["beat_ns"]]
    true_times = list(itertools.accumulate((round(v * 1e6) for v in rr_ms), initial=start.start_ns))
    assert beats == true_times[2:201] + true_times[202:]
    quiet = [r for r in truth if r["sent_ns"] > true_times[-1] + 2 * NS_PER_S]
    assert quiet and not any(r["contact"] or r["rr_ms"] for r in quiet)


def test_replay_options_from_toml_and_command_line(tmp_path: Path) -> None:
    (tmp_path / "rec.txt").write_text("800\n810\n")
    (tmp_path / "sim.toml").write_text(
        '[emulator]\ntime_scale = 60\ntruth_log = "t.jsonl"\n'
        '[[wearable]]\naddress = "c0:ff:ee:00:00:07"\nreplay = "rec.txt"\n'
        "replay_offset_s = 0.5\nloss = 0.01\ndrift_ppm = 50\nlatency_max_ms = 20\n"
    )
    options, (w,) = load_toml(tmp_path / "sim.toml")
    assert options["truth_log"] == "t.jsonl"
    assert w.replay == str(tmp_path / "rec.txt") and w.replay_offset_s == 0.5
    assert (w.loss, w.drift_ppm, w.latency_max_ms) == (0.01, 50, 20)
    with pytest.raises(ValueError, match="loss"):
        WearableConfig(ADDRESS, loss=1.5)
    with pytest.raises(ValueError, match="latency"):
        WearableConfig(ADDRESS, latency_min_ms=30.0, latency_max_ms=10.0)


def test_a_full_socket_buffer_does_not_drop_the_bus() -> None:
    from wellsense_sim.emulator import _NonBlockingSend

    class FullSocket:
        def send(self, data: bytes) -> int:
            raise BlockingIOError(11, "Resource temporarily unavailable")

        def fileno(self) -> int:
            return 7

    sock = _NonBlockingSend(FullSocket())
    assert sock.send(b"x") == 0  # nothing written yet: the writer waits for writable
    assert sock.fileno() == 7
