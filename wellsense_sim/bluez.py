"""The ``org.bluez`` D-Bus interfaces the emulator exports.

Only what bleak's BlueZ backend uses is implemented, with BlueZ's object
path layout (``/org/bluez/hci0/dev_XX_.../serviceXXXX/charYYYY``: bleak
derives handles and the device path from it) and BlueZ's error names.

The interfaces are thin: state and behaviour live in
:mod:`wellsense_sim.emulator`, reached through the ``owner`` objects passed
in. Note: ``ServiceInterface.name`` is the interface name, so no subclass
may assign ``self.name``; and methods without a reply carry no return
annotation, because dbus-fast reads ``-> None`` as a (bad) signature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from dbus_fast import DBusError, Variant
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
    DBusUInt32,
)
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

if TYPE_CHECKING:
    from wellsense_sim.emulator import AdapterState, CharacteristicState, DeviceState

BLUEZ = "org.bluez"
ADAPTER_IFACE = "org.bluez.Adapter1"
DEVICE_IFACE = "org.bluez.Device1"
SERVICE_IFACE = "org.bluez.GattService1"
CHAR_IFACE = "org.bluez.GattCharacteristic1"

DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusPathList = Annotated[list[str], DBusSignature("ao")]

_READ = PropertyAccess.READ


def bluez_error(kind: str, text: str) -> DBusError:
    """An ``org.bluez.Error.<kind>`` error, as BlueZ returns them."""
    return DBusError(f"org.bluez.Error.{kind}", text)


def uuid128(short: str) -> str:
    """16-bit SIG UUID ("180d") -> 128-bit lowercase UUID string (128-bit ones pass)."""
    if len(short) == 36:
        return short.lower()
    return f"0000{short.lower()}-0000-1000-8000-00805f9b34fb"


class Adapter1(ServiceInterface):
    """``org.bluez.Adapter1`` of ``hci0``: discovery sessions per D-Bus client."""

    def __init__(self, owner: AdapterState) -> None:
        super().__init__(ADAPTER_IFACE)
        self._owner = owner

    @dbus_method()
    def StartDiscovery(self):
        self._owner.start_discovery()

    @dbus_method()
    def StopDiscovery(self):
        self._owner.stop_discovery()

    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusDict):
        self._owner.set_discovery_filter(properties)

    @dbus_method()
    def GetDiscoveryFilters(self) -> DBusStrList:
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable",
                "Pattern"]

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath):
        self._owner.remove_device(device)

    @dbus_property(access=_READ)
    def Address(self) -> DBusStr:
        return self._owner.address

    @dbus_property(access=_READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=_READ)
    def Name(self) -> DBusStr:
        return "wellsense-sim"

    @dbus_property(access=_READ)
    def Alias(self) -> DBusStr:
        return "wellsense-sim"

    @dbus_property(access=_READ)
    def Class(self) -> DBusUInt32:
        return 0

    @dbus_property(access=_READ)
    def Powered(self) -> DBusBool:
        return True

    @dbus_property(access=_READ)
    def PowerState(self) -> DBusStr:
        return "on"

    @dbus_property(access=_READ)
    def Discoverable(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def Pairable(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def Discovering(self) -> DBusBool:
        return self._owner.discovering

    @dbus_property(access=_READ)
    def UUIDs(self) -> DBusStrList:
        return []

    @dbus_property(access=_READ)
    def Modalias(self) -> DBusStr:
        return "usb:v1D6Bp0246d0542"

    @dbus_property(access=_READ)
    def Roles(self) -> DBusStrList:
        return ["central", "peripheral"]


class Device1(ServiceInterface):
    """``org.bluez.Device1`` of one simulated wearable."""

    def __init__(self, owner: DeviceState) -> None:
        super().__init__(DEVICE_IFACE)
        self._owner = owner

    @dbus_method()
    async def Connect(self):
        await self._owner.connect()

    @dbus_method()
    def Disconnect(self):
        self._owner.disconnect("local host request")

    @dbus_method()
    def Pair(self):
        raise bluez_error("NotSupported", "Pairing is not supported by the emulator")

    @dbus_property(access=_READ)
    def Address(self) -> DBusStr:
        return self._owner.config.address

    @dbus_property(access=_READ)
    def AddressType(self) -> DBusStr:
        return "random"

    @dbus_property(access=_READ)
    def Name(self) -> DBusStr:
        return self._owner.config.name

    @dbus_property(access=_READ)
    def Alias(self) -> DBusStr:
        return self._owner.config.name

    @dbus_property(access=_READ)
    def Appearance(self) -> DBusUInt16:
        return 0x0341  # Heart Rate Sensor: Heart Rate Belt

    @dbus_property(access=_READ)
    def Paired(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def Bonded(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def Trusted(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def Blocked(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def LegacyPairing(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def RSSI(self) -> DBusInt16:
        return self._owner.rssi_dbm

    @dbus_property(access=_READ)
    def Connected(self) -> DBusBool:
        return self._owner.connected

    @dbus_property(access=_READ)
    def ServicesResolved(self) -> DBusBool:
        return self._owner.services_resolved

    @dbus_property(access=_READ)
    def UUIDs(self) -> DBusStrList:
        return self._owner.advertised_uuids()

    @dbus_property(access=_READ)
    def Adapter(self) -> DBusObjectPath:
        return self._owner.adapter_path


class GattService1(ServiceInterface):
    """``org.bluez.GattService1``: a primary service of a connected device."""

    def __init__(self, uuid: str, device_path: str) -> None:
        super().__init__(SERVICE_IFACE)
        self._uuid = uuid
        self._device_path = device_path

    @dbus_property(access=_READ)
    def UUID(self) -> DBusStr:
        return self._uuid

    @dbus_property(access=_READ)
    def Device(self) -> DBusObjectPath:
        return self._device_path

    @dbus_property(access=_READ)
    def Primary(self) -> DBusBool:
        return True

    @dbus_property(access=_READ)
    def Includes(self) -> DBusPathList:
        return []


class GattCharacteristic1(ServiceInterface):
    """``org.bluez.GattCharacteristic1``: notifications are ``Value`` changes."""

    def __init__(self, owner: CharacteristicState) -> None:
        super().__init__(CHAR_IFACE)
        self._owner = owner

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        return self._owner.read(_offset(options))

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict):
        self._owner.write(bytes(value))

    @dbus_method()
    def StartNotify(self):
        self._owner.start_notify()

    @dbus_method()
    def StopNotify(self):
        self._owner.stop_notify()

    @dbus_property(access=_READ)
    def UUID(self) -> DBusStr:
        return self._owner.uuid

    @dbus_property(access=_READ)
    def Service(self) -> DBusObjectPath:
        return self._owner.service_path

    @dbus_property(access=_READ)
    def Value(self) -> DBusBytes:
        return self._owner.value

    @dbus_property(access=_READ)
    def Notifying(self) -> DBusBool:
        return self._owner.notifying

    @dbus_property(access=_READ)
    def Flags(self) -> DBusStrList:
        return list(self._owner.flags)

    @dbus_property(access=_READ)
    def MTU(self) -> DBusUInt16:
        return 517  # a large ATT MTU: compressed time sends long RR batches


def _offset(options: dict[str, Any]) -> int:
    value = options.get("offset")
    return int(value.value) if isinstance(value, Variant) else 0
