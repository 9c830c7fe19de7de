"""BLE device manager: find, connect, subscribe and reconnect, on bleak.

One asyncio task per configured sensor; one shared scanner for all of them
(BlueZ refuses a second ``StartDiscovery`` from the same D-Bus client, and
``BleakClient(address)`` would start its own scan per call). Everything a
sensor produces goes, in order, into one queue as
:class:`~collector.ble_events.RawNotification` records and
:class:`~collector.ble_events.SensorEvent` s. Parsing happens downstream.

Why the queue is unbounded by default: the notification callback runs on
the event loop and must never block, so a full bounded queue could only
drop data. The consumer (parse, then commit to the local SQLite outbox)
is far faster than BLE delivers (a few notifications per second per
sensor), so growth means a stuck consumer; ``qsize()`` belongs in the
health report. ``queue_maxsize`` bounds memory if wanted; overflow is then
dropped and counted in ``counters.dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bleak import BleakClient, BleakScanner
from bleak.args.bluez import BlueZClientArgs, BlueZScannerArgs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from collector.ble_events import (
    BatteryLevel,
    BleItem,
    ConnectFailed,
    DeviceInfo,
    Gap,
    RawNotification,
    RssiReading,
    SensorConnected,
    SensorDisconnected,
    SensorNotFound,
    StreamStarted,
)
from collector.gatt_uuids import Characteristic, Service, uuid128
from collector.profiles import AUTO, PROFILES, Profile, detect, make_profile
from collector.profiles.base import Notify

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())  # silent unless the service configures logging

ClockNs = Callable[[], int]
"""A clock returning ns since the Unix epoch (``time.time_ns`` or a sim clock)."""


# The characteristics the manager uses, in the 128-bit form BlueZ reports.
HEART_RATE_SERVICE = Service.HEART_RATE.uuid
HEART_RATE_MEASUREMENT = Characteristic.HEART_RATE_MEASUREMENT.uuid
BODY_SENSOR_LOCATION = Characteristic.BODY_SENSOR_LOCATION.uuid
BATTERY_LEVEL = Characteristic.BATTERY_LEVEL.uuid
RSC_MEASUREMENT = Characteristic.RSC_MEASUREMENT.uuid
MANUFACTURER_NAME = Characteristic.MANUFACTURER_NAME_STRING.uuid
MODEL_NUMBER = Characteristic.MODEL_NUMBER_STRING.uuid
SERIAL_NUMBER = Characteristic.SERIAL_NUMBER_STRING.uuid
FIRMWARE_REVISION = Characteristic.FIRMWARE_REVISION_STRING.uuid

_ADDRESS_RE = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


def sim_clock_ns(epoch_ns: int, time_scale: float, anchor_wall_ns: int) -> ClockNs:
    """The simulation clock of ``wellsense_sim.clock`` (same formula, no import).

    ``epoch_ns + (wall_at_start - anchor_wall_ns) * scale + monotonic_elapsed * scale``:
    give it the values the emulator printed and both agree on simulated time.
    """
    mono0 = time.monotonic_ns()
    base = epoch_ns + (time.time_ns() - anchor_wall_ns) * time_scale

    def now_ns() -> int:
        return int(base + (time.monotonic_ns() - mono0) * time_scale)

    return now_ns


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """Which device a configured sensor is: exactly one selector.

    Args:
        key: the sensor's name in records and events (e.g. ``"chest"``).
        address: Bluetooth address, ``AA:BB:CC:DD:EE:FF``.
        name_pattern: shell-style glob on the advertised name, case-insensitive
            (``"Polar H10 *"``).
        service_uuid: an advertised service, 16- or 128-bit (``"180d"``).
        profile: the device profile (:mod:`collector.profiles`) whose streams
            are started: ``hrs`` (default), ``polar_h10``, ``polar_verity``,
            ``pinetime``, or ``auto`` (chosen from the GATT table after connecting).

    A pattern or service sensor binds to the first unclaimed match and then
    prefers that device (see ``ManagerOptions.rebind_after_s``).
    """

    key: str
    address: str | None = None
    name_pattern: str | None = None
    service_uuid: str | None = None
    profile: str = "hrs"

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("sensor key must not be empty")
        if self.profile != AUTO and self.profile not in PROFILES:
            raise ValueError(
                f"sensor {self.key!r}: unknown profile {self.profile!r}; "
                f"one of {', '.join([AUTO, *sorted(PROFILES)])}"
            )
        chosen = [n for n in ("address", "name_pattern", "service_uuid") if getattr(self, n)]
        if len(chosen) != 1:
            raise ValueError(
                f"sensor {self.key!r}: give exactly one of address, name_pattern, "
                f"service_uuid (got {chosen or 'none'})"
            )
        if self.address is not None:
            address = self.address.upper()
            if not _ADDRESS_RE.match(address):
                raise ValueError(
                    f"sensor {self.key!r}: address {self.address!r} is not AA:BB:CC:DD:EE:FF"
                )
            object.__setattr__(self, "address", address)
        if self.service_uuid is not None:
            object.__setattr__(self, "service_uuid", uuid128(self.service_uuid))

    def matches(self, address: str, name: str | None, service_uuids: Sequence[str]) -> bool:
        """Whether an advertisement is this sensor."""
        if self.address is not None:
            return address.upper() == self.address
        if self.name_pattern is not None:
            return name is not None and fnmatch.fnmatchcase(name.lower(), self.name_pattern.lower())
        return self.service_uuid in {u.lower() for u in service_uuids}


@dataclass(frozen=True, slots=True)
class ManagerOptions:
    """Device manager settings; defaults suit a home gateway.

    Args:
        scan_timeout_s: scan this long for a sensor before a ``SensorNotFound``.
        connect_timeout_s: limit on connect + service discovery.
        io_timeout_s: limit on one GATT read or subscribe.
        battery_interval_s: read Battery Level this often while connected.
        backoff_base_s / backoff_cap_s: retry delay is uniform in
            ``[0, min(cap, base * 2**failures)]`` ("full jitter"), so many
            gateways do not retry in lockstep; the first retry after a
            working session is quick.
        rebind_after_s: a pattern/service sensor that lost its device accepts
            only that device for this long, then any unclaimed match.
        adapter: BlueZ adapter (``"hci0"``); ``None`` for the default.
        queue_maxsize: 0 for an unbounded queue (see module docstring).
    """

    scan_timeout_s: float = 10.0
    connect_timeout_s: float = 20.0
    io_timeout_s: float = 10.0
    battery_interval_s: float = 600.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    rebind_after_s: float = 300.0
    adapter: str | None = None
    queue_maxsize: int = 0

    def __post_init__(self) -> None:
        for name in (
            "scan_timeout_s",
            "connect_timeout_s",
            "io_timeout_s",
            "battery_interval_s",
            "backoff_cap_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("backoff_base_s", "rebind_after_s", "queue_maxsize"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One advertising device, as ``wellsense collect scan`` lists it."""

    name: str | None
    address: str
    rssi_dbm: int
    service_uuids: tuple[str, ...]


