"""A private dbus-daemon that stands in for the system bus.

The emulator owns ``org.bluez`` on this bus, and bleak finds it through
``DBUS_SYSTEM_BUS_ADDRESS``. Nothing here needs root or touches the real
system bus.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

DBUS_DAEMON = "dbus-daemon"
#: Bus names the emulator may own: BlueZ itself and its control interface.
OWNED_NAMES = ("org.bluez", "org.wellsense.Sim")

_CONFIG_TEMPLATE = """<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <!-- a private bus for tests and demos: only this user can connect -->
  <type>wellsense-private</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
{owns}
  </policy>
  <limit name="max_replies_per_connection">4096</limit>
</busconfig>
"""


class PrivateBusError(RuntimeError):
    """The private dbus-daemon could not be started."""


def write_config(directory: Path) -> Path:
    """Write the bus configuration into ``directory`` and return its path."""
    owns = "\n".join(f'    <allow own="{name}"/>' for name in OWNED_NAMES)
    path = directory / "bus.conf"
    path.write_text(_CONFIG_TEMPLATE.format(socket=directory / "bus.sock", owns=owns))
    return path


@contextlib.contextmanager
def private_bus(
    directory: str | os.PathLike[str] | None = None,
    *,
    daemon: str = DBUS_DAEMON,
    start_timeout_s: float = 10.0,
) -> Iterator[str]:
    """Run a private dbus-daemon and yield its address (``unix:path=...``).

    Args:
        directory: where the config and socket go; a temporary directory
            (removed afterwards) when ``None``.
        daemon: the dbus-daemon executable.
        start_timeout_s: how long to wait for the daemon to print its address.

    The daemon is stopped by its pid (SIGTERM, then SIGKILL) on exit.
    """
    exe = shutil.which(daemon)
    if exe is None:
        raise PrivateBusError(f"{daemon!r} not found: install the dbus-daemon package")
    with contextlib.ExitStack() as stack:
        if directory is None:
            # short path: unix socket paths are limited to ~107 bytes
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="wsbus-"))
        workdir = Path(directory)
        config = write_config(workdir)
        proc = subprocess.Popen(
            [exe, "--config-file", str(config), "--nofork", "--nopidfile", "--print-address"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            # its complaints (e.g. "Failed to set fd limit") go to a file, not the test output
            stderr=stack.enter_context((workdir / "daemon.log").open("w")),
            text=True,
        )
        stack.callback(_stop, proc)
        address = _read_address(proc, start_timeout_s)
        logger.info("private bus started", extra={"pid": proc.pid, "address": address})
        yield address


def _read_address(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise PrivateBusError(f"dbus-daemon printed no address within {timeout_s} s")
    line = proc.stdout.readline().strip()
    if not line:
        raise PrivateBusError(f"dbus-daemon exited with {proc.wait()}")
    return line


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    logger.info("private bus stopped", extra={"pid": proc.pid})
