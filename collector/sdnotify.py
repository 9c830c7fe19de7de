"""systemd's notify protocol (READY=1, WATCHDOG=1) with the standard library only.

Active only when systemd started us with ``Type=notify`` and set
``$NOTIFY_SOCKET``; elsewhere every call is a cheap no-op. The watchdog
interval comes from ``$WATCHDOG_USEC`` (set by ``WatchdogSec=``): ping at
half of it, and only from a loop that is doing its work, so a hung collector
is restarted by systemd.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send ``message`` to systemd; False if not running under systemd's notify."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval_s() -> float | None:
    """How often to send WATCHDOG=1 (half the configured timeout), or None if off."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not os.environ.get("NOTIFY_SOCKET"):
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process
    try:
        return max(0.5, int(usec) / 1e6 / 2)
    except ValueError:
        return None
