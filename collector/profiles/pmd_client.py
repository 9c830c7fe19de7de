"""Polar Measurement Data over a :class:`GattLink`: the control point dialogue.

Requests are written with response to the control point; the sensor answers
each with an indication on the same characteristic (``F0 | op | type |
status | more | parameters``), decoded by :mod:`collector.pmd`. Data frames
arrive as notifications on the data characteristic, which is subscribed
before the first start request (the Polar SDK's order: a sensor may send
its first frame right after the start response).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from collector.gatt import PmdMeasurementType
from collector.pmd import (
    PMD_CONTROL_POINT_UUID,
    PMD_DATA_UUID,
    PmdCommandError,
    PmdOpCode,
    PmdResponse,
    PmdSettings,
    PmdSettingType,
    PmdStatus,
    parse_feature,
    parse_measurement_stopped,
    parse_response,
    parse_settings,
    settings_request,
    start_factor,
    start_request,
    stop_request,
)
from collector.profiles.base import GattLink, StartedStream

log = logging.getLogger(__name__)


class PmdClient:
    """One connection's PMD control point: features, settings, start, stop."""

    def __init__(self, link: GattLink, *, timeout_s: float = 10.0) -> None:
        self._link = link
        self._timeout_s = timeout_s
        self._responses: asyncio.Queue[bytes] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._subscribed = False
        self.running: list[int] = []  # measurement types started on this connection
        self.stopped_by_sensor: list[int] = []

    def available(self) -> bool:
        return self._link.has_characteristic(PMD_CONTROL_POINT_UUID) and (
            self._link.has_characteristic(PMD_DATA_UUID)
        )

    def _on_indication(self, value: bytes) -> None:
        stopped = parse_measurement_stopped(value)
        if stopped is not None:  # the sensor ended streams on its own
            self.stopped_by_sensor.extend(stopped)
            self.running = [t for t in self.running if t not in stopped]
            log.info("PMD measurement stopped by sensor: %s", list(stopped))
            return
        self._responses.put_nowait(value)

    async def _open(self) -> None:
        if not self._subscribed:
            await self._link.subscribe(PMD_CONTROL_POINT_UUID, self._on_indication)
            await self._link.subscribe(PMD_DATA_UUID)
            self._subscribed = True

    async def features(self) -> frozenset[int]:
        """Measurement types the sensor offers (read of the control point)."""
        return parse_feature(await self._link.read(PMD_CONTROL_POINT_UUID))

    async def _request(self, request: bytes) -> PmdResponse:
        await self._open()
        async with self._lock:
            while not self._responses.empty():  # a late answer to a timed-out request
                self._responses.get_nowait()
            await self._link.write(PMD_CONTROL_POINT_UUID, request)
            async with asyncio.timeout(self._timeout_s):
                first = await self._responses.get()
                response = parse_response(first)
                parameters = response.parameters
                more = response.more
                while more:  # continuation indications carry more parameter octets
                    nxt = await self._responses.get()
                    parameters += nxt[5:]
                    more = len(nxt) > 4 and nxt[4] != 0
        if response.op_code != request[0] or response.measurement_type != request[1]:
            raise PmdCommandError(PmdOpCode(request[0]), request[1], PmdStatus.INVALID_STATE)
        return PmdResponse(
            response.op_code, response.measurement_type, response.status, False, parameters
        )

    async def settings(self, measurement_type: int) -> PmdSettings:
        """The settings the sensor offers for a stream."""
        response = (await self._request(settings_request(measurement_type))).raise_for_status()
        return parse_settings(response.parameters)

    async def start(self, measurement_type: int, settings: Mapping[PmdSettingType, int]) -> float:
        """Start a stream; returns the factor of its start response.

        A stream left running by an earlier connection (ALREADY_IN_STATE) is
        stopped and started again, so the factor and settings are known.
        """
        request = start_request(measurement_type, settings)
        response = await self._request(request)
        if response.status is PmdStatus.ALREADY_IN_STATE:
            await self.stop(measurement_type)
            response = await self._request(request)
        response.raise_for_status()
        self.running.append(measurement_type)
        return start_factor(response.parameters)

    async def stop(self, measurement_type: int) -> None:
        """Stop a stream; one already stopped is not an error."""
        response = await self._request(stop_request(measurement_type))
        if response.status not in (PmdStatus.SUCCESS, PmdStatus.INVALID_STATE):
            response.raise_for_status()
        self.running = [t for t in self.running if t != measurement_type]

    async def stop_all(self) -> None:
        """Stop every stream this client started (shutdown), best effort per stream."""
        for measurement_type in list(self.running):
            try:
                await self.stop(measurement_type)
            except (PmdCommandError, TimeoutError, OSError) as exc:
                log.warning("PMD stop of type %d failed: %r", measurement_type, exc)


def choose(offered: tuple[int, ...], wanted: int) -> int:
    """``wanted`` if offered, else the smallest offered value above it, else the largest."""
    if not offered:
        raise ValueError("the sensor offers no value for this setting")
    if wanted in offered:
        return wanted
    above = [v for v in offered if v > wanted]
    return min(above) if above else max(offered)


async def start_acc(
    client: PmdClient, *, fs_hz: int, range_g: int, resolution_bits: int
) -> StartedStream | None:
    """Start the accelerometer with the nearest offered settings, or None if the
    sensor has no ACC or refuses it (the other streams go on)."""
    acc = PmdMeasurementType.ACC
    try:
        if acc not in await client.features():
            log.info("PMD: sensor offers no accelerometer")
            return None
        offered = await client.settings(acc)
        chosen = {
            PmdSettingType.SAMPLE_RATE: choose(offered.sample_rates_hz, fs_hz),
            PmdSettingType.RESOLUTION: choose(offered.resolutions_bits, resolution_bits),
            PmdSettingType.RANGE: choose(offered.ranges, range_g),
        }
        factor = await client.start(acc, chosen)
    except Exception as exc:  # an optional stream never ends the session
        log.warning("PMD: accelerometer not started: %r", exc)
        return None
    return StartedStream(
        "acc",
        PMD_DATA_UUID,
        measurement_type=int(acc),
        fs_hz=float(chosen[PmdSettingType.SAMPLE_RATE]),
        factor=factor,
        settings={k.name.lower(): v for k, v in chosen.items()},
    )


async def start_ppi(client: PmdClient) -> StartedStream | None:
    """Start pulse-to-pulse intervals (no settings), or None if refused."""
    ppi = PmdMeasurementType.PPI
    try:
        if ppi not in await client.features():
            log.info("PMD: sensor offers no PPI")
            return None
        await client.start(ppi, {})
    except Exception as exc:  # an optional stream never ends the session
        log.warning("PMD: PPI not started: %r", exc)
        return None
    return StartedStream("ppi", PMD_DATA_UUID, measurement_type=int(ppi))
