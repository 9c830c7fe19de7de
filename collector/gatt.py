"""Pure parsers for the GATT characteristics the collector reads.

No radio, no bleak: bytes in, frozen values out, so every parser is tested
on captured payloads and fuzzed. Malformed input raises
:class:`GattParseError` (a ``ValueError``) naming the characteristic and the
reason; no parser lets ``IndexError`` or ``struct.error`` escape.

Common decisions, applied to every characteristic:

* Multi-octet integers are little-endian, as everywhere in GATT (GATT
  Specification Supplement, "GSS" below).
* Flag bits marked *Reserved for Future Use* are ignored, as the Core
  specification asks of a receiver (Core 5.4, Vol 1, Part E, "General
  Terminology and Interpretation", Reserved for Future Use).
  Callers that want to count them can test the ``*_RESERVED_MASK`` constants.
* Octets left over after every field the flags announce are an error: they
  mean our model of the frame is wrong, and guessing would corrupt data.
* Values are returned as sent (no plausibility filtering): judging an HR of
  250 bpm or an RR of 0 ms is the processing service's job, with context.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

__all__ = [
    "HRM_FLAGS_RESERVED_MASK",
    "POLAR_EPOCH_UNIX_NS",
    "RSC_FLAGS_RESERVED_MASK",
    "BodySensorLocation",
    "GattParseError",
    "HeartRateMeasurement",
    "PmdAccFrame",
    "PmdFrame",
    "PmdMeasurementType",
    "RscFeature",
    "RscMeasurement",
    "parse_battery_level",
    "parse_body_sensor_location",
    "parse_device_information_string",
    "parse_heart_rate_measurement",
    "parse_pmd_acc_frame",
    "parse_pmd_frame",
    "parse_rsc_feature",
    "parse_rsc_measurement",
]


class GattParseError(ValueError):
    """A characteristic value that does not follow its specification.

    ``characteristic`` names what was being parsed and ``reason`` says what
    was wrong, so a caller can count and log without parsing the message.
    """

    def __init__(self, characteristic: str, reason: str) -> None:
        super().__init__(f"{characteristic}: {reason}")
        self.characteristic = characteristic
        self.reason = reason


# --- Heart Rate Measurement 0x2A37 -------------------------------------------------

_HRM = "heart rate measurement"
_HRM_UINT16 = 0x01  # bit 0: HR value format, 0 = uint8, 1 = uint16
_HRM_CONTACT_DETECTED = 0x02  # bit 1: meaningful only when bit 2 is set
_HRM_CONTACT_SUPPORTED = 0x04  # bit 2
_HRM_ENERGY = 0x08  # bit 3: Energy Expended (uint16, kJ) present
_HRM_RR = 0x10  # bit 4: one or more RR-Intervals (uint16, 1/1024 s) present
HRM_FLAGS_RESERVED_MASK = 0xE0
"""Flag bits 5-7 of 0x2A37, reserved for future use (ignored when parsing)."""


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One Heart Rate Measurement notification, in the units of the field names.

    ``hr_bpm`` is 0 when the sensor has no valid reading yet (optical sensors
    send 0 before they lock on); it is kept, not rejected, because it is what
    the device said and wear-time logic needs it. ``contact`` is ``None``
    when the sensor does not support contact detection. ``energy_kj`` is the
    cumulative Energy Expended since the last reset (0xFFFF means "at least
    65535", per the spec). ``rr_ms`` holds every RR-Interval of the
    notification in arrival order, ``raw * 1000 / 1024``, unrounded.
    """

    hr_bpm: int
    contact: bool | None
    energy_kj: int | None
    rr_ms: tuple[float, ...]

    @property
    def has_hr(self) -> bool:
        """False when the sensor sent HR 0 ("no reading")."""
        return self.hr_bpm != 0


