"""Polar Verity Sense (optical, arm): PMD PPI + PMD accelerometer.

Streams:

* ``ppi``: pulse-to-pulse intervals. Each PMD PPI sample is
  ``(hr_bpm, pp_ms, pp_error_ms, flags)``; flags bit 0 = blocker (movement
  corrupted the interval), bit 1 = skin contact, bit 2 = skin contact
  supported. :func:`ppi_intervals` turns them into RR-like intervals with a
  quality verdict for the collector's hr/rr path. The sensor reports PPI
  only after about 25 s of settling and only while still.
* ``acc``: accelerometer; the Verity Sense offers 52 Hz, +-8 g, 16 bits.
* ``hr``: the Heart Rate Service too (the sensor's own 1-s HR, no RR).

Start: as :mod:`.polar_h10` for ACC; PPI's start request has no settings
(``02 03``). Stop: STOP_MEASUREMENT per stream on shutdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from collector.gatt import PmdFrame, PmdMeasurementType
from collector.profiles.base import GattLink, Profile, StartedStream
from collector.profiles.hrs import start_heart_rate
from collector.profiles.pmd_client import PmdClient, start_acc, start_ppi

ACC_FS_HZ = 52
ACC_RANGE_G = 8
ACC_RESOLUTION_BITS = 16

PPI_BLOCKER = 0x01
PPI_SKIN_CONTACT = 0x02
PPI_SKIN_CONTACT_SUPPORTED = 0x04
PPI_MAX_ERROR_MS = 30
"""Largest error estimate accepted as a usable interval: the Polar SDK's
documentation calls PPI reliable at rest; 30 ms is about the error of a
beat located on a 25 Hz-equivalent PPG sample grid plus margin."""


@dataclass(frozen=True, slots=True)
class PpiInterval:
    """One pulse-to-pulse interval and whether it is usable as an RR interval."""

    pp_ms: int
    error_ms: int
    hr_bpm: int
    contact: bool | None  # None: the sensor does not report skin contact
    blocker: bool
    usable: bool


def ppi_intervals(frame: PmdFrame, *, max_error_ms: int = PPI_MAX_ERROR_MS) -> list[PpiInterval]:
    """The intervals of a PPI frame, in order, each with its quality verdict.

    Usable: no blocker bit, skin contact (when reported), error estimate at
    most ``max_error_ms`` and a physiological interval (300-2000 ms, 30-200 bpm).
    """
    if frame.measurement_type != PmdMeasurementType.PPI:
        raise ValueError(f"measurement type {frame.measurement_type} is not PPI")
    out = []
    for sample in frame.samples:
        hr_bpm, pp_ms, error_ms, flags = (int(v) for v in sample)
        blocker = bool(flags & PPI_BLOCKER)
        contact = bool(flags & PPI_SKIN_CONTACT) if flags & PPI_SKIN_CONTACT_SUPPORTED else None
        usable = (
            not blocker
            and contact is not False
            and error_ms <= max_error_ms
            and 300 <= pp_ms <= 2000
        )
        out.append(PpiInterval(pp_ms, error_ms, hr_bpm, contact, blocker, usable))
    return out


def usable_rr_ms(intervals: Sequence[PpiInterval]) -> list[float]:
    """The usable intervals' lengths, for the RR path."""
    return [float(i.pp_ms) for i in intervals if i.usable]


class PolarVeritySenseProfile(Profile):
    """HRS + PMD PPI + PMD ACC at 52 Hz, +-8 g, 16 bits."""

    name = "polar_verity"

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        self._pmd: PmdClient | None = None

    async def start(self, link: GattLink) -> list[StartedStream]:
        started = await start_heart_rate(link, with_rsc=False)
        pmd = self._pmd = PmdClient(link, timeout_s=self._timeout_s)
        if pmd.available():
            for stream in (
                await start_ppi(pmd),
                await start_acc(
                    pmd, fs_hz=ACC_FS_HZ, range_g=ACC_RANGE_G, resolution_bits=ACC_RESOLUTION_BITS
                ),
            ):
                if stream is not None:
                    started.append(stream)
        return started

    async def stop(self, link: GattLink) -> None:
        if self._pmd is not None:
            await self._pmd.stop_all()
