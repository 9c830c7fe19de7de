"""The simulated wearables: payload layouts, physiology, RSC rate cap, clock."""

from __future__ import annotations

import functools
import itertools
import statistics
import struct
from pathlib import Path

import pytest

from wellsense_sim import encode
from wellsense_sim.clock import SimClock, SimClockParams
from wellsense_sim.config import ConfigError, load_toml, participant_wearables, wearable_from_dict
from wellsense_sim.emulator import Emulator
from wellsense_sim.physiology import NS_PER_S, BeatGenerator, Model, Profile
from wellsense_sim.wearable import Wearable, WearableConfig

DAY_NS = 86_400 * NS_PER_S
T0 = 1_736_121_600 * NS_PER_S  # 2025-01-06T00:00:00Z, a Monday


def test_heart_rate_measurement_layout() -> None:
    data = encode.heart_rate_measurement(72, contact=True, rr_ms=[1000.0, 500.0], energy_kj=300)
    flags, hr, energy = data[0], data[1], struct.unpack_from("<H", data, 2)[0]
    assert flags == 0x02 | 0x04 | 0x08 | 0x10 and (hr, energy) == (72, 300)
    assert struct.unpack_from("<2H", data, 4) == (1024, 512)  # 1/1024 s
    assert encode.heart_rate_measurement(300, contact=None) == b"\x01\x2c\x01"
    assert encode.heart_rate_measurement(0, contact=False) == b"\x04\x00"
    with pytest.raises(ValueError):
        encode.heart_rate_measurement(60, contact=True, rr_ms=[800.0] * 300)


def test_rsc_and_static_layouts() -> None:
    data = encode.rsc_measurement(
        speed_m_s=1.5, cadence_per_min=110, running=False, stride_m=0.82, total_distance_m=1234.5
    )
    assert data[0] == 0x03
    assert struct.unpack("<HBHI", data[1:]) == (384, 110, 82, 12345)
    assert encode.rsc_measurement(speed_m_s=3, cadence_per_min=160, running=True)[0] == 0x04
    assert encode.rsc_feature() == b"\x07\x00"
    assert encode.battery_level(101) == b"\x64" and encode.body_sensor_location("chest") == b"\x01"


@functools.lru_cache
def day_of_beats(seed: int, hours: float = 24) -> list[tuple[int, float, bool]]:
    gen = BeatGenerator(Model(Profile(), seed), T0)
    end = T0 + int(hours * 3600 * NS_PER_S)
    return [(b.t_ns, b.rr_ms, b.contact) for b in gen.beats_until(end)]


def test_physiology_is_deterministic_per_seed() -> None:
    fresh = BeatGenerator(Model(Profile(), 5), T0).beats_until(T0 + 600 * NS_PER_S)
    assert [(b.t_ns, b.rr_ms) for b in fresh] == [
        (t, rr) for t, rr, _ in day_of_beats(5, 0.5) if t <= T0 + 600 * NS_PER_S
    ]
    assert day_of_beats(5, 0.5)[:50] != day_of_beats(6, 0.5)[:50]


def test_night_is_slower_and_more_variable_than_the_day() -> None:
    beats = day_of_beats(1)

    def window(h0: float, h1: float) -> list[float]:
        return [rr for t, rr, c in beats if c and h0 <= (t - T0) / 3.6e12 < h1]

    def rmssd(rr: list[float]) -> float:
        return statistics.fmean((a - b) ** 2 for a, b in itertools.pairwise(rr)) ** 0.5

    night, day = window(1, 5), window(9, 12)
    assert 60_000 / statistics.fmean(night) < 60_000 / statistics.fmean(day) - 8
    assert rmssd(night) > 1.3 * rmssd(day)
    assert all(250 <= rr <= 2000 for _, rr, _ in beats)
    # every day has a morning non-wear period and some ectopic-length pairs
    assert sum(not c for _, _, c in beats) > 500


def test_activity_bouts_raise_hr_and_cadence() -> None:
    model = Model(Profile(), 1)
    plan = model.plan(model.local(T0)[0])
    bout = plan.bouts[0]
    mid = T0 + int((bout.start_s + bout.end_s) / 2 * NS_PER_S)
    rest = T0 + int((bout.start_s - 1800) * NS_PER_S)
    assert model.target_hr_bpm(mid) > model.target_hr_bpm(rest) + 10
    wearable = Wearable(WearableConfig("C0:FF:EE:00:00:01", seed=1), mid - NS_PER_S)
    wearable.worn_override = True
    rsc = wearable.advance_body(mid)
    assert rsc is not None and rsc[3] >= 90  # cadence, steps/min


def test_compressed_time_steps_only_movement_and_battery() -> None:
    clock = SimClock(SimClockParams(epoch_ns=T0, time_scale=720, anchor_wall_ns=0))
    emu = Emulator("unix:path=/nonexistent", clock=clock, max_notify_hz=20)
    # RSC/battery: capped at 20 updates per real second, each covering 36 s of sim time
    assert emu.body_span_s == 36.0 and emu.body_period_s == pytest.approx(0.05)


def test_battery_drains_and_can_be_set() -> None:
    w = Wearable(WearableConfig("C0:FF:EE:00:00:01", battery_drain_pct_per_day=10), T0)
    assert w.battery_pct(T0) == 100 and w.battery_pct(T0 + DAY_NS) == 90
    w.set_battery(40, T0 + DAY_NS)
    assert w.battery_pct(T0 + 2 * DAY_NS) == 30


def test_two_clocks_with_the_same_parameters_agree() -> None:
    params = SimClockParams(epoch_ns=T0, time_scale=720.0, anchor_wall_ns=1_000 * NS_PER_S)
    wall, mono = [1_010 * NS_PER_S], [5 * NS_PER_S]
    a = SimClock(params, wall_ns=lambda: wall[0], monotonic_ns=lambda: mono[0])
    assert a.now_ns() == T0 + 10 * 720 * NS_PER_S
    mono[0] += NS_PER_S
    assert a.now_ns() == T0 + 11 * 720 * NS_PER_S
    assert SimClockParams.from_env(params.env()) == params


def test_wearable_config_validates() -> None:
    with pytest.raises(ValueError, match="address"):
        WearableConfig("not-an-address")
    with pytest.raises(ValueError, match="body_location"):
        WearableConfig("C0:FF:EE:00:00:01", body_location="knee")


def test_toml_and_command_line_wearables(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("""
[emulator]
time_scale = 720
[[wearable]]
address = "c0:ff:ee:00:01:01"
name = "Polar H10 P01"
rsc = false
[wearable.profile]
rest_hr_day_bpm = 74
""")
    options, wearables = load_toml(path)
    assert options == {"time_scale": 720}
    assert wearables[0].address == "C0:FF:EE:00:01:01" and not wearables[0].rsc
    assert wearables[0].profile.rest_hr_day_bpm == 74
    with pytest.raises(ConfigError, match=r"wearable\[0\].*colour"):
        wearable_from_dict({"address": "C0:FF:EE:00:00:01", "colour": "red"}, "wearable[0]")
    assert len({w.address for w in participant_wearables(3)}) == 3
