"""Encoders for the standard GATT characteristics the simulated wearables emit.

Layouts follow the Bluetooth SIG Heart Rate Service, Battery Service,
Device Information Service and Running Speed and Cadence Service
specifications. Little-endian throughout.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

#: Largest attribute value GATT allows; bigger RR batches are split.
MAX_ATTRIBUTE_LEN = 512
_RR_UNITS_PER_S = 1024

# Heart Rate Measurement flags (0x2A37)
HR_FLAG_UINT16 = 0x01
HR_FLAG_CONTACT_DETECTED = 0x02
HR_FLAG_CONTACT_SUPPORTED = 0x04
HR_FLAG_ENERGY = 0x08
HR_FLAG_RR = 0x10

# Running Speed and Cadence Measurement flags (0x2A53)
RSC_FLAG_STRIDE = 0x01
RSC_FLAG_DISTANCE = 0x02
RSC_FLAG_RUNNING = 0x04

#: Body Sensor Location codes (0x2A38).
BODY_LOCATION = {"other": 0, "chest": 1, "wrist": 2, "finger": 3, "hand": 4,
                 "ear_lobe": 5, "foot": 6}


def rr_ms_to_units(rr_ms: float) -> int:
    """RR interval in ms -> 1/1024 s units, clamped to uint16."""
    return max(0, min(0xFFFF, round(rr_ms * _RR_UNITS_PER_S / 1000.0)))


def max_rr_per_notification(*, energy: bool, hr_uint16: bool = False) -> int:
    """How many RR values fit in one Heart Rate Measurement of maximal size."""
    header = 1 + (2 if hr_uint16 else 1) + (2 if energy else 0)
    return (MAX_ATTRIBUTE_LEN - header) // 2


def heart_rate_measurement(
    hr_bpm: int,
    *,
    contact: bool | None,
    rr_ms: Sequence[float] = (),
    energy_kj: int | None = None,
) -> bytes:
    """Encode a Heart Rate Measurement (0x2A37).

    ``contact=None`` means "contact detection not supported". RR values go in
    1/1024 s units; the caller keeps batches within :data:`MAX_ATTRIBUTE_LEN`.
    """
    flags = 0
    hr = max(0, min(0xFFFF, int(hr_bpm)))
    if hr > 0xFF:
        flags |= HR_FLAG_UINT16
    if contact is not None:
        flags |= HR_FLAG_CONTACT_SUPPORTED | (HR_FLAG_CONTACT_DETECTED if contact else 0)
    if energy_kj is not None:
        flags |= HR_FLAG_ENERGY
    if rr_ms:
        flags |= HR_FLAG_RR
    out = bytearray([flags])
    out += struct.pack("<H", hr) if flags & HR_FLAG_UINT16 else bytes([hr])
    if energy_kj is not None:
        out += struct.pack("<H", max(0, min(0xFFFF, energy_kj)))
    for rr in rr_ms:
        out += struct.pack("<H", rr_ms_to_units(rr))
    if len(out) > MAX_ATTRIBUTE_LEN:
        raise ValueError(f"{len(rr_ms)} RR values do not fit one attribute value")
    return bytes(out)


def body_sensor_location(location: str) -> bytes:
    """Encode Body Sensor Location (0x2A38) from a name in :data:`BODY_LOCATION`."""
    return bytes([BODY_LOCATION[location]])


def battery_level(pct: float) -> bytes:
    """Encode Battery Level (0x2A19): one byte, 0..100 %."""
    return bytes([max(0, min(100, round(pct)))])


def utf8(text: str) -> bytes:
    """Encode a Device Information string (0x2A29, 0x2A24, 0x2A25, 0x2A26)."""
    return text.encode("utf-8")


def rsc_measurement(
    *,
    speed_m_s: float,
    cadence_per_min: float,
    running: bool,
    stride_m: float | None = None,
    total_distance_m: float | None = None,
) -> bytes:
    """Encode a Running Speed and Cadence Measurement (0x2A53).

    Speed in 1/256 m/s (uint16), cadence in steps/min (uint8), optional
    stride length in 1/100 m (uint16) and total distance in 1/10 m (uint32).
    """
    flags = RSC_FLAG_RUNNING if running else 0
    if stride_m is not None:
        flags |= RSC_FLAG_STRIDE
    if total_distance_m is not None:
        flags |= RSC_FLAG_DISTANCE
    out = bytearray([flags])
    out += struct.pack("<HB", min(0xFFFF, round(speed_m_s * 256)),
                       min(0xFF, round(cadence_per_min)))
    if stride_m is not None:
        out += struct.pack("<H", min(0xFFFF, round(stride_m * 100)))
    if total_distance_m is not None:
        out += struct.pack("<I", min(0xFFFFFFFF, round(total_distance_m * 10)))
    return bytes(out)


def rsc_feature(*, stride: bool = True, distance: bool = True, walk_run: bool = True) -> bytes:
    """Encode RSC Feature (0x2A54): uint16 bit field of supported features."""
    bits = (0x01 if stride else 0) | (0x02 if distance else 0) | (0x04 if walk_run else 0)
    return struct.pack("<H", bits)
