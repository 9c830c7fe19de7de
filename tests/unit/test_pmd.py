"""Polar PMD: data frames (collector.gatt.parse_pmd_frame) and control point (collector.pmd).

The hex vectors and the values asserted on them come from the unit tests of
Polar's public BLE SDK (github.com/polarofficial/polar-ble-sdk, Android
sources, ``src/test/.../gatt/client/pmd``: AccDataTest.kt, PpiDataTest.kt,
BlePmdClientTest.kt, BlePmdClientControlPointResponseTest.kt,
PmdSettingTest.kt / BlePmdClientPmdSettingsTest.java); the file each comes
from is named beside it. Fuzzing runs ``WELLSENSE_FUZZ_EXAMPLES`` examples
(default 3000), as in test_gatt.py.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from collector.gatt import GattParseError, PmdMeasurementType, parse_pmd_frame
from collector.pmd import (
    PmdCommandError,
    PmdOpCode,
    PmdSettingType,
    PmdStatus,
    acc_scale_g,
    encode_settings,
    parse_feature,
    parse_measurement_stopped,
    parse_response,
    parse_settings,
    settings_request,
    start_factor,
    start_request,
    stop_request,
)
from wellsense_sim.pmd_frames import delta_width, encode_delta_frame, encode_raw_acc_frame

ACC = PmdMeasurementType.ACC

# -- data frames: Polar SDK vectors ------------------------------------------------------

# AccDataTest.kt "process acc raw data frame type 1": header + 36 samples, mG.
_TS_2E9 = bytes.fromhex("00 94 35 77 00 00 00 00")  # 2 000 000 000 ns
_ACC_RAW_T1 = bytes.fromhex(
    "F7 FF FF FF E7 03 F8 FF FE FF E5 03 F9 FF FF FF E5 03 FA FF FF FF E6 03 FA FF FE FF E6 03"
    "F9 FF FF FF E5 03 F8 FF FF FF E6 03 F8 FF FE FF E6 03 FA FF FF FF E5 03 FA FF FF FF E7 03"
    "FA FF FF FF E5 03 F8 FF FF FF E6 03 F7 FF FF FF E6 03 F8 FF FE FF E6 03 F9 FF FE FF E7 03"
    "F9 FF 00 00 E6 03 F9 FF FF FF E6 03 F7 FF FE FF E5 03 F9 FF FF FF E5 03 F9 FF FF FF E5 03"
    "FA FF 00 00 E6 03 F9 FF FE FF E6 03 F8 FF FF FF E6 03 F8 FF FF FF E5 03 F9 FF FF FF E6 03"
    "F9 FF FF FF E5 03 FA FF FF FF E6 03 F9 FF FF FF E5 03 F9 FF FF FF E5 03 F8 FF FE FF E6 03"
    "F9 FF FF FF E6 03 F9 FF FF FF E6 03 F9 FF 00 00 E5 03 F9 FF FE FF E6 03 F8 FF FE FF E6 03"
    "F7 FF FE FF E6 03"
)

# AccDataTest.kt "process acc compressed data type 0": reference sample, one
# block of 56 samples x 3 channels x 10 bits; factor 2.44E-4 (g), range 8 g.
_ACC_DELTA_T0 = bytes.fromhex(
    "71 07 F0 6A 9E 8D 0A 38 BE 5C BE BA 2F 96 B3 EE 4B E5 AD FB 42 B9 EB BE 4C FE BA 2F 92 BF"
    "EE 4B E4 B1 FB 12 B9 EC BD 3C 3E BB 2F 8F D3 DE 4B E3 B5 F7 D2 B8 ED BD 30 7E 7B 2F 8B E3"
    "CE 8B E2 BA F7 A2 B8 EE BC 20 BE 7B 2F 88 F3 CE CB E1 BD EF 52 F8 EF BC 18 FE 3B 2F 84 03"
    "BF CB E0 C2 EF 32 B8 F0 BB 04 4E BC 2E 81 13 AF 0B E0 C6 EF F2 F7 F1 B9 FC 7D BC 2E 7D 27"
    "9F 4B DF CA EB C2 F7 F2 B8 EC CD 7C 2E 7B 37 8F 4B DE CE E3 92 F7 F3 B8 E0 0D FD 2D 77 4B"
    "7F CB DD D2 DF 62 37 F5 B7 D4 4D BD 2D 74 5B 6F CB DC D7 D7 32 37 F6 B5 C8 8D 7D 2D 71 6B"
    "4F 4B DC DC D3 F2 36 F7 B4 BC DD FD 2C 6F 7B 3F 4B DB E0 CF D2 36 F8 B2 B0 2D BE 2C 6C 8F"
    "1F CB DA E3 C7 A2 76 F9"
)


def test_sdk_acc_raw_type1() -> None:
    frame = parse_pmd_frame(b"\x02" + _TS_2E9 + b"\x01" + _ACC_RAW_T1)
    assert frame.measurement_type == ACC and frame.frame_type == 1 and not frame.compressed
    assert frame.sensor_ts_ns == 2_000_000_000
    assert frame.samples[:2] == ((-9, -1, 999), (-8, -2, 997))
    assert len(frame.samples) == len(_ACC_RAW_T1) // 6 == 36
    assert acc_scale_g(frame, 1.0) == 0.001  # raw frames are milli-g


def test_sdk_acc_delta_type0() -> None:
    frame = parse_pmd_frame(b"\x02" + _TS_2E9 + b"\x80" + _ACC_DELTA_T0)
    assert frame.compressed and frame.frame_type == 0 and frame.sensor_ts_ns == 2_000_000_000
    assert len(frame.samples) == 1 + 56
    assert frame.samples[0] == (1905, 27376, -29282)
    assert frame.samples[1] == (1905 + 190, 27376 - 105, -29282 - 85)
    # The SDK's milli-g: (factor * raw * 1000f).toInt(), every sample within the 8 g range.
    factor = struct.unpack("<f", struct.pack("<f", 2.44e-4))[0]
    scale = acc_scale_g(frame, factor)
    mg = [int(v * scale * 1000) for s in frame.samples for v in s]
    assert mg[:6] == [int(factor * v * 1000) for v in (1905, 27376, -29282, 2095, 27271, -29367)]
    assert max(abs(v) for v in mg) <= 8 * 1000


# AccDataTest.kt "measurementFrameAccType0Short": reference sample (-163, ...), a
# complete block of 42 x 6-bit deltas, then a block announcing 20 x 12-bit deltas
# (90 octets) with only 22 left: the SDK's parseDeltaFramesAll would throw too.
_ACC_DELTA_T0_SHORT = bytes.fromhex(
    "5D FF 98 00 FD 0F 06 2A F2 B0 13 EC A1 1B 3E C3 D0 40 7F CD 40 71 D8 F3 4D 00 46 3F 08 7B"
    "9F D7 3A AF 38 52 A6 13 ED 3E 13 09 91 DC FA EE EF 3E 54 10 E2 8F 77 85 EE F2 4C 7E 04 87"
    "9C FC D2 2F 10 FD 4F EF FE 21 FF C2 81 04 03 5F 13 45 D1 08 4A DF BF B5 51 44 7B 50 F7 39"
    "A1 10 2E 6F 18 F7 9F 1C 36 4D 1B 0D 03 0C 14 06 D0 FE F7 AF FF FC BF FF F4 3F 01 17 F0 00"
    "01 10 00 F8 DF FF 00"
)


def test_sdk_acc_delta_type0_short_frame() -> None:
    header = b"\x02" + _TS_2E9 + b"\x80"
    with pytest.raises(GattParseError, match="20 x 12-bit samples needs 90 octets, got 22"):
        parse_pmd_frame(header + _ACC_DELTA_T0_SHORT)
    complete = parse_pmd_frame(header + _ACC_DELTA_T0_SHORT[: 6 + 2 + 95])
    assert complete.samples[0] == (-163, 152, 4093) and len(complete.samples) == 1 + 42


def test_sdk_acc_delta_type1() -> None:
    # AccDataTest.kt "process acc compressed data type 1": 6-bit deltas (-5, -3, 0).
    frame = parse_pmd_frame(bytes.fromhex("02 6500000000000000 81 F1FF 1400 F003 06 01 7B0F08"))
    assert frame.sensor_ts_ns == 101 and frame.frame_type == 1 and frame.compressed
    assert frame.samples == ((-15, 20, 1008), (-20, 17, 1008))
    assert acc_scale_g(frame, 1.0) == 0.001


def test_sdk_ppi_type0() -> None:
    # PpiDataTest.kt "process ppi raw data type 0".
    frame = parse_pmd_frame(b"\x03" + bytes(9) + bytes.fromhex("80 8080 8080 FF 00 0100 0100 00"))
    assert frame.measurement_type == PmdMeasurementType.PPI
    hr, pp_ms, err_ms, flags = frame.samples[0]
    assert (hr, pp_ms, err_ms) == (128, 32896, 32896)
    assert (flags & 1, flags >> 1 & 1, flags >> 2 & 1) == (1, 1, 1)  # blocker, contact, supported
    assert frame.samples[1] == (0, 1, 1, 0)


def test_sdk_ecg_header_type3() -> None:
    # BlePmdClientTest.kt "process ecg data": header fields as asserted there;
    # the one type-3 sample (data0 s24, data1 s24, status u8) decoded here.
    frame = parse_pmd_frame(bytes.fromhex("00 386C3172A4D3230D 03 001203 111004 00"))
    assert frame.measurement_type == PmdMeasurementType.ECG
    assert frame.sensor_ts_ns == 946_833_049_921_875_000
    assert frame.frame_type == 3 and not frame.compressed
    assert frame.samples == ((0x031200, 0x041011, 0),)


def test_sdk_header_only_fields() -> None:
    # BlePmdClientTest.kt "process ppg data" / "process acc data": type bits and compression bit.
    with pytest.raises(GattParseError, match="unsupported compressed frame type 3"):
        parse_pmd_frame(bytes.fromhex("02 0100000000000000 83 00"))
    # "process not supported frame type": frame type 0x7F.
    with pytest.raises(GattParseError, match="unsupported raw frame type 127"):
        parse_pmd_frame(bytes.fromhex("01 386C3172A4D3230D 7F"))


def test_measurement_type_top_bits_ignored() -> None:
    frame = parse_pmd_frame(b"\xc2" + _TS_2E9 + b"\x01" + _ACC_RAW_T1[:6])
    assert frame.measurement_type == ACC and frame.samples == ((-9, -1, 999),)


def test_reference_sample_only_and_multiple_blocks() -> None:
    samples = [(0, 0, 1000), (1, -1, 999), (300, -300, 0), (-32768, 32767, 5)]
    data = encode_delta_frame(7, samples, block_samples=2)
    assert parse_pmd_frame(data).samples == tuple(samples)
    assert parse_pmd_frame(data[:16]).samples == (samples[0],)


def test_one_bit_delta_is_twos_complement() -> None:
    # The SDK's sign mask turns a 1-bit delta of 1 into 2**31 - 1; we read -1.
    data = b"\x02" + bytes(8) + b"\x81" + bytes(6) + bytes([1, 1, 0b111])
    assert parse_pmd_frame(data).samples[1] == (-1, -1, -1)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x02" + bytes(8), "header"),
        (b"\x02" + bytes(8) + b"\x01", "whole number"),
        (b"\x02" + bytes(8) + b"\x01" + bytes(5), "whole number"),
        (b"\x02" + bytes(8) + b"\x03" + bytes(6), "unsupported raw"),
        (b"\x02" + bytes(8) + b"\x81" + bytes(5), "reference sample"),
        (b"\x02" + bytes(8) + b"\x81" + bytes(6) + b"\x06", "block header"),
        (b"\x02" + bytes(8) + b"\x81" + bytes(6) + b"\x00\x01", "width 0"),
        (b"\x02" + bytes(8) + b"\x81" + bytes(6) + b"\x21\x01" + bytes(13), "width 33"),
        (b"\x02" + bytes(8) + b"\x81" + bytes(6) + b"\x06\x00", "empty delta block"),
        (b"\x02" + bytes(8) + b"\x81" + bytes(6) + b"\x06\x02" + bytes(4), "needs 5 octets"),
        (b"\x01" + bytes(8) + b"\x80" + bytes(12), "measurement 1"),
    ],
)
def test_malformed_frames(payload: bytes, reason: str) -> None:
    with pytest.raises(GattParseError, match=reason):
        parse_pmd_frame(payload)


# -- fuzzing -------------------------------------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("WELLSENSE_FUZZ_EXAMPLES", "3000"))
fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_sample16 = st.tuples(*[st.integers(-32768, 32767)] * 3)


@st.composite
def _delta_frames(draw: st.DrawFn) -> bytes:
    """Valid ACC frames (delta or raw), then possibly cut or with one octet replaced."""
    samples = draw(st.lists(_sample16, min_size=1, max_size=40))
    ts = draw(st.integers(0, 2**64 - 1))
    if draw(st.booleans()):
        data = encode_delta_frame(
            ts,
            samples,
            frame_type=draw(st.sampled_from([0, 1])),
            block_samples=draw(st.integers(1, 255)),
        )
    else:
        data = encode_raw_acc_frame(ts, samples)
    mutation = draw(st.sampled_from(["none", "cut", "poke"]))
    if mutation == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == "poke":
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    return data


_any_header = st.builds(
    lambda kind, ftype, body: bytes([kind]) + bytes(8) + bytes([ftype]) + body,
    st.sampled_from([0x00, 0x02, 0x03, 0x42, 0xC2, 0x01]),
    st.sampled_from([0, 1, 2, 3, 4, 0x80, 0x81, 0x82, 0xFF]),
    st.binary(max_size=80),
)


@fuzz_settings
@given(payload=st.one_of(st.binary(max_size=60), _any_header, _delta_frames()))
def test_fuzz_pmd_frame_any_bytes(payload: bytes) -> None:
    try:
        frame = parse_pmd_frame(payload)
    except GattParseError:
        event("rejected with GattParseError")
        return
    event(f"parsed {'compressed' if frame.compressed else 'raw'}")
    assert frame.samples and len({len(s) for s in frame.samples}) == 1
    assert 0 <= frame.measurement_type <= 0x3F and 0 <= frame.frame_type <= 0x7F


@settings(max_examples=500, deadline=None, database=None)
@given(
    samples=st.lists(_sample16, min_size=1, max_size=60),
    block=st.integers(1, 255),
    ts=st.integers(0, 2**64 - 1),
)
def test_delta_round_trip(samples: list[tuple[int, int, int]], block: int, ts: int) -> None:
    frame = parse_pmd_frame(encode_delta_frame(ts, samples, block_samples=block))
    assert frame.samples == tuple(samples) and frame.sensor_ts_ns == ts


@settings(max_examples=300, deadline=None, database=None)
@given(samples=st.lists(_sample16, min_size=1, max_size=30))
def test_raw_round_trip(samples: list[tuple[int, int, int]]) -> None:
    assert parse_pmd_frame(encode_raw_acc_frame(5, samples)).samples == tuple(samples)


def test_delta_width() -> None:
    assert [delta_width([d]) for d in (0, -1, 1, 2, -2, 127, -128, 128)] == [1, 1, 2, 3, 2, 8, 8, 9]


# -- control point ------------------------------------------------------------------------


def test_requests_bytes() -> None:
    assert settings_request(ACC) == bytes.fromhex("01 02")
    assert stop_request(ACC) == bytes.fromhex("03 02")
    # The H10 accelerometer start used throughout Polar's examples: 50 Hz, 16 bit, +-8 g.
    start = start_request(
        ACC,
        {PmdSettingType.RANGE: 8, PmdSettingType.SAMPLE_RATE: 50, PmdSettingType.RESOLUTION: 16},
    )
    assert start == bytes.fromhex("02 02 00 01 32 00 01 01 10 00 02 01 08 00")
    with pytest.raises(ValueError, match="outside"):
        stop_request(64)
    with pytest.raises(ValueError, match="does not fit"):
        encode_settings({PmdSettingType.CHANNELS: 256})


def test_sdk_selected_serialization_round_trip() -> None:
    # PmdSettingTest.kt / BlePmdClientPmdSettingsTest.java testPmdSelectedSerialization:
    # the factor is not serialised, every other selected value comes back.
    selected = {
        PmdSettingType.SAMPLE_RATE: 0xFFFF,
        PmdSettingType.RESOLUTION: 0,
        PmdSettingType.RANGE: 15,
        PmdSettingType.RANGE_MILLIUNIT: 2**31 - 1,
        PmdSettingType.CHANNELS: 4,
        PmdSettingType.FACTOR: 15,
    }
    back = parse_settings(encode_settings(selected))
    assert back.sample_rates_hz == (0xFFFF,) and back.resolutions_bits == (0,)
    assert back.ranges == (15,) and back.ranges_milliunit == (2**31 - 1,)
    assert back.channels == (4,) and back.factor is None


def test_sdk_settings_with_range() -> None:
    # PmdSettingTest.kt testPmdSettingsWithRange.
    s = parse_settings(bytes.fromhex("00 01 3400 01 01 1000 02 04 F500 F401 E803 D007 04 01 03"))
    assert s.sample_rates_hz == (52,) and s.resolutions_bits == (16,)
    assert s.ranges == (245, 500, 1000, 2000) and s.channels == (3,)
    assert s.ranges_milliunit == () and s.factor is None


def test_sdk_settings_range_milliunit() -> None:
    # PmdSettingTest.kt testPmdSettingWithRangeMilliUnit: s32 values -1 and 0xFF.
    s = parse_settings(bytes.fromhex("03 02 FFFFFFFF FF000000 01 01 0E00"))
    assert s.ranges_milliunit == (-1, 0xFF) and s.resolutions_bits == (14,)


@pytest.mark.parametrize("bad", ["00 01 34", "06 01 00", "00"])
def test_settings_malformed_or_empty(bad: str) -> None:
    data = bytes.fromhex(bad)
    if len(data) <= 1:
        assert parse_settings(data) == parse_settings(b"")
    else:
        with pytest.raises(GattParseError):
            parse_settings(data)


def test_sdk_response_success_acc_settings() -> None:
    # BlePmdClientControlPointResponseTest.kt: "success control point response for acc
    # stream settings".
    r = parse_response(bytes.fromhex("F0 01 02 00 00 FF FF FF"))
    assert r.op_code is PmdOpCode.GET_MEASUREMENT_SETTINGS and r.measurement_type == 2
    assert r.status is PmdStatus.SUCCESS and not r.more and r.parameters == b"\xff\xff\xff"
    assert r.raise_for_status() is r


def test_sdk_response_failure_mag_settings() -> None:
    # ... "failing control point response for mag stream settings": error 7.
    r = parse_response(bytes.fromhex("F0 01 06 07 00"))
    assert r.measurement_type == 6 and r.status is PmdStatus.INVALID_RESOLUTION
    assert not r.more and r.parameters == b""
    with pytest.raises(PmdCommandError) as err:
        r.raise_for_status()
    assert err.value.status is PmdStatus.INVALID_RESOLUTION


def test_every_status_code() -> None:
    names = [s.name for s in PmdStatus]
    assert names == [
        "SUCCESS", "INVALID_OP_CODE", "INVALID_MEASUREMENT_TYPE", "NOT_SUPPORTED",
        "INVALID_LENGTH", "INVALID_PARAMETER", "ALREADY_IN_STATE", "INVALID_RESOLUTION",
        "INVALID_SAMPLE_RATE", "INVALID_RANGE", "INVALID_MTU", "INVALID_NUMBER_OF_CHANNELS",
        "INVALID_STATE", "DEVICE_IN_CHARGER", "DISK_FULL",
    ]  # fmt: skip
    for status in PmdStatus:
        r = parse_response(bytes([0xF0, 2, 2, status, 1, 5]))
        assert r.status is status
        assert r.more == (status is PmdStatus.SUCCESS)


def test_start_response_factor() -> None:
    # Constructed (no SDK vector): start response whose parameters carry a
    # FACTOR setting, as updateSelectedFromStartResponse reads it.
    params = bytes([PmdSettingType.FACTOR, 1]) + struct.pack("<f", 2.44e-4)
    r = parse_response(bytes.fromhex("F0 02 02 00 00") + params)
    assert r.op_code is PmdOpCode.REQUEST_MEASUREMENT_START
    assert start_factor(r.parameters) == pytest.approx(2.44e-4, rel=1e-7)
    assert start_factor(b"") == 1.0


@pytest.mark.parametrize("bad", ["", "F0 01 02", "0F 01 02 00", "F0 0A 02 00", "F0 01 02 0F"])
def test_response_malformed(bad: str) -> None:
    with pytest.raises(GattParseError):
        parse_response(bytes.fromhex(bad))


def test_feature_read() -> None:
    # H10: ECG and ACC; Verity Sense: PPG, ACC, PPI, GYRO, MAG and SDK mode.
    assert parse_feature(bytes.fromhex("0F 05 00")) == {0, 2}
    assert parse_feature(bytes.fromhex("0F 6E 02")) == {1, 2, 3, 5, 6, 9}
    for bad in ("0F", "F0 05 00"):
        with pytest.raises(GattParseError):
            parse_feature(bytes.fromhex(bad))


def test_measurement_stopped_indication() -> None:
    # BlePmdClientTest.kt "process measurement stop control point command": 01 01 02.
    assert parse_measurement_stopped(bytes.fromhex("01 01 02")) == (1, 2)
    assert parse_measurement_stopped(bytes.fromhex("01")) == ()
    assert parse_measurement_stopped(bytes.fromhex("F0 01 02 00")) is None


def test_pmd_modules_import_only_the_standard_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, collector.pmd, wellsense_sim.pmd_frames;"
        "bad = {'bleak', 'numpy', 'scipy', 'influxdb_client', 'paho'};"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
