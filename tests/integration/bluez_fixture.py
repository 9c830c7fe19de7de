"""A private system bus for bleak, shared by the BLE integration tests.

Import the fixture into a test module (``from tests.integration.bluez_fixture import
bluez_bus``). bleak reads ``DBUS_SYSTEM_BUS_ADDRESS`` when it first
connects, so the variable is set before any test uses bleak, and kept for
the whole session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from wellsense_sim import private_bus


@pytest.fixture(scope="session")
def bluez_bus() -> Iterator[str]:
    """Address of a private dbus-daemon that bleak uses as the system bus."""
    previous = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    with private_bus() as address:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = address
        try:
            yield address
        finally:
            if previous is None:
                os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
            else:
                os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = previous
