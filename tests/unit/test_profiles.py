"""Device profiles against the emulator's PMD control point, over an in-memory GATT link.

The link delivers each control point answer as an indication on the next
loop turn, as BlueZ does; the peer is :class:`wellsense_sim.pmd_service.PmdServiceModel`,
the same model the emulated sensors serve over D-Bus.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from collector.gatt import PmdFrame, PmdMeasurementType
from collector.pmd import (
    PMD_CONTROL_POINT_UUID,
    PMD_DATA_UUID,
    PMD_SERVICE_UUID,
    PmdOpCode,
    PmdSettingType,
    PmdStatus,
    parse_response,
    parse_settings,
    start_request,
)
from collector.profiles import AUTO, PROFILES, detect, make_profile
from collector.profiles.base import Notify
from collector.profiles.hrs import HEART_RATE_MEASUREMENT, RSC_MEASUREMENT
from collector.profiles.pinetime import (
    MOTION_SERVICE_UUID,
    RAW_MOTION_UUID,
    STEP_COUNT_UUID,
    parse_raw_motion,
    parse_step_count,
    step_increase,
)
from collector.profiles.polar_verity import ppi_intervals, usable_rr_ms
from wellsense_sim.pmd_service import (
    ACC,
    PPI,
    PmdServiceModel,
    polar_h10_offer,
    verity_sense_offer,
)


class MemoryLink:
    """A GattLink whose PMD control point is a PmdServiceModel."""

    def __init__(self, characteristics: set[str], pmd: PmdServiceModel | None = None) -> None:
        self.characteristics = characteristics
        self.pmd = pmd
        self.subscribed: dict[str, Notify | None] = {}
        self.writes: list[bytes] = []

    def has_characteristic(self, uuid: str) -> bool:
        return uuid in self.characteristics

    async def read(self, uuid: str) -> bytes:
        assert uuid == PMD_CONTROL_POINT_UUID and self.pmd is not None
        return self.pmd.feature_value()

    async def write(self, uuid: str, data: bytes) -> None:
        assert uuid == PMD_CONTROL_POINT_UUID and self.pmd is not None
        self.writes.append(data)
        answer = self.pmd.handle(data)
        callback = self.subscribed.get(uuid)
        if callback is not None:  # no indication without a subscription
            asyncio.get_running_loop().call_soon(callback, answer)

    async def subscribe(self, uuid: str, on_value: Notify | None = None) -> None:
        assert uuid in self.characteristics, uuid
        self.subscribed[uuid] = on_value

    async def unsubscribe(self, uuid: str) -> None:
        del self.subscribed[uuid]


PMD_CHARS = {PMD_CONTROL_POINT_UUID, PMD_DATA_UUID}


def test_polar_h10_starts_hr_and_acc_and_stops_on_shutdown() -> None:
    model = PmdServiceModel(polar_h10_offer())
    link = MemoryLink({HEART_RATE_MEASUREMENT, *PMD_CHARS}, model)
    profile = make_profile("polar_h10")

    async def run() -> list[str]:
        streams = await profile.start(link)
        assert model.running == {ACC: {0: 50, 1: 16, 2: 8}}
        acc = streams[-1]
        assert (acc.fs_hz, acc.factor, acc.measurement_type) == (50.0, 1.0, ACC)
        await profile.stop(link)
        return [s.name for s in streams]

    assert asyncio.run(run()) == ["hr", "acc"]
    assert model.running == {}
    # the SDK's start request for 50 Hz, 16 bits, +-8 g, byte for byte
    assert link.writes == [
        bytes.fromhex("01 02"),
        bytes.fromhex("02 02 00 01 32 00 01 01 10 00 02 01 08 00"),
        bytes.fromhex("03 02"),
    ]
    assert link.subscribed[PMD_DATA_UUID] is None  # data frames go to the raw queue


def test_polar_verity_starts_ppi_and_acc_with_the_factor() -> None:
    model = PmdServiceModel(verity_sense_offer())
    link = MemoryLink({HEART_RATE_MEASUREMENT, *PMD_CHARS}, model)
    streams = asyncio.run(make_profile("polar_verity").start(link))
    assert [s.name for s in streams] == ["hr", "ppi", "acc"]
    assert streams[2].fs_hz == 52.0  # 50 Hz asked for is not offered: nearest above
    assert streams[2].factor == pytest.approx(8000 / 32768)
    assert set(model.running) == {PPI, ACC}
    assert link.writes[0] == bytes.fromhex("02 03")  # PPI start has no settings


def test_a_leftover_stream_is_restarted_and_a_refused_acc_leaves_hr_running() -> None:
    model = PmdServiceModel(polar_h10_offer())
    model.running[ACC] = {0: 200, 1: 16, 2: 2}  # an earlier connection's stream
    link = MemoryLink({HEART_RATE_MEASUREMENT, *PMD_CHARS}, model)
    streams = asyncio.run(make_profile("polar_h10").start(link))
    assert [s.name for s in streams] == ["hr", "acc"]
    assert model.running[ACC] == {0: 50, 1: 16, 2: 8}

    no_acc = PmdServiceModel({PPI: verity_sense_offer()[PPI]})
    link = MemoryLink({HEART_RATE_MEASUREMENT, *PMD_CHARS}, no_acc)
    streams = asyncio.run(make_profile("polar_h10").start(link))
    assert [s.name for s in streams] == ["hr"]
    assert link.writes == []  # the feature read said no ACC: nothing asked


def test_a_sensor_without_pmd_or_rsc_gives_hr_only() -> None:
    link = MemoryLink({HEART_RATE_MEASUREMENT, RSC_MEASUREMENT})
    assert [s.name for s in asyncio.run(make_profile("hrs").start(link))] == ["hr", "rsc"]
    link = MemoryLink({HEART_RATE_MEASUREMENT})
    assert [s.name for s in asyncio.run(make_profile("polar_h10").start(link))] == ["hr"]


@pytest.mark.parametrize(
    ("request_hex", "status"),
    [
        ("", PmdStatus.INVALID_LENGTH),
        ("09 02", PmdStatus.INVALID_OP_CODE),
        ("01 06", PmdStatus.INVALID_MEASUREMENT_TYPE),
        ("01 02 00", PmdStatus.INVALID_LENGTH),
        ("02 02 00 01 33 00 01 01 10 00 02 01 08 00", PmdStatus.INVALID_SAMPLE_RATE),
        ("02 02 00 01 32 00 01 01 0C 00 02 01 08 00", PmdStatus.INVALID_RESOLUTION),
        ("02 02 00 01 32 00 01 01 10 00 02 01 10 00", PmdStatus.INVALID_RANGE),
        ("02 02 00 01 32", PmdStatus.INVALID_PARAMETER),
        ("03 02", PmdStatus.INVALID_STATE),
    ],
)
def test_the_emulated_control_point_answers_bad_requests(request_hex: str, status: int) -> None:
    answer = PmdServiceModel(polar_h10_offer()).handle(bytes.fromhex(request_hex))
    assert answer[0] == 0xF0 and answer[3] == status
    if answer[1] in set(PmdOpCode):
        assert parse_response(answer).status == status


def test_the_emulated_control_point_speaks_what_collector_pmd_reads() -> None:
    model = PmdServiceModel(polar_h10_offer())
    offered = parse_settings(parse_response(model.handle(bytes.fromhex("01 02"))).parameters)
    assert offered.sample_rates_hz == (25, 50, 100, 200) and offered.ranges == (2, 4, 8)
    request = start_request(
        ACC,
        {PmdSettingType.SAMPLE_RATE: 100, PmdSettingType.RANGE: 4, PmdSettingType.RESOLUTION: 16},
    )
    assert parse_response(model.handle(request)).status is PmdStatus.SUCCESS
    assert parse_response(model.handle(request)).status is PmdStatus.ALREADY_IN_STATE


def test_ppi_quality() -> None:
    samples = (
        (60, 1000, 10, 0b110),  # contact, supported: usable
        (60, 1000, 10, 0b111),  # blocker
        (60, 1000, 10, 0b100),  # supported but no contact
        (60, 1000, 45, 0b110),  # error too large
        (60, 1000, 10, 0b000),  # contact not reported: usable
        (250, 240, 5, 0b110),  # not physiological
    )
    frame = PmdFrame(PmdMeasurementType.PPI, 0, 0, False, samples)
    got = ppi_intervals(frame)
    assert [i.usable for i in got] == [True, False, False, False, True, False]
    assert [i.contact for i in got[:5]] == [True, True, False, True, None]
    assert usable_rr_ms(got) == [1000.0, 1000.0]


def test_pinetime_values_and_profile() -> None:
    assert parse_step_count(struct.pack("<I", 12345)) == 12345
    assert parse_raw_motion(struct.pack("<3h", -1, 512, -1024)) == (-1, 512, -1024)
    assert (step_increase(None, 10), step_increase(10, 25), step_increase(25, 3)) == (
        None,
        15,
        None,
    )
    link = MemoryLink({HEART_RATE_MEASUREMENT, STEP_COUNT_UUID, RAW_MOTION_UUID})
    names = [s.name for s in asyncio.run(make_profile("pinetime").start(link))]
    assert names == ["hr", "steps", "motion"]


def test_detect_and_names() -> None:
    hrs = "0000180d-0000-1000-8000-00805f9b34fb"
    assert detect([hrs, PMD_SERVICE_UUID], "Polar H10 1A2B3C4D") == "polar_h10"
    assert detect([hrs, PMD_SERVICE_UUID.upper()], "Polar Sense 1A2B3C4D") == "polar_verity"
    assert detect([hrs, MOTION_SERVICE_UUID], "InfiniTime") == "pinetime"
    assert detect([hrs], None) == "hrs"
    assert AUTO not in PROFILES and set(PROFILES) == {
        "hrs",
        "polar_h10",
        "polar_verity",
        "pinetime",
    }
    with pytest.raises(ValueError, match="unknown profile"):
        make_profile("garmin")
