"""What the BLE device manager puts on its queue: raw records and status events.

No bleak import here, so consumers (batching, health) can import these
types without the BLE stack. All are frozen, slotted dataclasses; times are
ns from the manager's injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawNotification:
    """One GATT notification exactly as received, not parsed.

    ``session`` counts this sensor's connections from 1; records of two
    different sessions are separated by a disconnect (see :class:`Gap`).
    """

    received_ns: int
    sensor_key: str
    char_uuid: str  # 128-bit, lowercase
    data: bytes
    session: int


@dataclass(frozen=True, slots=True)
class SensorEvent:
    """Base of the status events: when and which configured sensor."""

    ts_ns: int
    sensor_key: str


@dataclass(frozen=True, slots=True)
class SensorConnected(SensorEvent):
    """Connected and subscribed; notifications of ``session`` follow."""

    address: str
    name: str | None
    session: int
    has_rsc: bool  # Running Speed and Cadence is subscribed too


@dataclass(frozen=True, slots=True)
class SensorDisconnected(SensorEvent):
    """A session ended. ``requested`` is true when the manager was stopping."""

    address: str
    session: int
    reason: str
    requested: bool


@dataclass(frozen=True, slots=True)
class Gap(SensorEvent):
    """Emitted on reconnect: no data between ``start_ns`` and ``end_ns``.

    ``start_ns`` is when the disconnect was seen, ``end_ns`` when the new
    session was established; the sessions before/after name the records on
    either side.
    """

    start_ns: int
    end_ns: int
    reason: str
    session_before: int
    session_after: int


@dataclass(frozen=True, slots=True)
class ConnectFailed(SensorEvent):
    """A device was found but the connection or GATT setup failed."""

    address: str
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class SensorNotFound(SensorEvent):
    """No matching device advertised during a whole scan."""

    attempt: int
    scan_s: float


@dataclass(frozen=True, slots=True)
class RssiReading(SensorEvent):
    """Signal strength of the sensor's advertisement when it was found."""

    address: str
    rssi_dbm: int


@dataclass(frozen=True, slots=True)
class BatteryLevel(SensorEvent):
    """Battery Level (0x2A19) as read."""

    battery_pct: int


@dataclass(frozen=True, slots=True)
class DeviceInfo(SensorEvent):
    """Device Information and Body Sensor Location, read once per connection.

    Missing characteristics are ``None``; ``body_location`` is the raw
    0x2A38 code (1 = chest, 2 = wrist, ...).
    """

    address: str
    manufacturer: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    body_location: int | None


@dataclass(frozen=True, slots=True)
class StreamStarted(SensorEvent):
    """A device profile started a stream on ``session`` (after SensorConnected).

    ``stream`` is the profile's name for it (``hr``, ``rsc``, ``acc``, ``ppi``,
    ``steps``, ``motion``); PMD streams give their measurement type, sample
    rate and the start response's factor, which decoding needs.
    """

    session: int
    profile: str
    stream: str
    char_uuid: str
    measurement_type: int | None = None
    fs_hz: float | None = None
    factor: float | None = None


BleItem = RawNotification | SensorEvent
"""Anything the manager puts on its queue."""
