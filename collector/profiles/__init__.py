"""Device profiles: which streams each supported sensor model gives, and how
they are started. One module per model; see docs/devices.md.

``profile`` in a ``[[sensor]]`` table picks one by name; ``auto`` picks
after connecting, from the services the sensor's GATT table has and its
name (:func:`detect`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from collector.pmd import PMD_SERVICE_UUID
from collector.profiles.base import GattLink, Profile, StartedStream
from collector.profiles.hrs import HeartRateProfile
from collector.profiles.pinetime import MOTION_SERVICE_UUID, PineTimeProfile
from collector.profiles.polar_h10 import PolarH10Profile
from collector.profiles.polar_verity import PolarVeritySenseProfile

__all__ = [
    "AUTO",
    "PROFILES",
    "GattLink",
    "Profile",
    "StartedStream",
    "detect",
    "make_profile",
]

AUTO = "auto"

PROFILES: dict[str, Callable[[], Profile]] = {
    HeartRateProfile.name: HeartRateProfile,
    PolarH10Profile.name: PolarH10Profile,
    PolarVeritySenseProfile.name: PolarVeritySenseProfile,
    PineTimeProfile.name: PineTimeProfile,
}


def detect(service_uuids: Iterable[str], name: str | None) -> str:
    """The profile for a sensor with these GATT services and this name.

    PMD + a name starting "Polar Sense" (the Verity Sense advertises as
    "Polar Sense <id>") or "Polar OH1" -> ``polar_verity``; other PMD
    sensors -> ``polar_h10`` (H9/H10 family); InfiniTime's Motion service
    -> ``pinetime``; anything else -> ``hrs``.
    """
    services = {u.lower() for u in service_uuids}
    label = (name or "").lower()
    if PMD_SERVICE_UUID in services:
        if label.startswith(("polar sense", "polar oh1")):
            return PolarVeritySenseProfile.name
        return PolarH10Profile.name
    if MOTION_SERVICE_UUID in services:
        return PineTimeProfile.name
    return HeartRateProfile.name


def make_profile(name: str) -> Profile:
    """A fresh profile instance by name (not ``auto``)."""
    try:
        return PROFILES[name]()
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; one of {', '.join([AUTO, *sorted(PROFILES)])}"
        ) from None
