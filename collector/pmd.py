"""Polar Measurement Data (PMD) control point: requests and responses.

Pure bytes in, values out, like :mod:`collector.gatt`; the radio side (write
with response on the control point, wait for its indication) belongs to the
BLE layer. Byte layouts follow Polar's public BLE SDK (Android sources:
``PmdControlPointCommand``, ``PmdControlPointResponse``, ``PmdSetting``,
``PmdMeasurementType``, ``BlePMDClient``); every encoder and parser is
tested on the vectors of that SDK's unit tests (tests/unit/test_pmd.py).

The start sequence for an accelerometer stream is::

    read CP             -> parse_feature()            (is ACC offered?)
    write settings_request(ACC) -> parse_response()   -> parse_settings(parameters)
    write start_request(ACC, {...}) -> parse_response() -> start_factor(parameters)
    ... data notifications: collector.gatt.parse_pmd_frame ...
    write stop_request(ACC) -> parse_response()
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from collector.gatt import GattParseError, PmdFrame, PmdMeasurementType

__all__ = [
    "CONTROL_POINT_RESPONSE",
    "FEATURE_READ_RESPONSE",
    "MEASUREMENT_STOPPED",
    "PMD_CONTROL_POINT_UUID",
    "PMD_DATA_UUID",
    "PMD_SERVICE_UUID",
    "PmdCommandError",
    "PmdOpCode",
    "PmdResponse",
    "PmdSettingType",
    "PmdSettings",
    "PmdStatus",
    "acc_scale_g",
    "encode_settings",
    "parse_feature",
    "parse_measurement_stopped",
    "parse_response",
    "parse_settings",
    "settings_request",
    "start_factor",
    "start_request",
    "stop_request",
]

PMD_SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL_POINT_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

FEATURE_READ_RESPONSE = 0x0F
"""Octet 0 of the control point's read value (the feature bit field follows)."""
CONTROL_POINT_RESPONSE = 0xF0
"""Octet 0 of every indication that answers a request."""
MEASUREMENT_STOPPED = 0x01
"""Octet 0 of an indication the sensor sends on its own when it stops streams."""

_CP = "PMD control point"


class PmdOpCode(enum.IntEnum):
    """Requests from the client (``PmdControlPointCommandClientToService``)."""

    GET_MEASUREMENT_SETTINGS = 1
    REQUEST_MEASUREMENT_START = 2
    STOP_MEASUREMENT = 3
    GET_SDK_MODE_MEASUREMENT_SETTINGS = 4
    GET_MEASUREMENT_STATUS = 5
    GET_SDK_MODE_STATUS = 6
    GET_OFFLINE_RECORDING_TRIGGER_STATUS = 7
    SET_OFFLINE_RECORDING_TRIGGER_MODE = 8
    SET_OFFLINE_RECORDING_TRIGGER_SETTINGS = 9


class PmdStatus(enum.IntEnum):
    """Error code of a control point response (``PmdControlPointResponseCode``)."""

    SUCCESS = 0
    INVALID_OP_CODE = 1
    INVALID_MEASUREMENT_TYPE = 2
    NOT_SUPPORTED = 3
    INVALID_LENGTH = 4
    INVALID_PARAMETER = 5
    ALREADY_IN_STATE = 6
    INVALID_RESOLUTION = 7
    INVALID_SAMPLE_RATE = 8
    INVALID_RANGE = 9
    INVALID_MTU = 10
    INVALID_NUMBER_OF_CHANNELS = 11
    INVALID_STATE = 12
    DEVICE_IN_CHARGER = 13
    DISK_FULL = 14


class PmdSettingType(enum.IntEnum):
    """Setting types of the settings TLV (``PmdSetting.PmdSettingType``)."""

    SAMPLE_RATE = 0  # Hz, u16
    RESOLUTION = 1  # bits, u16
    RANGE = 2  # +-unit (g for ACC), u16
    RANGE_MILLIUNIT = 3  # +-milli-unit, s32
    CHANNELS = 4  # u8
    FACTOR = 5  # IEEE-754 float32 scale, only in start responses


# (octets, signed) per setting value; the factor's 4 octets are a float32.
_FIELD = {
    PmdSettingType.SAMPLE_RATE: (2, False),
    PmdSettingType.RESOLUTION: (2, False),
    PmdSettingType.RANGE: (2, False),
    PmdSettingType.RANGE_MILLIUNIT: (4, True),
    PmdSettingType.CHANNELS: (1, False),
    PmdSettingType.FACTOR: (4, False),
}


