"""Tests for collector.gatt: real captures, every flag combination, fuzzing.

Fuzzing runs ``WELLSENSE_FUZZ_EXAMPLES`` examples per parser (default 3000,
the CI profile). The issue's long run is::

    WELLSENSE_FUZZ_EXAMPLES=100000 .venv/bin/pytest tests/unit/test_gatt.py -k fuzz \
        -p no:cacheprovider --hypothesis-show-statistics
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from collector import gatt
from collector.gatt import (
    BodySensorLocation,
    GattParseError,
    HeartRateMeasurement,
    parse_battery_level,
    parse_body_sensor_location,
    parse_device_information_string,
    parse_heart_rate_measurement,
    parse_pmd_acc_frame,
    parse_rsc_feature,
    parse_rsc_measurement,
)
from collector.gatt_uuids import Characteristic, Service, full_uuid

# -- captured payloads (../shared/data/ble/hrm_captures.txt) -----------------------

SHARED_DATA = Path(
    os.environ.get("WELLSENSE_SHARED_DATA")
    or Path(__file__).resolve().parents[2].parent / "shared" / "data"
)
CAPTURES = SHARED_DATA / "ble" / "hrm_captures.txt"
_CONTACT = {"not_supported": None, "detected": True, "not_detected": False}


def _load_captures() -> list[Any]:
    if not CAPTURES.is_file():
        reason = f"{CAPTURES} not found (set WELLSENSE_SHARED_DATA to the shared data folder)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-captures")]
    cases = []
    for line in CAPTURES.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = (line.split("\t") + [""] * 11)[:11]
        cases.append(pytest.param(cols, id=f"{cols[0]}-{cols[2]}-{cols[3]}"))
    return cases


@pytest.mark.parametrize("cols", _load_captures())
def test_captured_payload_matches_reference(cols: list[str]) -> None:
    _kind, _device, _source, _seq, hex_payload, flags, hr, contact, energy, rr_raw, rr_ms = cols
    payload = bytes.fromhex(hex_payload)
    assert payload[0] == int(flags, 16)

    m = parse_heart_rate_measurement(payload)

    assert m.hr_bpm == int(hr)
    assert m.contact is _CONTACT[contact]
    assert m.energy_kj == (int(energy) if energy else None)
    expected_raw = [int(v) for v in rr_raw.split()]
    assert [round(v * 1024 / 1000) for v in m.rr_ms] == expected_raw
    expected_ms = [float(v) for v in rr_ms.split()]
    assert m.rr_ms == pytest.approx(expected_ms, abs=5e-4)  # reference has 3 decimals
    assert list(m.rr_ms) == [raw * 1000 / 1024 for raw in expected_raw]  # unrounded


def test_captures_file_fully_read() -> None:
    if not CAPTURES.is_file():
        pytest.skip(f"{CAPTURES} not found")
    kinds = [p.values[0][0] for p in _load_captures()]
    # SOURCE.md: 19 captured payloads from real devices and 14 test vectors.
    assert kinds.count("captured") == 19
    assert kinds.count("test_vector") == 14


# -- Heart Rate Measurement: every flag combination ----------------------------------


def _encode_hrm(flags: int, hr: int, energy: int, rr_raw: list[int]) -> bytes:
    """Independent encoder for the test: the layout straight from HRS 1.0, 3.1."""
    out = bytes([flags])
    out += struct.pack("<H", hr) if flags & 0x01 else struct.pack("<B", hr)
    if flags & 0x08:
        out += struct.pack("<H", energy)
    if flags & 0x10:
        out += struct.pack(f"<{len(rr_raw)}H", *rr_raw)
    return out


@pytest.mark.parametrize("flags", range(256), ids=lambda f: f"flags={f:#04x}")
def test_hrm_every_flag_combination(flags: int) -> None:
    hr = 0x0123 if flags & 0x01 else 0x5A
    payload = _encode_hrm(flags, hr, energy=0xBEEF, rr_raw=[1024, 512, 1])

    m = parse_heart_rate_measurement(payload)

    assert m.hr_bpm == hr
    contact_bits = (flags >> 1) & 0b11
    assert m.contact is {0: None, 1: None, 2: False, 3: True}[contact_bits]
    assert m.energy_kj == (0xBEEF if flags & 0x08 else None)
    assert m.rr_ms == ((1000.0, 500.0, 1000 / 1024) if flags & 0x10 else ())


def test_hrm_reserved_bits_are_ignored() -> None:
    plain = parse_heart_rate_measurement(bytes([0x16, 60, 0x11, 0x04]))
    assert parse_heart_rate_measurement(bytes([0xF6, 60, 0x11, 0x04])) == plain
    assert gatt.HRM_FLAGS_RESERVED_MASK == 0xE0


def test_hrm_zero_hr_is_kept_as_no_reading() -> None:
    m = parse_heart_rate_measurement(b"\x00\x00")
    assert m == HeartRateMeasurement(hr_bpm=0, contact=None, energy_kj=None, rr_ms=())
    assert not m.has_hr
    assert parse_heart_rate_measurement(b"\x00\x3c").has_hr


def test_hrm_rr_flag_without_values_gives_empty_tuple() -> None:
    assert parse_heart_rate_measurement(b"\x10\x48").rr_ms == ()


def test_hrm_is_frozen_and_slotted() -> None:
    m = parse_heart_rate_measurement(b"\x00\x3c")
    with pytest.raises(AttributeError):
        m.hr_bpm = 1  # type: ignore[misc]
    assert not hasattr(m, "__dict__")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\x00", "uint8 heart rate"),
        (b"\x01\x3c", "uint16 heart rate"),
        (b"\x08\x3c\x01", "energy expended"),
        (b"\x09\x3c\x00", "energy expended"),
        (b"\x10\x3c\x00\x04\x01", "odd length"),
        (b"\x18\x3c\x01\x00\x00", "odd length"),
        (b"\x00\x3c\x00", "trailing"),
        (b"\x08\x3c\x01\x00\xff\xff", "trailing"),
    ],
)
def test_hrm_malformed(payload: bytes, reason: str) -> None:
    with pytest.raises(GattParseError, match=reason) as err:
        parse_heart_rate_measurement(payload)
    assert err.value.characteristic == "heart rate measurement"
    assert reason in err.value.reason
    assert isinstance(err.value, ValueError)


def test_hrm_accepts_bytearray_from_bleak() -> None:
    # bleak passes bytearray; the API is typed `bytes` (mypy 2 strict bytes), runtime takes both
    m = parse_heart_rate_measurement(bytearray(b"\x16\x3c\x11\x04"))  # type: ignore[arg-type]
    assert m.rr_ms == (1041 * 1000 / 1024,)


# -- other characteristics ------------------------------------------------------------


@pytest.mark.parametrize("value", range(7))
def test_body_sensor_location(value: int) -> None:
    location = parse_body_sensor_location(bytes([value]))
    assert location == value
    expected = ["other", "chest", "wrist", "finger", "hand", "ear_lobe", "foot"][value]
    assert location.name.lower() == expected
    assert isinstance(location, BodySensorLocation)


@pytest.mark.parametrize("payload", [b"", b"\x01\x00", b"\x07", b"\xff"])
def test_body_sensor_location_malformed(payload: bytes) -> None:
    with pytest.raises(GattParseError, match="body sensor location"):
        parse_body_sensor_location(payload)


@pytest.mark.parametrize("level", [0, 1, 57, 100])
def test_battery_level(level: int) -> None:
    assert parse_battery_level(bytes([level])) == level


@pytest.mark.parametrize("payload", [b"", b"\x64\x00", b"\x65", b"\xff"])
def test_battery_level_malformed(payload: bytes) -> None:
    with pytest.raises(GattParseError, match="battery level"):
        parse_battery_level(payload)


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (b"Polar Electro Oy", "Polar Electro Oy"),
        (b"H10\x00\x00\x00", "H10"),
        (b"", ""),
        (b"\x00", ""),
        ("Wahoo Fitness™ Café".encode(), "Wahoo Fitness™ Café"),
        (b"3.0\x001", "3.0\x001"),  # only trailing NULs are padding
    ],
)
def test_device_information_string(payload: bytes, text: str) -> None:
    assert parse_device_information_string(payload) == text


@pytest.mark.parametrize("payload", [b"\xff", b"abc\xc3", b"\xed\xa0\x80"])
def test_device_information_string_invalid_utf8(payload: bytes) -> None:
    with pytest.raises(GattParseError, match="invalid UTF-8"):
        parse_device_information_string(payload)


@pytest.mark.parametrize("flags", range(8))
def test_rsc_measurement_every_flag_combination(flags: int) -> None:
    payload = bytes([flags]) + struct.pack("<HB", 0x0280, 180)
    if flags & 0x01:
        payload += struct.pack("<H", 150)
    if flags & 0x02:
        payload += struct.pack("<I", 12345)

    m = parse_rsc_measurement(payload)

    assert m.speed_m_s == 2.5
    assert m.cadence_per_min == 180
    assert m.stride_length_m == (1.5 if flags & 0x01 else None)
    assert m.total_distance_m == (1234.5 if flags & 0x02 else None)
    assert m.running is bool(flags & 0x04)
    assert parse_rsc_measurement(bytes([flags | 0xF8]) + payload[1:]) == m  # reserved ignored


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00\x00\x01", b"\x00\x00\x01\xb4\x00", b"\x01\x00\x01\xb4", b"\x02\x00\x01\xb4\x00"],
)
def test_rsc_measurement_malformed(payload: bytes) -> None:
    with pytest.raises(GattParseError, match="RSC measurement"):
        parse_rsc_measurement(payload)


def test_rsc_feature() -> None:
    everything = parse_rsc_feature(b"\x1f\x00")
    assert all(getattr(everything, f) for f in everything.__slots__)
    nothing = parse_rsc_feature(b"\xe0\xff")  # only reserved bits
    assert not any(getattr(nothing, f) for f in nothing.__slots__)
    assert parse_rsc_feature(b"\x04\x00").walking_or_running_status
    for bad in (b"", b"\x1f", b"\x1f\x00\x00"):
        with pytest.raises(GattParseError, match="RSC feature"):
            parse_rsc_feature(bad)


# -- Polar PMD accelerometer ---------------------------------------------------------

# Header and first two samples of the "raw data frame type 1" vector in Polar's
# BLE SDK unit tests (AccDataTest.kt): timestamp 2000000000 ns, x/y/z in mG.
_PMD_HEADER_TYPE1 = bytes.fromhex("02 00 94 35 77 00 00 00 00 01")


def test_pmd_acc_type1_polar_sdk_vector() -> None:
    frame = parse_pmd_acc_frame(_PMD_HEADER_TYPE1 + bytes.fromhex("F7FFFFFFE703 F8FFFEFFE503"))
    assert frame.sensor_ts_ns == 2_000_000_000
    assert frame.frame_type == 1
    assert frame.samples_mg == ((-9, -1, 999), (-8, -2, 997))


def test_pmd_acc_type0_and_type2() -> None:
    ts = struct.pack("<Q", 599_616_023_171_427_290)
    type0 = parse_pmd_acc_frame(b"\x02" + ts + b"\x00" + bytes.fromhex("01ff807f0002"))
    assert type0.samples_mg == ((1, -1, -128), (127, 0, 2))
    assert type0.sensor_ts_ns == 599_616_023_171_427_290
    xyz = (-1000, 8_388_607, -8_388_608)
    body = b"".join(v.to_bytes(3, "little", signed=True) for v in xyz)
    assert parse_pmd_acc_frame(b"\x02" + ts + b"\x02" + body).samples_mg == (xyz,)
    # The SDK ignores the top two bits of the measurement type.
    assert parse_pmd_acc_frame(b"\x42" + ts + b"\x00" + b"\x01\x02\x03").samples_mg == ((1, 2, 3),)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x02" + bytes(8), "header"),
        (b"\x00" + bytes(8) + b"\x01" + bytes(6), "not ACC"),
        (b"\x02" + bytes(8) + b"\x81" + bytes(6), "delta-compressed"),
        (b"\x02" + bytes(8) + b"\x03" + bytes(6), "unknown"),
        (b"\x02" + bytes(8) + b"\x01", "whole number"),
        (b"\x02" + bytes(8) + b"\x01" + bytes(5), "whole number"),
    ],
)
def test_pmd_acc_malformed(payload: bytes, reason: str) -> None:
    with pytest.raises(GattParseError, match=reason):
        parse_pmd_acc_frame(payload)


# -- UUIDs ---------------------------------------------------------------------------


def test_uuids_are_full_lowercase_128_bit() -> None:
    assert Characteristic.HEART_RATE_MEASUREMENT.uuid == "00002a37-0000-1000-8000-00805f9b34fb"
    assert Service.HEART_RATE.uuid == "0000180d-0000-1000-8000-00805f9b34fb"
    assert Characteristic(0x2A19) is Characteristic.BATTERY_LEVEL
    assert full_uuid(0x2A53) == "00002a53-0000-1000-8000-00805f9b34fb"
    with pytest.raises(ValueError):
        full_uuid(0x10000)


def test_gatt_imports_only_the_standard_library() -> None:
    code = (
        "import sys, collector.gatt, collector.gatt_uuids;"
        "bad = {'bleak', 'numpy', 'scipy', 'influxdb_client', 'paho'};"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- property-based fuzzing ------------------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("WELLSENSE_FUZZ_EXAMPLES", "3000"))
# deadline=None: two shared CI cores make per-example timing meaningless.
fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

PARSERS: dict[str, Callable[[bytes], object]] = {
    "hrm": parse_heart_rate_measurement,
    "body_sensor_location": parse_body_sensor_location,
    "battery_level": parse_battery_level,
    "dis_string": parse_device_information_string,
    "rsc_measurement": parse_rsc_measurement,
    "rsc_feature": parse_rsc_feature,
    "pmd_acc": parse_pmd_acc_frame,
}


@fuzz_settings
@given(data=st.binary(max_size=40))
def test_fuzz_hrm_any_bytes(data: bytes) -> None:
    try:
        m = parse_heart_rate_measurement(data)
    except GattParseError:
        event("rejected with GattParseError")
        return
    event("parsed")
    assert 0 <= m.hr_bpm <= 0xFFFF
    assert all(0.0 <= rr < 64000.0 for rr in m.rr_ms)
    assert m.contact in (None, True, False)


# Random bytes rarely pass a type or length check, so each parser also gets
# inputs that do, to fuzz the decoding behind those checks.
NEAR_VALID: dict[str, st.SearchStrategy[bytes]] = {
    "body_sensor_location": st.binary(min_size=1, max_size=1),
    "battery_level": st.binary(min_size=1, max_size=1),
    "dis_string": st.text(max_size=20).map(str.encode),
    "rsc_measurement": st.binary(min_size=4, max_size=10),
    "rsc_feature": st.binary(min_size=2, max_size=2),
    "pmd_acc": st.builds(
        lambda head, kind, body: bytes([head | 0x02]) + bytes(8) + bytes([kind]) + body,
        st.sampled_from([0x00, 0x40, 0x80, 0xC0]),
        st.sampled_from([0, 1, 2, 3, 0x80, 0x81]),
        st.binary(max_size=60),
    ),
}


def _fuzz_any_bytes(name: str) -> Callable[..., None]:
    parse = PARSERS[name]

    @fuzz_settings
    @given(payload=st.one_of(st.binary(max_size=40), NEAR_VALID[name]))
    def test(payload: bytes) -> None:
        try:
            parse(payload)
        except GattParseError:
            event("rejected with GattParseError")
        else:
            event("parsed")

    return test


test_fuzz_body_sensor_location_any_bytes = _fuzz_any_bytes("body_sensor_location")
test_fuzz_battery_level_any_bytes = _fuzz_any_bytes("battery_level")
test_fuzz_dis_string_any_bytes = _fuzz_any_bytes("dis_string")
test_fuzz_rsc_measurement_any_bytes = _fuzz_any_bytes("rsc_measurement")
test_fuzz_rsc_feature_any_bytes = _fuzz_any_bytes("rsc_feature")
test_fuzz_pmd_acc_any_bytes = _fuzz_any_bytes("pmd_acc")


@settings(max_examples=1000, deadline=None, database=None)
@given(
    flags=st.integers(0, 255),
    hr=st.integers(0, 0xFFFF),
    energy=st.integers(0, 0xFFFF),
    rr_raw=st.lists(st.integers(0, 0xFFFF), max_size=9),
)
def test_hrm_round_trip_property(flags: int, hr: int, energy: int, rr_raw: list[int]) -> None:
    hr = hr if flags & 0x01 else hr & 0xFF
    m = parse_heart_rate_measurement(_encode_hrm(flags, hr, energy, rr_raw))
    assert m.hr_bpm == hr
    assert m.energy_kj == (energy if flags & 0x08 else None)
    assert m.rr_ms == (tuple(r * 1000 / 1024 for r in rr_raw) if flags & 0x10 else ())