def _scanner_args(adapter: str | None) -> BlueZScannerArgs:
    return {} if adapter is None else {"adapter": adapter}


def _client_args(adapter: str | None) -> BlueZClientArgs:
    return {} if adapter is None else {"adapter": adapter}


async def scan(
    timeout_s: float = 5.0,
    *,
    adapter: str | None = None,
    service_uuids: Sequence[str] | None = None,
) -> list[ScanResult]:
    """Scan for ``timeout_s`` and list advertising devices, strongest first.

    ``service_uuids`` (16- or 128-bit) keeps only devices advertising one of them.
    """
    wanted = None if service_uuids is None else [uuid128(u) for u in service_uuids]
    async with BleakScanner(service_uuids=wanted, bluez=_scanner_args(adapter)) as scanner:
        await asyncio.sleep(timeout_s)
    found = scanner.discovered_devices_and_advertisement_data
    results = [
        ScanResult(
            device.name,
            device.address,
            adv.rssi,
            tuple(sorted(u.lower() for u in adv.service_uuids)),
        )
        for device, adv in found.values()
    ]
    return sorted(results, key=lambda r: (-r.rssi_dbm, r.address))


_KNOWN_SERVICES = {
    Service.HEART_RATE.uuid: "heart rate",
    Service.BATTERY.uuid: "battery",
    Service.DEVICE_INFORMATION.uuid: "device info",
    Service.RUNNING_SPEED_AND_CADENCE.uuid: "running speed/cadence",
}