class PmdCommandError(Exception):
    """The sensor refused a request; ``status`` says why."""

    def __init__(self, op_code: PmdOpCode, measurement_type: int, status: PmdStatus) -> None:
        super().__init__(f"{op_code.name} for measurement {measurement_type}: {status.name}")
        self.op_code = op_code
        self.measurement_type = measurement_type
        self.status = status


# --- requests -------------------------------------------------------------------------


def settings_request(measurement_type: int) -> bytes:
    """GET_MEASUREMENT_SETTINGS for an online stream: ``01 <type>``."""
    return bytes([PmdOpCode.GET_MEASUREMENT_SETTINGS, _type_octet(measurement_type)])


def stop_request(measurement_type: int) -> bytes:
    """STOP_MEASUREMENT: ``03 <type>``."""
    return bytes([PmdOpCode.STOP_MEASUREMENT, _type_octet(measurement_type)])


def start_request(measurement_type: int, settings: Mapping[PmdSettingType, int]) -> bytes:
    """REQUEST_MEASUREMENT_START for an online stream: ``02 <type> <settings TLV>``.

    For a Polar H10 accelerometer at 50 Hz, +-8 g, 16 bits::

        start_request(PmdMeasurementType.ACC, {SAMPLE_RATE: 50, RESOLUTION: 16, RANGE: 8})
        == bytes.fromhex("02 02 00 01 32 00 01 01 10 00 02 01 08 00")
    """
    return bytes([PmdOpCode.REQUEST_MEASUREMENT_START, _type_octet(measurement_type)]) + (
        encode_settings(settings)
    )


def encode_settings(settings: Mapping[PmdSettingType, int]) -> bytes:
    """Selected settings as TLV: ``type u8 | count u8 (=1) | value`` in type order.

    The factor is never sent (the SDK skips it too): it is the sensor's answer.
    """
    out = bytearray()
    for kind in sorted(settings):
        if kind is PmdSettingType.FACTOR:
            continue
        width, signed = _FIELD[kind]
        value = settings[kind]
        try:
            encoded = value.to_bytes(width, "little", signed=signed)
        except OverflowError:
            raise ValueError(f"{kind.name}={value} does not fit {width} octets") from None
        out += bytes([kind, 1]) + encoded
    return bytes(out)


def _type_octet(measurement_type: int) -> int:
    if not 0 <= measurement_type <= 0x3F:
        raise ValueError(f"measurement type {measurement_type} outside 0..63")
    return measurement_type  # online recording: bits 6-7 are 0


# --- responses ------------------------------------------------------------------------


def parse_feature(data: bytes) -> frozenset[int]:
    """Measurement types offered, from the control point's read value.

    Layout: ``0F | bit field``; bit ``k`` of octet ``1 + k // 8`` set means
    measurement type ``k`` is available (ECG = octet 1 bit 0, ACC = bit 2,
    PPI = bit 3, SDK mode = octet 2 bit 1).
    """
    if len(data) < 2:
        raise GattParseError("PMD feature", f"needs at least 2 octets, got {len(data)}")
    if data[0] != FEATURE_READ_RESPONSE:
        raise GattParseError("PMD feature", f"octet 0 is {data[0]:#04x}, not 0x0f")
    return frozenset(
        8 * i + bit for i, octet in enumerate(data[1:]) for bit in range(8) if octet >> bit & 1
    )


@dataclass(frozen=True, slots=True)
class PmdResponse:
    """One control point indication answering a request.

    ``parameters`` are the octets after the "more" flag (settings TLV for
    GET_MEASUREMENT_SETTINGS and START); empty unless ``status`` is SUCCESS.
    ``more`` says another indication continues the parameters (its own
    octets from index 5 on are appended, as the SDK does).
    """

    op_code: PmdOpCode
    measurement_type: int
    status: PmdStatus
    more: bool
    parameters: bytes

    def raise_for_status(self) -> PmdResponse:
        """Return self on SUCCESS, else raise :class:`PmdCommandError`."""
        if self.status is not PmdStatus.SUCCESS:
            raise PmdCommandError(self.op_code, self.measurement_type, self.status)
        return self


