"""Polar H10 chest strap: Heart Rate Service + PMD accelerometer.

Streams:

* ``hr``: Heart Rate Measurement with RR intervals (see :mod:`.hrs`).
* ``acc``: PMD accelerometer, 3 axes. The H10 offers 25, 50, 100 and 200 Hz,
  +-2/4/8 g, 16 bits; this profile asks for 50 Hz, +-8 g, 16 bits (enough for
  ENMO/MAD/counts, whose band is 0.29-1.63 Hz, and for posture), taking the
  nearest offered value when a firmware offers other ones.

Start, as Polar's BLE SDK does: read the PMD control point (feature bits:
is ACC offered?), subscribe to its indications and to the PMD data
characteristic, GET_MEASUREMENT_SETTINGS for ACC, then
REQUEST_MEASUREMENT_START with the chosen rate/range/resolution. The start
response's factor scales delta-compressed frames
(:func:`collector.pmd.acc_scale_g`). Frames, raw or delta-compressed, are
decoded by :func:`collector.gatt.parse_pmd_frame` in the consumer.

Stop: STOP_MEASUREMENT on shutdown while connected; after a link loss the
strap stops streaming by itself. ``ALREADY_IN_STATE`` on start (a stream
left over from an earlier connection) is answered with stop + start.
"""

from __future__ import annotations

from collector.profiles.base import GattLink, Profile, StartedStream
from collector.profiles.hrs import start_heart_rate
from collector.profiles.pmd_client import PmdClient, start_acc

ACC_FS_HZ = 50
ACC_RANGE_G = 8
ACC_RESOLUTION_BITS = 16


class PolarH10Profile(Profile):
    """HRS + PMD ACC at 50 Hz, +-8 g, 16 bits."""

    name = "polar_h10"

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        self._pmd: PmdClient | None = None

    async def start(self, link: GattLink) -> list[StartedStream]:
        started = await start_heart_rate(link, with_rsc=False)
        pmd = self._pmd = PmdClient(link, timeout_s=self._timeout_s)
        if pmd.available():
            acc = await start_acc(
                pmd, fs_hz=ACC_FS_HZ, range_g=ACC_RANGE_G, resolution_bits=ACC_RESOLUTION_BITS
            )
            if acc is not None:
                started.append(acc)
        return started

    async def stop(self, link: GattLink) -> None:
        if self._pmd is not None:
            await self._pmd.stop_all()
