"""WellSense simulator: an emulated BlueZ with simulated wearables.

Lets the collector run bleak's real BlueZ backend with no Bluetooth
hardware: :func:`private_bus` starts a dbus-daemon, :class:`Emulator`
serves ``org.bluez`` on it, :class:`SimControl` drives a running emulator
from another process. Standard library and dbus-fast only.
"""

import logging

from wellsense_sim.bus import private_bus
from wellsense_sim.clock import SimClock, SimClockParams
from wellsense_sim.control import SimControl, SimControlError
from wellsense_sim.emulator import DeviceStats, Emulator
from wellsense_sim.physiology import Profile
from wellsense_sim.wearable import WearableConfig

# library code: silent unless the application configures logging
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DeviceStats",
    "Emulator",
    "Profile",
    "SimClock",
    "SimClockParams",
    "SimControl",
    "SimControlError",
    "WearableConfig",
    "private_bus",
]
