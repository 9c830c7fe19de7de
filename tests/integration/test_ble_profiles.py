"""Device profiles through bleak's real BlueZ backend against the emulated sensors.

An emulated Polar H10, Verity Sense and PineTime (wellsense_sim: PMD control
point and data characteristics, InfiniTime Motion service): the device
manager starts each profile's streams, the frames that arrive parse with
collector.gatt and decode to plausible acceleration, PPI and step counts,
and the PMD streams are stopped on shutdown. A bad request written straight
to the emulated control point is answered with its error code.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from bleak import BleakClient

from collector import gatt
from collector.ble import DeviceManager, SensorSpec
from collector.ble_events import BleItem, RawNotification, StreamStarted
from collector.pmd import PMD_CONTROL_POINT_UUID, PMD_DATA_UUID, PmdStatus, parse_response
from collector.profiles.pinetime import STEP_COUNT_UUID, parse_step_count
from tests.integration.bluez_fixture import bluez_bus  # noqa: F401  (fixture)
from tests.integration.test_ble_emulator import FAST, emulator, run
from wellsense_sim import WearableConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

H10, VERITY, PINE = "C0:FF:EE:00:01:10", "C0:FF:EE:00:01:20", "C0:FF:EE:00:01:30"


def devices() -> list[WearableConfig]:
    return [
        WearableConfig(H10, name="Polar H10 1A2B3C4D", seed=1, rsc=False, device="polar_h10"),
        WearableConfig(
            VERITY, name="Polar Sense 5E6F7A8B", seed=2, rsc=False, device="polar_verity"
        ),
        WearableConfig(PINE, name="InfiniTime", seed=3, rsc=False, device="pinetime"),
    ]


def test_profiles_start_stream_and_stop(bluez_bus: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with emulator(bluez_bus, *devices(), time_scale=30.0) as emu:
            for address in (H10, VERITY, PINE):
                emu.set_worn(address, True)
                emu.set_contact(address, True)
            sensors = [
                SensorSpec("chest", address=H10, profile="polar_h10"),
                SensorSpec("arm", address=VERITY, profile="auto"),
                SensorSpec("wrist", address=PINE, profile="auto"),
            ]
            manager = DeviceManager(sensors, options=FAST)
            started: dict[tuple[str, str], StreamStarted] = {}
            frames: dict[tuple[str, int], list[gatt.PmdFrame]] = {}
            steps: list[int] = []
            async with manager:
                async with asyncio.timeout(60):
                    while not (
                        len(frames.get(("chest", 2), [])) >= 20
                        and len(frames.get(("arm", 2), [])) >= 20
                        and frames.get(("arm", 3))
                        and len(steps) >= 1
                    ):
                        item: BleItem = await manager.queue.get()
                        if isinstance(item, StreamStarted):
                            started[(item.sensor_key, item.stream)] = item
                        elif isinstance(item, RawNotification):
                            if item.char_uuid == PMD_DATA_UUID:
                                frame = gatt.parse_pmd_frame(item.data)
                                frames.setdefault(
                                    (item.sensor_key, frame.measurement_type), []
                                ).append(frame)
                            elif item.char_uuid == STEP_COUNT_UUID:
                                steps.append(parse_step_count(item.data))
                assert emu.device(H10).pmd is not None and emu.device(H10).pmd.running
            # shutdown stopped the PMD streams before disconnecting
            assert emu.device(H10).pmd.running == {}  # type: ignore[union-attr]
            assert emu.device(VERITY).pmd.running == {}  # type: ignore[union-attr]
        acc = started[("chest", "acc")]
        assert (acc.profile, acc.fs_hz, acc.factor) == ("polar_h10", 50.0, 1.0)
        arm_acc = started[("arm", "acc")]
        assert arm_acc.profile == "polar_verity" and arm_acc.fs_hz == 52.0
        assert arm_acc.factor == pytest.approx(8000 / 32768)
        assert ("arm", "ppi") in started and ("wrist", "steps") in started
        assert started[("wrist", "hr")].profile == "pinetime"

        # H10 frames: delta-compressed, 36 samples; the mean is gravity, ~1 g in milli-g
        def gravity(key: tuple[str, int], scale: float) -> float:
            samples = [s for f in frames[key] for s in f.samples]
            means = [sum(s[i] for s in samples) / len(samples) * scale for i in range(3)]
            return math.sqrt(sum(m * m for m in means))

        assert all(f.compressed and len(f.samples) == 36 for f in frames[("chest", 2)])
        assert 700 < gravity(("chest", 2), 1.0) < 1300
        # Verity frames scale by the factor (milli-g per unit)
        assert 700 < gravity(("arm", 2), arm_acc.factor or 0.0) < 1300
        ppi = frames[("arm", 3)][0].samples[0]
        assert 300 <= ppi[1] <= 2000 and ppi[3] & 0b100

    run(scenario())


def test_the_emulated_control_point_answers_errors_through_bluez(bluez_bus: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with emulator(bluez_bus, *devices()[:1]):
            answers: asyncio.Queue[bytes] = asyncio.Queue()
            async with BleakClient(H10) as client:
                await client.start_notify(
                    PMD_CONTROL_POINT_UUID, lambda _c, data: answers.put_nowait(bytes(data))
                )
                feature = bytes(await client.read_gatt_char(PMD_CONTROL_POINT_UUID))
                assert feature[0] == 0x0F and feature[1] & 0b100  # ACC offered
                for request, status in (
                    ("02 02 00 01 33 00 01 01 10 00 02 01 08 00", PmdStatus.INVALID_SAMPLE_RATE),
                    ("01 03", PmdStatus.INVALID_MEASUREMENT_TYPE),
                    ("03 02", PmdStatus.INVALID_STATE),
                ):
                    await client.write_gatt_char(
                        PMD_CONTROL_POINT_UUID, bytes.fromhex(request), response=True
                    )
                    async with asyncio.timeout(5):
                        answer = await answers.get()
                    assert parse_response(answer).status is status

    run(scenario())
