"""How far the gateway's clock can be trusted, from the kernel's NTP state.

A Raspberry Pi has no battery-backed clock: until NTP syncs after boot, its
time can be far off. Every wire message says so (``clock`` field), so
processing can flag or correct samples taken before the first sync.

Reads ``adjtimex(2)`` without changing anything (modes = 0): the kernel's
``STA_UNSYNC`` status bit and ``maxerror`` (µs) are what chrony,
systemd-timesyncd and ntpd maintain.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from collector import wire

log = logging.getLogger(__name__)

_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (Linux); trailing padding is reserved.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


def system_clock_quality() -> wire.ClockQuality:
    """The kernel's view: synced by NTP, and its maximum error in ms."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return wire.ClockQuality(synced=False, source="none", max_error_ms=None)
    if state < 0:
        return wire.ClockQuality(synced=False, source="none", max_error_ms=None)
    synced = state != _TIME_ERROR and not (timex.status & _STA_UNSYNC)
    return wire.ClockQuality(
        synced=synced,
        source="ntp" if synced else "none",
        max_error_ms=round(timex.maxerror / 1000.0, 3) if synced else None,
    )


def simulated_clock_quality() -> wire.ClockQuality:
    return wire.ClockQuality(synced=True, source="sim", max_error_ms=None)