def parse_heart_rate_measurement(data: bytes) -> HeartRateMeasurement:
    """Decode a Heart Rate Measurement (0x2A37) value.

    Layout (Heart Rate Service 1.0, 3.1; GSS "Heart Rate Measurement")::

        flags u8 | HR u8 or u16 | [Energy Expended u16] | [RR-Interval u16]*

    Sensor Contact Status is bits 1-2: 0b0x = not supported (``None``),
    0b10 = supported, not detected (``False``), 0b11 = detected (``True``).
    The RR field is the whole remainder, so a device beating faster than it
    notifies sends several; an odd octet there is an error. The RR flag with
    no RR octets (seen when a sensor has no beat in the interval) decodes
    as ``rr_ms == ()``.
    """
    n = len(data)
    if n == 0:
        raise GattParseError(_HRM, "empty value")
    flags = data[0]
    if flags & _HRM_UINT16:
        if n < 3:
            raise GattParseError(_HRM, f"uint16 heart rate needs 3 octets, got {n}")
        hr = data[1] | data[2] << 8
        offset = 3
    else:
        if n < 2:
            raise GattParseError(_HRM, f"uint8 heart rate needs 2 octets, got {n}")
        hr = data[1]
        offset = 2
    contact = bool(flags & _HRM_CONTACT_DETECTED) if flags & _HRM_CONTACT_SUPPORTED else None
    energy: int | None = None
    if flags & _HRM_ENERGY:
        if n < offset + 2:
            raise GattParseError(_HRM, f"energy expended flag set but value ends at {n} octets")
        energy = data[offset] | data[offset + 1] << 8
        offset += 2
    rest = n - offset
    if flags & _HRM_RR:
        if rest % 2:
            raise GattParseError(_HRM, f"RR-interval field has an odd length ({rest} octets)")
        raw = struct.unpack_from(f"<{rest // 2}H", data, offset)
        rr = tuple([value * 1000 / 1024 for value in raw])
    elif rest:
        raise GattParseError(_HRM, f"{rest} unexpected trailing octets")
    else:
        rr = ()
    return HeartRateMeasurement(hr_bpm=hr, contact=contact, energy_kj=energy, rr_ms=rr)


# --- Body Sensor Location 0x2A38 ---------------------------------------------------


class BodySensorLocation(enum.IntEnum):
    """Body Sensor Location values (HRS 1.0, 3.2; GSS "Body Sensor Location").

    ``location.name.lower()`` gives the label (``"ear_lobe"``).
    """

    OTHER = 0
    CHEST = 1
    WRIST = 2
    FINGER = 3
    HAND = 4
    EAR_LOBE = 5
    FOOT = 6


def parse_body_sensor_location(data: bytes) -> BodySensorLocation:
    """Decode Body Sensor Location (0x2A38): one uint8; 7-255 are reserved -> error."""
    what = "body sensor location"
    if len(data) != 1:
        raise GattParseError(what, f"expected 1 octet, got {len(data)}")
    try:
        return BodySensorLocation(data[0])
    except ValueError:
        raise GattParseError(what, f"reserved value {data[0]}") from None


# --- Battery Level 0x2A19 ----------------------------------------------------------


def parse_battery_level(data: bytes) -> int:
    """Decode Battery Level (0x2A19, Battery Service 1.0, 3.1) as percent.

    One uint8 in 0..100; 101-255 are reserved and raise.
    """
    what = "battery level"
    if len(data) != 1:
        raise GattParseError(what, f"expected 1 octet, got {len(data)}")
    if data[0] > 100:
        raise GattParseError(what, f"{data[0]} is above 100 % (reserved)")
    return data[0]


# --- Device Information strings 0x2A24-0x2A29 --------------------------------------


def parse_device_information_string(data: bytes) -> str:
    """Decode a Device Information Service string (DIS 1.1; GSS ``utf8s``).

    Manufacturer 0x2A29, model 0x2A24, serial 0x2A25, firmware 0x2A26,
    hardware 0x2A27 and software 0x2A28 revision are UTF-8 without a
    terminator; some firmware pads with NULs, which are stripped from the end.
    Invalid UTF-8 raises rather than being replaced, so a garbled serial
    number is never stored as if it were real.
    """
    try:
        return bytes(data).rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GattParseError("device information string", f"invalid UTF-8 ({exc.reason})") from None


# --- Running Speed and Cadence 0x2A53 / 0x2A54 -------------------------------------

_RSC = "RSC measurement"
_RSC_STRIDE = 0x01  # bit 0: Instantaneous Stride Length present
_RSC_DISTANCE = 0x02  # bit 1: Total Distance present
_RSC_RUNNING = 0x04  # bit 2: 0 = walking, 1 = running
RSC_FLAGS_RESERVED_MASK = 0xF8
"""Flag bits 3-7 of 0x2A53, reserved for future use (ignored when parsing)."""


@dataclass(frozen=True, slots=True)
class RscMeasurement:
    """One RSC Measurement notification.

    ``cadence_per_min`` is steps per minute as sent. ``running`` is the
    walking/running status bit; it means something only when
    :attr:`RscFeature.walking_or_running_status` is true.
    """

    speed_m_s: float
    cadence_per_min: int
    stride_length_m: float | None
    total_distance_m: float | None
    running: bool


