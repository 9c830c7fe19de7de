"""What a device profile is: which GATT streams a sensor model gives and how
they are started and stopped.

A profile talks to the sensor only through :class:`GattLink` (the device
manager adapts a connected ``BleakClient`` to it), so profiles carry no
bleak, D-Bus or timing code and can be driven by any GATT peer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Notify = Callable[[bytes], None]
"""Called with each notification's value, on the event loop; must not block."""


class GattLink(Protocol):
    """The GATT operations a profile needs from one connected sensor."""

    def has_characteristic(self, uuid: str) -> bool: ...

    async def read(self, uuid: str) -> bytes: ...

    async def write(self, uuid: str, data: bytes) -> None:
        """Write with response."""
        ...

    async def subscribe(self, uuid: str, on_value: Notify | None = None) -> None:
        """Enable notifications/indications; ``None`` queues values as raw records
        for the collector's consumer (``RawNotification`` with this ``uuid``)."""
        ...

    async def unsubscribe(self, uuid: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StartedStream:
    """One stream a profile started on a connection.

    ``char_uuid`` is the characteristic its notifications arrive on; for PMD
    streams ``measurement_type``, ``fs_hz`` and ``factor`` (from the start
    response) say how to decode them.
    """

    name: str  # "hr", "rsc", "acc", "ppi", "steps", "motion"
    char_uuid: str
    measurement_type: int | None = None
    fs_hz: float | None = None
    factor: float | None = None
    settings: dict[str, int] = field(default_factory=dict)


class Profile(ABC):
    """A sensor model's streams. One instance per connection (it may keep state)."""

    name: str = ""

    @abstractmethod
    async def start(self, link: GattLink) -> list[StartedStream]:
        """Subscribe and start every stream; an optional stream that the sensor
        refuses is logged and left out, never fatal for the others."""

    async def stop(self, link: GattLink) -> None:  # noqa: B027 - streams without stop
        """Stop what ``start`` started, while the link is still up (shutdown).

        After a disconnect there is nothing to stop: the sensor ends its
        streams itself when the link drops.
        """
