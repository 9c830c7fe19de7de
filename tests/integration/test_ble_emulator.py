"""bleak's real BlueZ backend against the emulated BlueZ on a private bus.

Each test runs its own event loop with an in-process :class:`Emulator`
(fresh wearables), except the out-of-range test, which drives an emulator
in another process through its D-Bus control interface.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from collector.ble import (
    HEART_RATE_MEASUREMENT,
    RSC_MEASUREMENT,
    DeviceManager,
    ManagerOptions,
    SensorSpec,
    scan,
)
from collector.ble_events import (
    BatteryLevel,
    BleItem,
    ConnectFailed,
    DeviceInfo,
    Gap,
    RawNotification,
    SensorConnected,
    SensorDisconnected,
    SensorNotFound,
)
from tests.integration.bluez_fixture import bluez_bus  # noqa: F401  (fixture)
from wellsense_sim import Emulator, SimClock, SimClockParams, SimControl, WearableConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

A, B, C = "C0:FF:EE:00:00:0A", "C0:FF:EE:00:00:0B", "C0:FF:EE:00:00:0C"
FAST = ManagerOptions(
    scan_timeout_s=2.0,
    connect_timeout_s=5.0,
    io_timeout_s=5.0,
    battery_interval_s=60.0,
    backoff_base_s=0.02,
    backoff_cap_s=0.5,
)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@asynccontextmanager
async def emulator(
    bus: str, *wearables: WearableConfig, time_scale: float = 1.0
) -> AsyncIterator[Emulator]:
    clock = SimClock(SimClockParams.starting_now(time_scale=time_scale))
    async with Emulator(bus, clock=clock, advert_interval_s=0.1, connect_delay_s=0.02) as emu:
        for w in wearables:
            emu.add_wearable(w)
        yield emu


def straps() -> list[WearableConfig]:
    return [
        WearableConfig(A, name="Strap A", seed=1, rsc=True, rssi_dbm=-50),
        WearableConfig(B, name="Strap B", seed=2, rsc=False, rssi_dbm=-65),
        WearableConfig(C, name="Strap C", seed=3, rsc=False, rssi_dbm=-80),
    ]


async def take_until(
    queue: asyncio.Queue[BleItem], done: Callable[[BleItem], bool], timeout_s: float = 10.0
) -> list[BleItem]:
    """Items up to and including the first one for which ``done`` is true."""
    items: list[BleItem] = []
    async with asyncio.timeout(timeout_s):
        while True:
            items.append(await queue.get())
            if done(items[-1]):
                return items


def decode_hrm(data: bytes) -> tuple[int, bool | None, list[float]]:
    """A minimal 0x2A37 decoder for the tests (the real one is collector.gatt)."""
    flags, i = data[0], 1
    if flags & 0x01:
        hr, i = struct.unpack_from("<H", data, i)[0], 3
    else:
        hr, i = data[1], 2
    contact = bool(flags & 0x02) if flags & 0x04 else None
    if flags & 0x08:
        i += 2
    rr = [v * 1000 / 1024 for (v,) in struct.iter_unpack("<H", data[i:])] if flags & 0x10 else []
    return hr, contact, rr


def test_scan_lists_names_rssi_and_services(bluez_bus: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with emulator(bluez_bus, *straps()):
            results = await scan(1.0)
            by_address = {r.address: r for r in results}
            assert set(by_address) == {A, B, C}
            assert [r.address for r in results] == [A, B, C]  # strongest first
            assert by_address[B].name == "Strap B"
            assert -90 < by_address[C].rssi_dbm < -70
            assert HEART_RATE_MEASUREMENT.replace("2a37", "180d") in by_address[B].service_uuids
            rsc_only = await scan(0.6, service_uuids=["1814"])
            assert [r.address for r in rsc_only] == [A]

    run(scenario())


def test_selectors_address_name_pattern_and_service(bluez_bus: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with emulator(bluez_bus, *straps()):
            sensors = [
                SensorSpec("by_uuid", service_uuid="0x1814"),
                SensorSpec("by_address", address=B.lower()),
                SensorSpec("by_name", name_pattern="strap c*"),
                SensorSpec("any_hr", service_uuid="180d"),
            ]
            manager = DeviceManager(sensors, options=FAST)
            async with manager:
                connected: dict[str, str] = {}
                await take_until(
                    manager.queue,
                    lambda i: (
                        isinstance(i, SensorConnected)
                        and (
                            connected.setdefault(i.sensor_key, i.address) is not None
                            and len(connected) == 3
                            and "any_hr" not in connected
                        )
                    ),
                    10,
                )
                assert connected == {"by_uuid": A, "by_address": B, "by_name": C}
                # the fourth sensor matches all three, which are claimed: not found
                await take_until(
                    manager.queue,
                    lambda i: isinstance(i, SensorNotFound) and i.sensor_key == "any_hr",
                    10,
                )

    run(scenario())


def test_several_sensors_stream_hr_rr_and_rsc(bluez_bus: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with emulator(bluez_bus, *straps(), time_scale=30.0) as emu:
            emu.set_battery(B, 42)
            for address in (A, B, C):  # not in a modelled non-wear period, whatever the hour
                emu.set_worn(address, True)
            manager = DeviceManager(
                [
                    SensorSpec("a", address=A),
                    SensorSpec("b", address=B),
                    SensorSpec("c", address=C),
                ],
                options=FAST,
            )
            async with manager:
                items = await _collect_for(manager.queue, 4.0)
            records = [i for i in items if isinstance(i, RawNotification)]
            for key in "abc":
                hr = [
                    r
                    for r in records
                    if r.sensor_key == key and r.char_uuid == HEART_RATE_MEASUREMENT
                ]
                assert len(hr) >= 20, key
                times = [r.received_ns for r in hr]
                assert times == sorted(times)
                rr = [v for r in hr for v in decode_hrm(r.data)[2]]
                assert len(rr) >= 40, key
                assert all(250 <= v <= 2000 for v in rr)
                assert {r.session for r in hr} == {1}
            assert any(r.char_uuid == RSC_MEASUREMENT and r.sensor_key == "a" for r in records)
            assert not any(r.char_uuid == RSC_MEASUREMENT and r.sensor_key != "a" for r in records)
            battery = {i.sensor_key: i.battery_pct for i in items if isinstance(i, BatteryLevel)}
            assert battery["b"] == 42 and battery["a"] == 100
            info = next(i for i in items if isinstance(i, DeviceInfo) and i.sensor_key == "c")
            assert (info.manufacturer, info.model, info.body_location) == (
                "WellSense Sim",
                "WS-HR1",
                1,
            )
            assert info.serial == C.replace(":", "")

    run(scenario())


async def _collect_for(queue: asyncio.Queue[BleItem], seconds: float) -> list[BleItem]:
    items: list[BleItem] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            items.append(await asyncio.wait_for(queue.get(), left))
        except TimeoutError:
            break
    return items


def test_battery_is_read_periodically(bluez_bus: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with emulator(bluez_bus, straps()[0]) as emu:
            emu.set_battery(A, 63)
            options = dataclasses.replace(FAST, battery_interval_s=0.3)
            async with DeviceManager([SensorSpec("a", address=A)], options=options) as manager:
                await take_until(
                    manager.queue, lambda i: isinstance(i, BatteryLevel) and i.battery_pct == 63
                )
                emu.set_battery(A, 17)
                await take_until(
                    manager.queue, lambda i: isinstance(i, BatteryLevel) and i.battery_pct == 17, 3
                )
                assert manager.status()[0].battery_pct == 17

    run(scenario())


def is_record_of_session(item: BleItem, session: int) -> bool:
    return isinstance(item, RawNotification) and item.session == session


def test_twenty_disconnects_reconnect_with_labelled_gaps(bluez_bus: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with emulator(bluez_bus, straps()[1], time_scale=20.0) as emu:
            async with DeviceManager([SensorSpec("b", address=B)], options=FAST) as manager:
                items: list[BleItem] = []
                for session in range(1, 22):
                    items += await take_until(
                        manager.queue, functools.partial(is_record_of_session, session=session)
                    )
                    if session <= 20:
                        emu.disconnect(B)
            stats = emu.stats()[0]
        # 20 dropped by the strap, the last one closed by the manager on stop
        assert (stats["connects"], stats["disconnects"]) == (21, 21)
        assert stats["last_disconnect_reason"] == "local host request"
        gaps = [i for i in items if isinstance(i, Gap)]
        assert [(g.session_before, g.session_after) for g in gaps] == [
            (n, n + 1) for n in range(1, 21)
        ]
        assert all(g.start_ns <= g.end_ns for g in gaps)
        # records are labelled by the session between its Connected and Disconnected
        current = None
        for item in items:
            if isinstance(item, SensorConnected):
                current = item.session
            elif isinstance(item, SensorDisconnected):
                assert item.session == current and not item.requested
                current = None
            elif isinstance(item, RawNotification):
                assert item.session == current

    run(scenario())


def test_failed_connects_are_retried(bluez_bus: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with emulator(bluez_bus, straps()[0]) as emu:
            emu.fail_connects(A, 2)
            async with DeviceManager([SensorSpec("a", address=A)], options=FAST) as manager:
                items = await take_until(manager.queue, lambda i: isinstance(i, SensorConnected))
            failures = [i for i in items if isinstance(i, ConnectFailed)]
            assert [f.attempt for f in failures] == [1, 2]
            assert "connection abort" in failures[0].reason

    run(scenario())


def test_contact_loss_and_strap_off_reach_the_payload(bluez_bus: str) -> None:  # noqa: F811
    async def fresh_hrm(queue: asyncio.Queue[BleItem]) -> tuple[int, bool | None, list[float]]:
        await asyncio.sleep(0.2)  # let the change reach a notification
        while not queue.empty():
            queue.get_nowait()
        item = (await take_until(queue, lambda i: isinstance(i, RawNotification)))[-1]
        assert isinstance(item, RawNotification)
        return decode_hrm(item.data)

    async def hrm_with_rr(queue: asyncio.Queue[BleItem]) -> tuple[int, bool | None, list[float]]:
        # a strap notifies every second of its clock: at HR < 60 (or right after
        # connecting) a notification may carry no RR value
        for _ in range(5):
            hrm = await fresh_hrm(queue)
            if hrm[2]:
                break
        return hrm

    async def scenario() -> None:
        async with emulator(bluez_bus, straps()[1], time_scale=20.0) as emu:
            emu.set_worn(B, True)
            emu.set_contact(B, True)
            async with DeviceManager([SensorSpec("b", address=B)], options=FAST) as manager:
                hr, contact, rr = await hrm_with_rr(manager.queue)
                assert contact is True and rr and hr > 30
                emu.set_contact(B, False)
                hr, contact, rr = await fresh_hrm(manager.queue)
                assert contact is False and rr == [] and hr > 30
                emu.set_worn(B, False)
                assert (await fresh_hrm(manager.queue)) == (0, False, [])
                emu.set_contact(B, None)
                emu.set_worn(B, True)
                assert (await fresh_hrm(manager.queue))[1] is True

    run(scenario())


def test_out_of_range_then_back_with_emulator_in_another_process(bluez_bus: str) -> None:  # noqa: F811
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wellsense_sim",
            "run",
            "--bus",
            bluez_bus,
            "--advert-interval",
            "0.1",
            "--time-scale",
            "10",
            "--wearable",
            f"{A},name=Far Strap,seed=7",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("DBUS_SYSTEM_BUS_ADDRESS=")

        async def scenario() -> None:
            options = dataclasses.replace(FAST, scan_timeout_s=0.5)
            async with (
                SimControl(bluez_bus) as sim,
                DeviceManager([SensorSpec("far", name_pattern="Far*")], options=options) as manager,
            ):
                await take_until(manager.queue, lambda i: isinstance(i, RawNotification))
                await sim.out_of_range(A, 2.0)
                gone = time.monotonic()
                items = await take_until(
                    manager.queue, lambda i: isinstance(i, RawNotification) and i.session == 2
                )
                assert time.monotonic() - gone >= 1.9
                kinds = [type(i).__name__ for i in items if not isinstance(i, RawNotification)]
                # Session 1's reads (device info, battery) may still be queued
                # behind its first notification; everything after them is the loss.
                first = kinds.index("SensorDisconnected")
                assert set(kinds[:first]) <= {"DeviceInfo", "BatteryLevel"}, kinds
                after = kinds[first:]
                assert "SensorNotFound" in after
                assert after.index("Gap") < after.index("SensorConnected")
                stats = (await sim.stats())[0]
                assert stats["in_range"] and stats["connects"] == 2

        run(scenario())
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        if proc.stdout is not None:
            proc.stdout.close()