def parse_rsc_measurement(data: bytes) -> RscMeasurement:
    """Decode RSC Measurement (0x2A53, Running Speed and Cadence Service 1.0, 3.1).

    Layout::

        flags u8 | speed u16 (1/256 m/s) | cadence u8 (1/min)
        | [stride length u16 (1/100 m)] | [total distance u32 (1/10 m)]
    """
    n = len(data)
    if n < 4:
        raise GattParseError(_RSC, f"needs at least 4 octets, got {n}")
    flags = data[0]
    expected = 4 + (2 if flags & _RSC_STRIDE else 0) + (4 if flags & _RSC_DISTANCE else 0)
    if n != expected:
        raise GattParseError(_RSC, f"flags {flags:#04x} announce {expected} octets, got {n}")
    speed_raw = data[1] | data[2] << 8
    offset = 4
    stride: float | None = None
    if flags & _RSC_STRIDE:
        stride = (data[4] | data[5] << 8) / 100
        offset = 6
    distance: float | None = None
    if flags & _RSC_DISTANCE:
        distance = int.from_bytes(data[offset : offset + 4], "little") / 10
    return RscMeasurement(
        speed_m_s=speed_raw / 256,
        cadence_per_min=data[3],
        stride_length_m=stride,
        total_distance_m=distance,
        running=bool(flags & _RSC_RUNNING),
    )


@dataclass(frozen=True, slots=True)
class RscFeature:
    """RSC Feature (0x2A54, RSCS 1.0, 3.2): what the sensor can measure."""

    stride_length: bool
    total_distance: bool
    walking_or_running_status: bool
    calibration_procedure: bool
    multiple_sensor_locations: bool


def parse_rsc_feature(data: bytes) -> RscFeature:
    """Decode RSC Feature: one uint16 bit field; bits 5-15 reserved (ignored)."""
    if len(data) != 2:
        raise GattParseError("RSC feature", f"expected 2 octets, got {len(data)}")
    bits = data[0] | data[1] << 8
    return RscFeature(
        stride_length=bool(bits & 0x01),
        total_distance=bool(bits & 0x02),
        walking_or_running_status=bool(bits & 0x04),
        calibration_procedure=bool(bits & 0x08),
        multiple_sensor_locations=bool(bits & 0x10),
    )


# --- Polar PMD accelerometer frames ------------------------------------------------

_PMD = "PMD ACC frame"
_PMD_HEADER = 10
_PMD_TYPE_ACC = 2
_PMD_TYPE_MASK = 0x3F  # the SDK ignores the two top bits of the measurement type
_PMD_COMPRESSED = 0x80  # frame-type bit 7: delta-compressed frame
#: Octets per axis value for the uncompressed ACC frame types 0, 1 and 2.
_PMD_ACC_WIDTH = {0: 1, 1: 2, 2: 3}
POLAR_EPOCH_UNIX_NS = 946_684_800_000_000_000
"""Polar sensor time counts ns from 2000-01-01T00:00:00Z; add this for Unix ns."""


@dataclass(frozen=True, slots=True)
class PmdAccFrame:
    """One uncompressed Polar PMD accelerometer frame.

    ``sensor_ts_ns`` is the sensor clock (ns since 2000-01-01T00:00:00Z, not
    necessarily set to real time) of the *last* sample; earlier samples are
    ``1 / sample_rate`` apart, the rate being the one requested when the
    stream was started. ``samples_mg`` are signed (x, y, z) in milli-g.
    """

    sensor_ts_ns: int
    frame_type: int
    samples_mg: tuple[tuple[int, int, int], ...]