def format_scan_results(results: Sequence[ScanResult]) -> str:
    """A table for ``wellsense collect scan``: name, address, RSSI, services."""
    if not results:
        return "no Bluetooth LE devices found (is the sensor awake and near the gateway?)"
    rows = [("NAME", "ADDRESS", "RSSI", "SERVICES")]
    for r in results:
        services = ", ".join(_KNOWN_SERVICES.get(u, u) for u in r.service_uuids) or "-"
        rows.append((r.name or "(no name)", r.address, f"{r.rssi_dbm} dBm", services))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows
    )


Predicate = Callable[[BLEDevice, AdvertisementData], bool]
_Found = tuple[BLEDevice, AdvertisementData]


class _SharedScanner:
    """One BleakScanner, running while any sensor task is looking for a device."""

    def __init__(self, adapter: str | None) -> None:
        self._adapter = adapter
        self._scanner: BleakScanner | None = None
        self._lock = asyncio.Lock()
        self._waiters: dict[
            asyncio.Future[_Found], tuple[Predicate, Callable[[BLEDevice], None]]
        ] = {}

    def _offer(self, device: BLEDevice, adv: AdvertisementData) -> None:
        for fut, (predicate, on_found) in list(self._waiters.items()):
            if not fut.done() and predicate(device, adv):
                # claim synchronously, so no other waiter can take the same device
                on_found(device)
                fut.set_result((device, adv))
                return  # one device satisfies one waiter per advertisement

    async def find(
        self, predicate: Predicate, timeout_s: float, on_found: Callable[[BLEDevice], None]
    ) -> _Found | None:
        """The first advertisement matching ``predicate`` within ``timeout_s``, or None.

        ``on_found`` runs as soon as the device matches, before any other
        waiter is considered.
        """
        fut: asyncio.Future[_Found] = asyncio.get_running_loop().create_future()
        self._waiters[fut] = (predicate, on_found)
        try:
            async with self._lock:
                if self._scanner is None:
                    scanner = BleakScanner(self._offer, bluez=_scanner_args(self._adapter))
                    await scanner.start()
                    self._scanner = scanner
                else:
                    # devices seen since the scan started do not advertise "again" to bleak
                    seen = self._scanner.discovered_devices_and_advertisement_data
                    for device, adv in seen.values():
                        if not fut.done():
                            self._offer(device, adv)
            try:
                return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
            except TimeoutError:
                return None
        finally:
            del self._waiters[fut]
            await self._stop_if_idle()

    async def _stop_if_idle(self) -> None:
        async with self._lock:
            if self._waiters or self._scanner is None:
                return
            scanner, self._scanner = self._scanner, None
            try:
                await scanner.stop()
            except Exception as exc:  # a dead bus: the next start reconnects
                logger.warning("stopping scan failed: %r", exc)


@dataclass(slots=True)
class ManagerCounters:
    """Counters of the manager's own work (data, not log lines)."""

    notifications: int = 0
    dropped: int = 0
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    not_found: int = 0


@dataclass(frozen=True, slots=True)
class SensorStatus:
    """A snapshot of one sensor for health reporting."""

    key: str
    address: str | None
    connected: bool
    session: int
    gap_since_ns: int | None  # an open gap: disconnected since then
    battery_pct: int | None


