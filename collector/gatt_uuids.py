"""GATT UUIDs the collector uses, in 16-bit and full 128-bit form.

A 16-bit SIG-assigned UUID ``0xXXXX`` stands for the 128-bit UUID
``0000XXXX-0000-1000-8000-00805f9b34fb`` (Bluetooth Core Specification 5.4,
Vol 3, Part B, 2.5.1 "UUID"). BlueZ and bleak report UUIDs in that full,
lowercase form, so the ``.uuid`` property gives exactly that string.

Numbers are from Bluetooth SIG Assigned Numbers, section 3.4 (services) and
3.8 (characteristics). The Polar Measurement Data (PMD) UUIDs are vendor
128-bit UUIDs from Polar's public BLE SDK (``polarofficial/polar-ble-sdk``).
"""

from __future__ import annotations

import enum
import re

_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def full_uuid(short: int) -> str:
    """Expand a 16-bit SIG UUID to the lowercase 128-bit string BlueZ uses."""
    if not 0 <= short <= 0xFFFF:
        raise ValueError(f"not a 16-bit UUID: {short:#x}")
    return f"0000{short:04x}{_BASE_SUFFIX}"


def uuid128(uuid: str) -> str:
    """Normalise a 16-bit (``"180d"``, ``"0x180D"``) or 128-bit UUID to 128-bit lowercase."""
    u = uuid.strip().lower().removeprefix("0x")
    if re.fullmatch(r"[0-9a-f]{4}", u):
        return full_uuid(int(u, 16))
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", u):
        return u
    raise ValueError(f"not a Bluetooth UUID: {uuid!r}")


class _Uuid16(enum.IntEnum):
    @property
    def uuid(self) -> str:
        """The full 128-bit lowercase form."""
        return full_uuid(self.value)


class Service(_Uuid16):
    """SIG-assigned GATT service UUIDs."""

    DEVICE_INFORMATION = 0x180A
    HEART_RATE = 0x180D
    BATTERY = 0x180F
    RUNNING_SPEED_AND_CADENCE = 0x1814


class Characteristic(_Uuid16):
    """SIG-assigned GATT characteristic UUIDs."""

    BATTERY_LEVEL = 0x2A19
    MODEL_NUMBER_STRING = 0x2A24
    SERIAL_NUMBER_STRING = 0x2A25
    FIRMWARE_REVISION_STRING = 0x2A26
    HARDWARE_REVISION_STRING = 0x2A27
    SOFTWARE_REVISION_STRING = 0x2A28
    MANUFACTURER_NAME_STRING = 0x2A29
    HEART_RATE_MEASUREMENT = 0x2A37
    BODY_SENSOR_LOCATION = 0x2A38
    HEART_RATE_CONTROL_POINT = 0x2A39
    RSC_MEASUREMENT = 0x2A53
    RSC_FEATURE = 0x2A54


#: Device Information Service string characteristics -> short field name.
DEVICE_INFORMATION_STRINGS: dict[Characteristic, str] = {
    Characteristic.MANUFACTURER_NAME_STRING: "manufacturer",
    Characteristic.MODEL_NUMBER_STRING: "model",
    Characteristic.SERIAL_NUMBER_STRING: "serial",
    Characteristic.FIRMWARE_REVISION_STRING: "firmware",
    Characteristic.HARDWARE_REVISION_STRING: "hardware",
    Characteristic.SOFTWARE_REVISION_STRING: "software",
}

# Polar Measurement Data service: write commands to the control point,
# stream frames arrive as notifications on the data characteristic.
PMD_SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL_POINT_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"