def parse_pmd_acc_frame(data: bytes) -> PmdAccFrame:
    """Decode an accelerometer frame from the PMD data characteristic.

    Layout, from Polar's public BLE SDK (``PmdDataFrame``, ``AccData``)::

        measurement type u8 (2 = ACC) | sensor time u64 ns | frame type u8
        | samples: x, y, z as signed int8 (type 0), int16 (type 1) or int24 (type 2)

    Delta-compressed frames (frame-type bit 7) need the scale factor from the
    stream-start response and are rejected with a clear reason.
    """
    n = len(data)
    if n < _PMD_HEADER:
        raise GattParseError(_PMD, f"needs a {_PMD_HEADER}-octet header, got {n} octets")
    if data[0] & _PMD_TYPE_MASK != _PMD_TYPE_ACC:
        raise GattParseError(_PMD, f"measurement type {data[0] & _PMD_TYPE_MASK} is not ACC (2)")
    frame_type = data[9]
    if frame_type & _PMD_COMPRESSED:
        raise GattParseError(_PMD, f"delta-compressed frame type {frame_type:#04x} not supported")
    width = _PMD_ACC_WIDTH.get(frame_type)
    if width is None:
        raise GattParseError(_PMD, f"unknown uncompressed frame type {frame_type}")
    body = n - _PMD_HEADER
    if body == 0 or body % (3 * width):
        raise GattParseError(_PMD, f"{body} sample octets is not a whole number of samples")
    values = [
        int.from_bytes(data[i : i + width], "little", signed=True)
        for i in range(_PMD_HEADER, n, width)
    ]
    samples = tuple((values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3))
    return PmdAccFrame(
        sensor_ts_ns=int.from_bytes(data[1:9], "little"),
        frame_type=frame_type,
        samples_mg=samples,
    )


# --- Polar PMD data frames (any measurement type) -------------------------------------


class PmdMeasurementType(enum.IntEnum):
    """PMD measurement types (Polar BLE SDK, ``PmdMeasurementType``).

    The same numbers are used in data frames, control point requests and
    responses, and as bit positions in the feature read.
    """

    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAGNETOMETER = 6
    SKIN_TEMP = 7
    SDK_MODE = 9
    LOCATION = 10
    PRESSURE = 11
    TEMPERATURE = 12
    OFFLINE_RECORDING = 13
    OFFLINE_HR = 14


_PMD_FRAME = "PMD data frame"
_PMD_FRAME_TYPE_MASK = 0x7F
#: Widest delta the decoder accepts: the SDK adds deltas in 32-bit ints.
PMD_MAX_DELTA_BITS = 32


@dataclass(frozen=True, slots=True)
class PmdFrame:
    """One notification of the PMD data characteristic (FB005C82-...).

    ``measurement_type`` is the low 6 bits of octet 0 (see
    :class:`PmdMeasurementType`); ``sensor_ts_ns`` the sensor clock of the
    *last* sample in ns since 2000-01-01T00:00:00Z (add
    :data:`POLAR_EPOCH_UNIX_NS` for Unix time when the sensor clock was set);
    ``frame_type`` the low 7 bits of octet 9 and ``compressed`` its bit 7.
    ``samples`` are the raw integer channel values of each sample in time
    order, after delta decoding and before the scale factor from the start
    response: ACC (x, y, z); ECG type 0 (microvolts,); ECG type 3
    (data0, data1, status); PPI type 0 (hr_bpm, pp_ms, pp_error_ms, flags)
    where flags bit 0 is the blocker bit, bit 1 skin contact and bit 2
    "skin contact supported".
    """

    measurement_type: int
    sensor_ts_ns: int
    frame_type: int
    compressed: bool
    samples: tuple[tuple[int, ...], ...]


# Uncompressed layouts: one (octets, signed) pair per channel of a sample.
_Layout = tuple[tuple[int, bool], ...]
_RAW_LAYOUTS: dict[tuple[int, int], _Layout] = {
    (PmdMeasurementType.ACC, 0): ((1, True),) * 3,
    (PmdMeasurementType.ACC, 1): ((2, True),) * 3,
    (PmdMeasurementType.ACC, 2): ((3, True),) * 3,
    (PmdMeasurementType.ECG, 0): ((3, True),),
    (PmdMeasurementType.ECG, 3): ((3, True), (3, True), (1, False)),
    (PmdMeasurementType.PPI, 0): ((1, False), (2, False), (2, False), (1, False)),
}
# Delta-compressed layouts: (channels, reference-sample resolution in bits).
# The SDK decodes both ACC types with 16-bit signed reference samples; type 0
# is in units of the factor (g), type 1 in milli-g times the factor.
_DELTA_LAYOUTS: dict[tuple[int, int], tuple[int, int]] = {
    (PmdMeasurementType.ACC, 0): (3, 16),
    (PmdMeasurementType.ACC, 1): (3, 16),
}


