"""Release sensors left connected by a collector that died.

BlueZ keeps a device connected when the process that connected it is killed
(SIGKILL, power loss of the process but not the adapter, an OOM kill). A
connected sensor stops advertising, so a restarted collector would scan for
it forever. At start the collector therefore asks BlueZ which devices are
connected and disconnects those that match a configured sensor; they start
advertising again and the normal scan-and-connect path takes over.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from collector.ble import SensorSpec

log = logging.getLogger(__name__)


async def release_stale_connections(sensors: Sequence[SensorSpec]) -> int:
    """Disconnect connected BlueZ devices that match ``sensors``; return how many."""
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    bus = MessageBus(bus_address=address) if address else MessageBus(bus_type=BusType.SYSTEM)
    try:
        await bus.connect()
    except OSError as exc:
        log.warning("cannot reach BlueZ to release stale connections: %s", exc)
        return 0
    released = 0
    try:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/",
                interface="org.freedesktop.DBus.ObjectManager",
                member="GetManagedObjects",
            )
        )
        if reply is None or reply.message_type != MessageType.METHOD_RETURN:
            return 0
        for path, interfaces in reply.body[0].items():
            device = interfaces.get("org.bluez.Device1")
            if not device or not device.get("Connected") or not device["Connected"].value:
                continue
            addr = device["Address"].value
            name = device["Alias"].value if "Alias" in device else None
            uuids = device["UUIDs"].value if "UUIDs" in device else []
            matched = [s.key for s in sensors if s.matches(addr, name, uuids)]
            if not matched:
                continue
            result = await bus.call(
                Message(
                    destination="org.bluez",
                    path=path,
                    interface="org.bluez.Device1",
                    member="Disconnect",
                )
            )
            if result is not None and result.message_type == MessageType.METHOD_RETURN:
                released += 1
                # The sensor's key, never its address (docs/privacy.md).
                log.warning("released sensor %s left connected by a previous run", matched[0])
    finally:
        bus.disconnect()
    return released