def parse_response(data: bytes) -> PmdResponse:
    """Decode ``F0 | op code | measurement type | status | [more | parameters...]``."""
    if len(data) < 4:
        raise GattParseError(_CP, f"response needs at least 4 octets, got {len(data)}")
    if data[0] != CONTROL_POINT_RESPONSE:
        raise GattParseError(_CP, f"octet 0 is {data[0]:#04x}, not a response (0xf0)")
    try:
        op_code = PmdOpCode(data[1])
    except ValueError:
        raise GattParseError(_CP, f"unknown op code {data[1]}") from None
    try:
        status = PmdStatus(data[3])
    except ValueError:
        raise GattParseError(_CP, f"unknown status {data[3]}") from None
    ok = status is PmdStatus.SUCCESS
    return PmdResponse(
        op_code=op_code,
        measurement_type=data[2],
        status=status,
        more=ok and len(data) > 4 and data[4] != 0,
        parameters=bytes(data[5:]) if ok else b"",
    )


def parse_measurement_stopped(data: bytes) -> tuple[int, ...] | None:
    """Measurement types in a sensor-initiated "online measurement stopped"
    indication (``01 | type*``), or ``None`` for any other indication."""
    if not data or data[0] != MEASUREMENT_STOPPED:
        return None
    return tuple(b & 0x3F for b in data[1:])


@dataclass(frozen=True, slots=True)
class PmdSettings:
    """Settings offered (settings query) or chosen (start response).

    Each field holds the values in the order sent; ``factor`` is the
    float32 scale of the raw samples, present only in start responses.
    """

    sample_rates_hz: tuple[int, ...] = ()
    resolutions_bits: tuple[int, ...] = ()
    ranges: tuple[int, ...] = ()
    ranges_milliunit: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    factor: float | None = None


def parse_settings(parameters: bytes) -> PmdSettings:
    """Decode a settings TLV: ``(type u8 | count u8 | value*count)*``.

    Value sizes: sample rate, resolution and range u16; range in milli-units
    s32; channels u8; factor float32 (all little-endian). As in the SDK, a
    single octet (or none) means "no settings".
    """
    what = "PMD settings"
    found: dict[PmdSettingType, list[int]] = {}
    factor: float | None = None
    n = len(parameters)
    offset = 0
    if n <= 1:
        return PmdSettings()
    while offset < n:
        if n - offset < 2:
            raise GattParseError(what, f"setting header truncated at octet {offset}")
        try:
            kind = PmdSettingType(parameters[offset])
        except ValueError:
            raise GattParseError(what, f"unknown setting type {parameters[offset]}") from None
        count = parameters[offset + 1]
        offset += 2
        width, signed = _FIELD[kind]
        if n - offset < width * count:
            raise GattParseError(what, f"{kind.name}: {count} values need {width * count} octets")
        for _ in range(count):
            field = parameters[offset : offset + width]
            offset += width
            if kind is PmdSettingType.FACTOR:
                if factor is None:  # the SDK keeps the first
                    factor = struct.unpack("<f", field)[0]
            else:
                found.setdefault(kind, []).append(int.from_bytes(field, "little", signed=signed))

    def values(kind: PmdSettingType) -> tuple[int, ...]:
        return tuple(found.get(kind, ()))

    return PmdSettings(
        sample_rates_hz=values(PmdSettingType.SAMPLE_RATE),
        resolutions_bits=values(PmdSettingType.RESOLUTION),
        ranges=values(PmdSettingType.RANGE),
        ranges_milliunit=values(PmdSettingType.RANGE_MILLIUNIT),
        channels=values(PmdSettingType.CHANNELS),
        factor=factor,
    )


def start_factor(parameters: bytes) -> float:
    """The scale factor from a start response's parameters; 1.0 when absent
    (the SDK's default: older firmware sends no factor)."""
    factor = parse_settings(parameters).factor
    return 1.0 if factor is None else factor


def acc_scale_g(frame: PmdFrame, factor: float) -> float:
    """g per raw unit of an ACC frame's samples.

    From the SDK's ``AccData``: raw frames are milli-g; compressed type 0
    is in g after multiplying by ``factor``; compressed type 1 is milli-g
    after multiplying by ``factor``.
    """
    if frame.measurement_type != PmdMeasurementType.ACC:
        raise ValueError(f"measurement type {frame.measurement_type} is not ACC")
    if frame.compressed and frame.frame_type == 0:
        return factor
    if frame.compressed:
        return factor / 1000.0
    return 1.0 / 1000.0
