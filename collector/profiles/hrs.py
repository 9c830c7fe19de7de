"""Generic Heart Rate Service (0x180D) profile, plus Running Speed and Cadence.

Streams:

* ``hr``: Heart Rate Measurement (0x2A37) notifications: heart rate, sensor
  contact, energy, RR intervals (1/1024 s). About one per second.
* ``rsc``: RSC Measurement (0x2A53), only when the sensor has it
  (cadence, speed); the collector turns cadence into steps.

Start: enable notifications (write the CCCD); nothing to stop but the link.
Any standard HR strap or watch fits, and it is the fallback of ``auto``.
"""

from __future__ import annotations

from collector.gatt_uuids import Characteristic
from collector.profiles.base import GattLink, Profile, StartedStream

HEART_RATE_MEASUREMENT = Characteristic.HEART_RATE_MEASUREMENT.uuid
RSC_MEASUREMENT = Characteristic.RSC_MEASUREMENT.uuid


async def start_heart_rate(link: GattLink, *, with_rsc: bool = True) -> list[StartedStream]:
    """Subscribe to Heart Rate Measurement (and RSC when present)."""
    await link.subscribe(HEART_RATE_MEASUREMENT)
    started = [StartedStream("hr", HEART_RATE_MEASUREMENT)]
    if with_rsc and link.has_characteristic(RSC_MEASUREMENT):
        await link.subscribe(RSC_MEASUREMENT)
        started.append(StartedStream("rsc", RSC_MEASUREMENT))
    return started


class HeartRateProfile(Profile):
    """Heart Rate Service (+ RSC where present)."""

    name = "hrs"

    async def start(self, link: GattLink) -> list[StartedStream]:
        return await start_heart_rate(link)
