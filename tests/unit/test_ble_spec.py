"""Sensor selection and manager options of collector.ble (no Bluetooth needed)."""

from __future__ import annotations

import time

import pytest

from collector.ble import (
    ManagerOptions,
    ScanResult,
    SensorSpec,
    format_scan_results,
    sim_clock_ns,
    uuid128,
)
from wellsense_sim.clock import SimClock, SimClockParams

HRS = "0000180d-0000-1000-8000-00805f9b34fb"


def test_exactly_one_selector() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SensorSpec("x")
    with pytest.raises(ValueError, match="exactly one"):
        SensorSpec("x", address="C0:FF:EE:00:00:01", service_uuid="180d")
    with pytest.raises(ValueError, match="address"):
        SensorSpec("x", address="C0:FF:EE")
    with pytest.raises(ValueError, match="unknown profile 'h10'"):
        SensorSpec("x", address="C0:FF:EE:00:00:01", profile="h10")
    assert SensorSpec("x", address="C0:FF:EE:00:00:01", profile="auto").profile == "auto"


def test_selectors_match() -> None:
    assert SensorSpec("a", address="c0:ff:ee:00:00:01").matches("C0:FF:EE:00:00:01", None, [])
    by_name = SensorSpec("n", name_pattern="polar h10 *")
    assert by_name.matches("X", "Polar H10 ABC123", []) and not by_name.matches("X", None, [])
    by_uuid = SensorSpec("u", service_uuid="0x180D")
    assert by_uuid.service_uuid == HRS and by_uuid.matches("X", None, [HRS.upper()])
    assert not by_uuid.matches("X", "Polar", [uuid128("180f")])


def test_options_name_the_bad_option() -> None:
    with pytest.raises(ValueError, match="battery_interval_s"):
        ManagerOptions(battery_interval_s=0)
    with pytest.raises(ValueError, match="queue_maxsize"):
        ManagerOptions(queue_maxsize=-1)


def test_collector_sim_clock_matches_the_emulator_clock() -> None:
    params = SimClockParams.starting_now(epoch_ns=1_736_121_600 * 10**9, time_scale=720.0)
    ours = sim_clock_ns(params.epoch_ns, params.time_scale, params.anchor_wall_ns)
    theirs = SimClock(params)
    # 10 ms of real time is 7.2 s simulated: allow that much skew between the two reads
    assert abs(ours() - theirs.now_ns()) < 7.2e9
    time.sleep(0.01)
    assert ours() > params.epoch_ns


def test_scan_table() -> None:
    table = format_scan_results(
        [ScanResult("Polar H10 1", "C0:FF:EE:00:00:01", -58, (HRS, uuid128("1234")))]
    )
    header, row = table.splitlines()
    assert header.split() == ["NAME", "ADDRESS", "RSSI", "SERVICES"]
    assert "Polar H10 1" in row and "-58 dBm" in row and "heart rate" in row
    assert "00001234-0000-1000-8000-00805f9b34fb" in row
    assert "no Bluetooth LE devices" in format_scan_results([])