@dataclass(slots=True)
class _Sensor:
    spec: SensorSpec
    session: int = 0
    address: str | None = None
    connected: bool = False
    gap_since_ns: int | None = None
    gap_reason: str = ""
    lost_at: float | None = None  # monotonic s
    battery_pct: int | None = None
    failures: int = 0


class _SessionEnd(Exception):
    """The device disconnected (bleak's disconnected callback fired)."""


class DeviceManager:
    """Keeps every configured sensor connected and streaming, for as long as it runs.

    Usage::

        manager = DeviceManager([SensorSpec("chest", service_uuid="180d")])
        async with manager:
            while True:
                item = await manager.queue.get()   # RawNotification | SensorEvent

    Args:
        sensors: what to connect to; keys must be unique.
        clock_ns: timestamps records and events (ns since 1970).
        options: timeouts, backoff, battery interval, adapter, queue bound.
        queue: use this queue instead of creating one.
        rng: randomness for backoff jitter (inject a seeded one in tests).
    """

    def __init__(
        self,
        sensors: Sequence[SensorSpec],
        *,
        clock_ns: ClockNs = time.time_ns,
        options: ManagerOptions | None = None,
        queue: asyncio.Queue[BleItem] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        keys = [s.key for s in sensors]
        if len(set(keys)) != len(keys):
            raise ValueError(f"sensor keys must be unique: {keys}")
        self.options = options or ManagerOptions()
        self.queue: asyncio.Queue[BleItem] = queue or asyncio.Queue(self.options.queue_maxsize)
        self.counters = ManagerCounters()
        self._clock = clock_ns
        self._rng = rng or random.Random()
        self._sensors = {s.key: _Sensor(s) for s in sensors}
        self._claims: dict[str, str] = {}  # address -> sensor key
        self._scanner = _SharedScanner(self.options.adapter)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------
    async def __aenter__(self) -> DeviceManager:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Start one task per sensor (idempotent)."""
        if self._tasks:
            return
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._run_sensor(s), name=f"ble-{s.spec.key}")
            for s in self._sensors.values()
        ]

    async def stop(self) -> None:
        """Disconnect everything and end the tasks."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def run(self) -> None:
        """Run until cancelled."""
        self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    def status(self) -> list[SensorStatus]:
        """Per-sensor snapshot, in configuration order."""
        return [
            SensorStatus(
                s.spec.key, s.address, s.connected, s.session, s.gap_since_ns, s.battery_pct
            )
            for s in self._sensors.values()
        ]

    # --- queue -------------------------------------------------------------
    def _put(self, item: BleItem) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.counters.dropped += 1

    def _on_notify_factory(
        self, key: str, char_uuid: str, session: int
    ) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        clock, put, counters = self._clock, self._put, self.counters

        def on_notify(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            # only timestamp and enqueue: parsing happens in the consumer
            received_ns = clock()
            counters.notifications += 1
            put(RawNotification(received_ns, key, char_uuid, bytes(data), session))

        return on_notify

    # --- per sensor ----------------------------------------------------------
    def _accepts(self, sensor: _Sensor, device: BLEDevice, adv: AdvertisementData) -> bool:
        address = device.address.upper()
        owner = self._claims.get(address)
        if owner is not None and owner != sensor.spec.key:
            return False
        if not sensor.spec.matches(address, adv.local_name or device.name, adv.service_uuids):
            return False
        # a pattern sensor sticks to its device for a while after losing it
        return (
            sensor.address is None
            or address == sensor.address
            or sensor.lost_at is None
            or time.monotonic() - sensor.lost_at > self.options.rebind_after_s
        )

    def _claim(self, sensor: _Sensor, address: str) -> None:
        if sensor.address is not None and sensor.address != address:
            self._claims.pop(sensor.address, None)
        sensor.address = address
        self._claims[address] = sensor.spec.key

    async def _backoff(self, failures: int) -> None:
        o = self.options
        await asyncio.sleep(
            self._rng.uniform(0, min(o.backoff_cap_s, o.backoff_base_s * 2**failures))
        )

    async def _run_sensor(self, sensor: _Sensor) -> None:
        key, o = sensor.spec.key, self.options
        while True:
            try:
                found = await self._scanner.find(
                    lambda d, a: self._accepts(sensor, d, a),
                    o.scan_timeout_s,
                    lambda d: self._claim(sensor, d.address.upper()),
                )
            except Exception as exc:  # no adapter, bus gone: keep trying
                logger.warning("scan failed", extra={"sensor": key, "error": repr(exc)})
                found = None
            if found is None:
                sensor.failures += 1
                self.counters.not_found += 1
                self._put(SensorNotFound(self._clock(), key, sensor.failures, o.scan_timeout_s))
                await self._backoff(sensor.failures)
                continue
            device, adv = found
            address = device.address.upper()
            self._put(RssiReading(self._clock(), key, address, adv.rssi))
            try:
                await self._session(sensor, device)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if sensor.connected:
                    self._end_session(sensor, _reason(exc), requested=False)
                    sensor.failures = 0
                else:
                    sensor.failures += 1
                    self.counters.connect_failures += 1
                    self._put(
                        ConnectFailed(self._clock(), key, address, sensor.failures, _reason(exc))
                    )
                    logger.info("connect failed", extra={"sensor": key, "error": _reason(exc)})
            await self._backoff(sensor.failures)

    def _end_session(self, sensor: _Sensor, reason: str, *, requested: bool) -> None:
        now = self._clock()
        sensor.connected = False
        sensor.gap_since_ns, sensor.gap_reason = now, reason
        sensor.lost_at = time.monotonic()
        self.counters.disconnects += 1
        self._put(
            SensorDisconnected(
                now, sensor.spec.key, sensor.address or "", sensor.session, reason, requested
            )
        )
        logger.info("disconnected", extra={"sensor": sensor.spec.key, "reason": reason})

    async def _session(self, sensor: _Sensor, device: BLEDevice) -> None:
        """Connect, subscribe, read, then poll the battery until the link drops."""
        o, key = self.options, sensor.spec.key
        lost = asyncio.Event()
        profile: Profile | None = None
        link: _BleakLink | None = None
        client = BleakClient(
            device,
            disconnected_callback=lambda _c: lost.set(),
            timeout=o.connect_timeout_s,
            bluez=_client_args(o.adapter),
        )
        try:
            async with asyncio.timeout(o.connect_timeout_s):
                await client.connect()
            sensor.session += 1
            sensor.connected = True
            now = self._clock()
            self.counters.connects += 1
            if sensor.gap_since_ns is not None:
                self._put(
                    Gap(
                        now,
                        key,
                        sensor.gap_since_ns,
                        now,
                        sensor.gap_reason,
                        sensor.session - 1,
                        sensor.session,
                    )
                )
            sensor.gap_since_ns = None
            profile_name = sensor.spec.profile
            if profile_name == AUTO:
                services = [svc.uuid for svc in client.services]
                profile_name = detect(services, device.name)
            profile = make_profile(profile_name)
            has_rsc = (
                profile_name == "hrs"
                and client.services.get_characteristic(RSC_MEASUREMENT) is not None
            )
            # Connected goes first so that the consumer sees it before any record
            self._put(
                SensorConnected(
                    now, key, sensor.address or device.address, device.name, sensor.session, has_rsc
                )
            )
            logger.info(
                "connected",
                extra={"sensor": key, "session": sensor.session, "profile": profile_name},
            )
            link = _BleakLink(
                client,
                o.io_timeout_s,
                lambda uuid: self._on_notify_factory(key, uuid, sensor.session),
            )
            await self._start_profile(sensor, profile, link)
            await self._read_info(client, sensor)
            while not lost.is_set():
                await self._read_battery(client, sensor)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), o.battery_interval_s)
            self._end_session(sensor, "link lost", requested=False)
            sensor.failures = 0
        except asyncio.CancelledError:
            if sensor.connected:
                if profile is not None and link is not None and not lost.is_set():
                    # stop PMD streams so the sensor does not stream into the void
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(5):
                            await profile.stop(link)
                self._end_session(sensor, "manager stopped", requested=True)
            raise
        finally:
            # also after the peer dropped the link: only disconnect() releases
            # the client's own D-Bus connection
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await client.disconnect()

    async def _start_profile(self, sensor: _Sensor, profile: Profile, link: _BleakLink) -> None:
        """Start the profile's streams; each started stream becomes a StreamStarted event."""
        # one io timeout per GATT operation (in the link); the whole dialogue is bounded too
        async with asyncio.timeout(8 * self.options.io_timeout_s):
            streams = await profile.start(link)
        for stream in streams:
            self._put(
                StreamStarted(
                    self._clock(),
                    sensor.spec.key,
                    sensor.session,
                    profile.name,
                    stream.name,
                    stream.char_uuid,
                    stream.measurement_type,
                    stream.fs_hz,
                    stream.factor,
                )
            )
        logger.info(
            "streams started",
            extra={"sensor": sensor.spec.key, "streams": [s.name for s in streams]},
        )

    async def _read(self, client: BleakClient, uuid: str) -> bytes | None:
        if client.services.get_characteristic(uuid) is None:
            return None
        async with asyncio.timeout(self.options.io_timeout_s):
            return bytes(await client.read_gatt_char(uuid))

    async def _read_info(self, client: BleakClient, sensor: _Sensor) -> None:
        def text(raw: bytes | None) -> str | None:
            return None if raw is None else raw.decode("utf-8", "replace").rstrip("\x00")

        location = await self._read(client, BODY_SENSOR_LOCATION)
        self._put(
            DeviceInfo(
                self._clock(),
                sensor.spec.key,
                sensor.address or "",
                manufacturer=text(await self._read(client, MANUFACTURER_NAME)),
                model=text(await self._read(client, MODEL_NUMBER)),
                serial=text(await self._read(client, SERIAL_NUMBER)),
                firmware=text(await self._read(client, FIRMWARE_REVISION)),
                body_location=location[0] if location else None,
            )
        )

    async def _read_battery(self, client: BleakClient, sensor: _Sensor) -> None:
        raw = await self._read(client, BATTERY_LEVEL)
        if raw:
            sensor.battery_pct = raw[0]
            self._put(BatteryLevel(self._clock(), sensor.spec.key, raw[0]))