def parse_pmd_frame(data: bytes) -> PmdFrame:
    """Decode a PMD data notification, raw or delta-compressed.

    Layout, from Polar's public BLE SDK (``PmdDataFrame``, ``AccData``,
    ``EcgData``, ``PpiData``, ``BlePMDClient.parseDeltaFramesAll``)::

        measurement type u8 (low 6 bits) | sensor time u64 ns
        | frame type u8 (bit 7 = delta-compressed) | content

    Raw content is whole samples of little-endian fields (see
    :class:`PmdFrame` for the channels). Delta-compressed content is a
    reference sample (each channel ``ceil(bits / 8)`` little-endian octets,
    sign-extended from ``bits``) followed by blocks of::

        delta bit width u8 | sample count u8
        | ceil(width * count * channels / 8) octets of deltas, packed LSB-first

    Each delta is a two's-complement ``width``-bit integer added to the
    previous sample's channel. Unused bits at the end of a block are padding.

    Deliberate differences from the SDK, which only matter for frames no
    device sends: a 1-bit delta of 1 decodes as -1 (the SDK's sign mask
    turns it into 2**31 - 1); a width of 0 or above 32 bits, an empty block,
    a truncated block and an empty raw frame raise instead of being skipped
    or throwing ``IndexOutOfBounds``.
    """
    n = len(data)
    if n < _PMD_HEADER:
        raise GattParseError(_PMD_FRAME, f"needs a {_PMD_HEADER}-octet header, got {n} octets")
    kind = data[0] & _PMD_TYPE_MASK
    sensor_ts_ns = int.from_bytes(data[1:9], "little")
    compressed = bool(data[9] & _PMD_COMPRESSED)
    frame_type = data[9] & _PMD_FRAME_TYPE_MASK
    content = data[_PMD_HEADER:]
    if compressed:
        delta = _DELTA_LAYOUTS.get((kind, frame_type))
        if delta is None:
            raise GattParseError(
                _PMD_FRAME, f"unsupported compressed frame type {frame_type} for measurement {kind}"
            )
        samples = _decode_delta_frame(content, *delta)
    else:
        layout = _RAW_LAYOUTS.get((kind, frame_type))
        if layout is None:
            raise GattParseError(
                _PMD_FRAME, f"unsupported raw frame type {frame_type} for measurement {kind}"
            )
        samples = _decode_raw_frame(content, layout)
    return PmdFrame(
        measurement_type=kind,
        sensor_ts_ns=sensor_ts_ns,
        frame_type=frame_type,
        compressed=compressed,
        samples=samples,
    )


def _decode_raw_frame(content: bytes, layout: _Layout) -> tuple[tuple[int, ...], ...]:
    size = sum(width for width, _ in layout)
    if not content or len(content) % size:
        raise GattParseError(
            _PMD_FRAME,
            f"{len(content)} content octets is not a whole number of {size}-octet samples",
        )
    samples = []
    for start in range(0, len(content), size):
        values = []
        offset = start
        for width, signed in layout:
            values.append(int.from_bytes(content[offset : offset + width], "little", signed=signed))
            offset += width
        samples.append(tuple(values))
    return tuple(samples)


def _decode_delta_frame(
    content: bytes, channels: int, resolution_bits: int
) -> tuple[tuple[int, ...], ...]:
    ref_octets = (resolution_bits + 7) // 8
    offset = channels * ref_octets
    if len(content) < offset:
        raise GattParseError(
            _PMD_FRAME, f"reference sample needs {offset} octets, got {len(content)}"
        )
    sign = 1 << (resolution_bits - 1)
    ref_mask = (1 << resolution_bits) - 1
    previous = []
    for ch in range(channels):
        raw = int.from_bytes(content[ch * ref_octets : (ch + 1) * ref_octets], "little") & ref_mask
        previous.append((raw ^ sign) - sign)
    samples = [tuple(previous)]
    n = len(content)
    while offset < n:
        if n - offset < 2:
            raise GattParseError(_PMD_FRAME, f"delta block header truncated at octet {offset}")
        width, count = content[offset], content[offset + 1]
        offset += 2
        if not 1 <= width <= PMD_MAX_DELTA_BITS:
            raise GattParseError(_PMD_FRAME, f"delta bit width {width} outside 1..32")
        if count == 0:
            raise GattParseError(_PMD_FRAME, "empty delta block (sample count 0)")
        length = (width * count * channels + 7) // 8
        if n - offset < length:
            raise GattParseError(
                _PMD_FRAME,
                f"delta block of {count} x {width}-bit samples needs {length} octets,"
                f" got {n - offset}",
            )
        bits = int.from_bytes(content[offset : offset + length], "little")
        offset += length
        mask = (1 << width) - 1
        delta_sign = 1 << (width - 1)
        for _ in range(count):
            for ch in range(channels):
                previous[ch] += ((bits & mask) ^ delta_sign) - delta_sign
                bits >>= width
            samples.append(tuple(previous))
    return tuple(samples)
