"""Keep Bluetooth addresses out of logs and stored details.

A sensor's MAC address identifies the strap (and so, through the enrolment
records, a participant) outside the study's pseudonyms. The collector names
sensors by their pseudonymous key (``s1``) and device id instead; but
exception texts from bleak and BlueZ carry addresses (``Device with address
C0:FF:EE:00:00:01 was not found``, D-Bus paths ``/org/bluez/hci0/dev_C0_FF_EE_00_00_01``),
so every log line and every status detail passes through :func:`addresses`.
"""

from __future__ import annotations

import re
from typing import Final

#: Six hex octets separated by ':', '-' or '_' (BlueZ object paths use '_').
ADDRESS: Final = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[:_-]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f])"
)
PLACEHOLDER: Final = "<address>"


def addresses(text: str) -> str:
    """``text`` with every Bluetooth address replaced by ``<address>``."""
    return ADDRESS.sub(PLACEHOLDER, text)