class _BleakLink:
    """:class:`collector.profiles.GattLink` over a connected BleakClient.

    Values of characteristics subscribed without a callback go to the
    manager's queue as RawNotification records (``raw_callback``).
    """

    def __init__(
        self,
        client: BleakClient,
        timeout_s: float,
        raw_callback: Callable[[str], Callable[[BleakGATTCharacteristic, bytearray], None]],
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._raw_callback = raw_callback

    def has_characteristic(self, uuid: str) -> bool:
        return self._client.services.get_characteristic(uuid) is not None

    async def read(self, uuid: str) -> bytes:
        async with asyncio.timeout(self._timeout_s):
            return bytes(await self._client.read_gatt_char(uuid))

    async def write(self, uuid: str, data: bytes) -> None:
        async with asyncio.timeout(self._timeout_s):
            await self._client.write_gatt_char(uuid, data, response=True)

    async def subscribe(self, uuid: str, on_value: Notify | None = None) -> None:
        if on_value is None:
            callback = self._raw_callback(uuid)
        else:
            handler = on_value

            def callback(_char: BleakGATTCharacteristic, data: bytearray) -> None:
                handler(bytes(data))

        async with asyncio.timeout(self._timeout_s):
            await self._client.start_notify(uuid, callback)

    async def unsubscribe(self, uuid: str) -> None:
        async with asyncio.timeout(self._timeout_s):
            await self._client.stop_notify(uuid)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
