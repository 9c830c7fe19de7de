"""Control of a running emulator from another process, over the same bus.

The emulator exports ``org.wellsense.Sim1`` at ``/org/wellsense/sim`` under
the bus name ``org.wellsense.Sim``; :class:`SimControl` is its client::

    async with SimControl(bus_address) as sim:
        await sim.disconnect("C0:FF:EE:00:00:01")
        await sim.out_of_range("C0:FF:EE:00:00:01", 5.0)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dbus_fast import DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusDouble, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

if TYPE_CHECKING:
    from wellsense_sim.emulator import Emulator

CONTROL_BUS_NAME = "org.wellsense.Sim"
CONTROL_PATH = "/org/wellsense/sim"
CONTROL_IFACE = "org.wellsense.Sim1"

_TRISTATE = {"on": True, "off": False, "auto": None}


def _tristate(value: str) -> bool | None:
    try:
        return _TRISTATE[value]
    except KeyError:
        raise DBusError("org.wellsense.Sim.Error.InvalidArguments",
                        f"expected one of {sorted(_TRISTATE)}, got {value!r}") from None


class SimControlInterface(ServiceInterface):
    """``org.wellsense.Sim1``: the emulator's control API on D-Bus."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(CONTROL_IFACE)
        self._emu = emulator

    def _call(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except (KeyError, ValueError) as exc:
            raise DBusError("org.wellsense.Sim.Error.InvalidArguments", str(exc)) from None

    @dbus_method()
    def AddWearable(self, config_json: DBusStr):
        from wellsense_sim.config import wearable_from_dict

        self._call(lambda: self._emu.add_wearable(wearable_from_dict(json.loads(config_json))))

    @dbus_method()
    def RemoveWearable(self, address: DBusStr):
        self._call(self._emu.remove_wearable, address)

    @dbus_method()
    def Disconnect(self, address: DBusStr):
        self._call(self._emu.disconnect, address)

    @dbus_method()
    def OutOfRange(self, address: DBusStr, seconds: DBusDouble):
        self._call(self._emu.out_of_range, address, seconds)

    @dbus_method()
    def SetContact(self, address: DBusStr, state: DBusStr):
        self._call(self._emu.set_contact, address, _tristate(state))

    @dbus_method()
    def SetWorn(self, address: DBusStr, state: DBusStr):
        self._call(self._emu.set_worn, address, _tristate(state))

    @dbus_method()
    def SetBattery(self, address: DBusStr, pct: DBusDouble):
        self._call(self._emu.set_battery, address, pct)

    @dbus_method()
    def FailConnects(self, address: DBusStr, count: DBusUInt32):
        self._call(self._emu.fail_connects, address, count)

    @dbus_method()
    def Stats(self) -> DBusStr:
        return json.dumps(self._emu.stats())

    @dbus_method()
    def Clock(self) -> DBusStr:
        p = self._emu.clock.params
        return json.dumps({"epoch_ns": p.epoch_ns, "time_scale": p.time_scale,
                           "anchor_wall_ns": p.anchor_wall_ns,
                           "now_ns": self._emu.clock.now_ns()})


class SimControlError(RuntimeError):
    """A control call failed; ``dbus_error`` names the D-Bus error."""

    def __init__(self, dbus_error: str, text: str) -> None:
        super().__init__(f"{dbus_error}: {text}")
        self.dbus_error = dbus_error


class SimControl:
    """Async client of a running emulator's control interface."""

    def __init__(self, bus_address: str) -> None:
        self.bus_address = bus_address
        self._bus: MessageBus | None = None

    async def __aenter__(self) -> SimControl:
        self._bus = await MessageBus(bus_address=self.bus_address).connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None

    async def _call(self, member: str, signature: str = "", *body: Any) -> Any:
        if self._bus is None:
            raise RuntimeError("use 'async with SimControl(...)'")
        reply = await self._bus.call(Message(
            destination=CONTROL_BUS_NAME, path=CONTROL_PATH, interface=CONTROL_IFACE,
            member=member, signature=signature, body=list(body)))
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise SimControlError(reply.error_name or "?", reply.body[0] if reply.body else "")
        return reply.body[0] if reply.body else None

    async def add_wearable(self, config: dict[str, Any]) -> None:
        """Add a wearable described like a TOML ``[[wearable]]`` table."""
        await self._call("AddWearable", "s", json.dumps(config))

    async def remove_wearable(self, address: str) -> None:
        """Remove a wearable."""
        await self._call("RemoveWearable", "s", address)

    async def disconnect(self, address: str) -> None:
        """Drop the wearable's connection now."""
        await self._call("Disconnect", "s", address)

    async def out_of_range(self, address: str, seconds: float) -> None:
        """Disconnect and vanish for ``seconds``."""
        await self._call("OutOfRange", "sd", address, float(seconds))

    async def set_contact(self, address: str, on: bool | None) -> None:
        """Force contact on/off, or ``None`` for the model."""
        await self._call("SetContact", "ss", address, _name(on))

    async def set_worn(self, address: str, worn: bool | None) -> None:
        """Strap on/off, or ``None`` for the model."""
        await self._call("SetWorn", "ss", address, _name(worn))

    async def set_battery(self, address: str, pct: float) -> None:
        """Set the battery level."""
        await self._call("SetBattery", "sd", address, float(pct))

    async def fail_connects(self, address: str, count: int) -> None:
        """Fail the next ``count`` connection attempts."""
        await self._call("FailConnects", "su", address, count)

    async def stats(self) -> list[dict[str, Any]]:
        """Counters per wearable."""
        return list(json.loads(await self._call("Stats")))

    async def clock(self) -> dict[str, Any]:
        """The emulator's clock parameters and its current simulated time."""
        return dict(json.loads(await self._call("Clock")))


def _name(state: bool | None) -> str:
    return "auto" if state is None else ("on" if state else "off")
