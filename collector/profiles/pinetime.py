"""PineTime running InfiniTime: Heart Rate Service + InfiniTime's Motion service.

Streams (UUIDs and formats from InfiniTime's ``doc/MotionService.md``):

* ``hr``: Heart Rate Measurement (InfiniTime's PPG heart rate, no RR).
* ``steps``: Step count, ``00030001-78fc-48fe-8e23-433b3a1942d0``, one
  ``uint32`` little-endian: the watch's step counter since midnight (it
  resets daily); the collector reports the increase per notification.
* ``motion``: Raw motion, ``00030002-78fc-48fe-8e23-433b3a1942d0``, three
  ``int16`` (x, y, z) in the BMA421's raw units; InfiniTime notifies it at
  its motion-task rate, too irregular for epoch features, so it stays on
  the gateway like raw PMD ACC.

Both motion characteristics are READ + NOTIFY; start = enable
notifications (and read the step count once for a baseline). No stop.
"""

from __future__ import annotations

import struct

from collector.gatt import GattParseError
from collector.profiles.base import GattLink, Profile, StartedStream
from collector.profiles.hrs import start_heart_rate

MOTION_SERVICE_UUID = "00030000-78fc-48fe-8e23-433b3a1942d0"
STEP_COUNT_UUID = "00030001-78fc-48fe-8e23-433b3a1942d0"
RAW_MOTION_UUID = "00030002-78fc-48fe-8e23-433b3a1942d0"


def parse_step_count(data: bytes) -> int:
    """Steps since the watch's daily reset: ``uint32`` little-endian."""
    if len(data) != 4:
        raise GattParseError("InfiniTime step count", f"needs 4 octets, got {len(data)}")
    return int.from_bytes(data, "little")


def parse_raw_motion(data: bytes) -> tuple[int, int, int]:
    """Raw x, y, z: three ``int16`` little-endian."""
    if len(data) != 6:
        raise GattParseError("InfiniTime raw motion", f"needs 6 octets, got {len(data)}")
    x, y, z = struct.unpack("<3h", data)
    return x, y, z


def step_increase(previous: int | None, current: int) -> int | None:
    """Steps since the previous reading; ``None`` for the first reading of a
    connection and across the watch's midnight reset (count went down)."""
    if previous is None or current < previous:
        return None
    return current - previous


class PineTimeProfile(Profile):
    """HRS + InfiniTime Motion (step count, raw motion)."""

    name = "pinetime"

    async def start(self, link: GattLink) -> list[StartedStream]:
        started = await start_heart_rate(link, with_rsc=False)
        for name, uuid in (("steps", STEP_COUNT_UUID), ("motion", RAW_MOTION_UUID)):
            if link.has_characteristic(uuid):
                await link.subscribe(uuid)
                started.append(StartedStream(name, uuid))
        return started
