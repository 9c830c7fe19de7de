"""`wellsense doctor`: check a gateway and say what to fix, in plain words.

    wellsense doctor --config /etc/wellsense/collector.toml

Checks the configuration, BlueZ (version, and the adapter over D-Bus), the
broker (reachable, TLS certificate trusted, username and password
accepted), the clock (synchronised by NTP), free disk space and the outbox.
Every problem comes with advice. Exit code: 0 when nothing is wrong (warnings
allowed), 1 when something must be fixed, 2 for bad usage.
Secrets are never printed: the broker password is only used to log in.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.config import CollectorConfig
from wellsense_cli.conventions import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

OK, WARN, FAIL = "ok", "warn", "FAIL"
MIN_BLUEZ = (5, 55)  # bleak's BlueZ backend needs 5.55 or newer
MIN_FREE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: str
    detail: str
    advice: str = ""

    def text(self) -> str:
        line = f"[{self.status:>4}] {self.check}: {self.detail}"
        return f"{line}\n       -> {self.advice}" if self.advice else line


# --------------------------------------------------------------------------- BlueZ


def bluez_version(run: Callable[..., Any] = subprocess.run) -> tuple[int, int] | None:
    """BlueZ's version from ``bluetoothctl --version`` (BlueZ does not say it on D-Bus)."""
    exe = shutil.which("bluetoothctl")
    if exe is None:
        return None
    try:
        out = run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_bluez_version(version: tuple[int, int] | None) -> Finding:
    if version is None:
        return Finding(
            "BlueZ version",
            WARN,
            "unknown (bluetoothctl not found)",
            "install BlueZ: sudo apt-get install bluez",
        )
    text = f"{version[0]}.{version[1]}"
    if version < MIN_BLUEZ:
        return Finding(
            "BlueZ version",
            FAIL,
            f"{text} is too old",
            "update the system: sudo apt-get update && sudo apt-get full-upgrade",
        )
    return Finding("BlueZ version", OK, text)


async def _adapters() -> dict[str, dict[str, Any]]:
    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/",
                member="GetManagedObjects",
                interface="org.freedesktop.DBus.ObjectManager",
            )
        )
    finally:
        bus.disconnect()
    if reply is None or reply.message_type == MessageType.ERROR:
        raise RuntimeError(reply.error_name if reply else "no reply")
    return {
        path.rsplit("/", 1)[-1]: {k: v.value for k, v in ifaces["org.bluez.Adapter1"].items()}
        for path, ifaces in reply.body[0].items()
        if "org.bluez.Adapter1" in ifaces
    }


def check_adapter(adapter: str) -> Finding:
    try:
        adapters = asyncio.run(asyncio.wait_for(_adapters(), 10))
    except Exception as exc:  # no bus, no bluetoothd, no permission: all need words
        return Finding(
            "Bluetooth adapter",
            FAIL,
            f"cannot ask BlueZ ({type(exc).__name__})",
            "start Bluetooth: sudo systemctl enable --now bluetooth",
        )
    if adapter not in adapters:
        found = ", ".join(sorted(adapters)) or "none"
        return Finding(
            "Bluetooth adapter",
            FAIL,
            f"{adapter} not found (found: {found})",
            "check [ble] adapter in the config, or that the Pi's Bluetooth is "
            "enabled (no 'dtoverlay=disable-bt' in /boot/firmware/config.txt)",
        )
    if not adapters[adapter].get("Powered"):
        return Finding(
            "Bluetooth adapter",
            FAIL,
            f"{adapter} is switched off",
            "switch it on: bluetoothctl power on (and: sudo rfkill unblock bluetooth)",
        )
    return Finding("Bluetooth adapter", OK, f"{adapter} is present and on")


# --------------------------------------------------------------------------- broker


def check_broker(config: CollectorConfig, timeout_s: float = 10.0) -> Finding:
    """Log in to the broker as the collector would (TLS, username, password)."""
    from collector.mqtt import new_client

    s = config.mqtt
    where = f"{s.host}:{s.port}"
    done = threading.Event()
    result: dict[str, Any] = {}
    client = new_client(s, f"wellsense-doctor-{config.gateway}")

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        result["rc"] = rc
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(s.host, s.port, keepalive=10)
    except ssl.SSLCertVerificationError as exc:
        return Finding(
            "broker TLS",
            FAIL,
            f"{where}: certificate not trusted ({exc.verify_message})",
            "copy the study's ca.crt from the enrolment bundle to [mqtt] ca_file",
        )
    except ssl.SSLError as exc:
        return Finding(
            "broker TLS",
            FAIL,
            f"{where}: TLS failed ({exc.reason})",
            "check that [mqtt] url names the broker's TLS port (usually 8883)",
        )
    except OSError as exc:
        return Finding(
            "broker",
            FAIL,
            f"cannot reach {where} ({exc.strerror or exc})",
            "check the internet connection (ping the broker's host) and [mqtt] url",
        )
    client.loop_start()
    try:
        done.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    rc = result.get("rc")
    if rc is None:
        return Finding(
            "broker",
            FAIL,
            f"{where} did not answer the login in {timeout_s:.0f} s",
            "a firewall may block the port; ask the study team",
        )
    if rc.is_failure:
        return Finding(
            "broker login",
            FAIL,
            f"{where} refused {s.username!r}: {rc}",
            "the password file does not match the broker's: ask the study team "
            "for a fresh enrolment bundle",
        )
    return Finding("broker", OK, f"{where}: TLS verified, logged in as {s.username}")


# --------------------------------------------------------------------------- clock, disk, outbox


def check_clock() -> Finding:
    from collector.clock_quality import system_clock_quality

    quality = system_clock_quality()
    if not quality.synced:
        return Finding(
            "clock",
            WARN,
            "not synchronised (sample times may be off)",
            "turn on time sync: sudo timedatectl set-ntp true; check internet access",
        )
    return Finding("clock", OK, f"synchronised, max error {quality.max_error_ms} ms")


def check_disk(config: CollectorConfig) -> Finding:
    path = config.data_dir if config.data_dir.exists() else config.data_dir.parent
    free = shutil.disk_usage(path).free
    text = f"{free / 2**30:.1f} GiB free on {path}"
    if free < MIN_FREE_BYTES:
        return Finding("disk", FAIL, text, "free space on the SD card (or use a larger card)")
    if free < config.outbox_max_bytes:
        return Finding(
            "disk",
            WARN,
            f"{text}, less than the outbox may use",
            "lower [outbox] max_bytes or free space on the SD card",
        )
    return Finding("disk", OK, text)


def check_outbox(config: CollectorConfig, now_ns: int | None = None) -> Finding:
    """Read the outbox without locking it (the running collector holds the lock)."""
    path = config.outbox_path
    if not path.exists():
        return Finding("outbox", OK, "empty (not created yet)")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            depth, oldest = conn.execute("SELECT COUNT(*), MIN(created_ns) FROM outbox").fetchone()
    except sqlite3.DatabaseError as exc:
        return Finding(
            "outbox",
            FAIL,
            f"{path} is damaged ({exc})",
            f"stop the service, move {path} aside (keep it) and start the service",
        )
    if not depth:
        return Finding("outbox", OK, "empty: everything is confirmed stored on the server")
    age_s = ((now_ns or time.time_ns()) - oldest) / 1e9
    text = f"{depth} messages waiting, oldest {age_s / 60:.0f} min old"
    if age_s > 3600:
        return Finding(
            "outbox", WARN, text, "data is not getting through: see the broker check above"
        )
    return Finding("outbox", OK, text)


def check_withdrawals(config: CollectorConfig) -> Finding | None:
    from collector.commands import CommandError, WithdrawalStore

    try:
        flags = WithdrawalStore(config.data_dir).load()
    except CommandError as exc:
        return Finding("withdrawals", FAIL, str(exc), "ask the study team before changing it")
    if not flags:
        return None
    stopped = [s.key for s in config.sensors if s.participant in flags]
    return Finding(
        "withdrawals",
        OK,
        f"collection stopped for sensor(s) {', '.join(stopped)} (participant withdrawn)",
    )


# --------------------------------------------------------------------------- CLI


def run_checks(config: CollectorConfig, *, broker: bool = True) -> list[Finding]:
    findings = [check_bluez_version(bluez_version()), check_adapter(config.ble.adapter)]
    if broker:
        findings.append(check_broker(config))
    findings += [check_clock(), check_disk(config), check_outbox(config)]
    withdrawal = check_withdrawals(config)
    return findings + ([withdrawal] if withdrawal else [])


def main(argv: list[str], prog: str = "wellsense doctor") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check this gateway and say what "
        "to fix: Bluetooth, broker, clock, disk and outbox.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("/etc/wellsense/collector.toml"),
        help="collector TOML file (default /etc/wellsense/collector.toml)",
    )
    parser.add_argument("--no-broker", action="store_true", help="skip the broker login")
    args = parser.parse_args(argv)
    from collector.config import load
    from collector.tomlconfig import ConfigError

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(
            Finding(
                "configuration",
                FAIL,
                str(exc),
                "fix that option (the sample config explains each one)",
            ).text()
        )
        return EXIT_USAGE
    print(
        f"[{OK:>4}] configuration: {args.config} (gateway {config.gateway}, study {config.study})"
    )
    findings = run_checks(config, broker=not args.no_broker)
    for finding in findings:
        print(finding.text())
    failed = [f for f in findings if f.status == FAIL]
    print(f"{len(failed)} problem(s) to fix." if failed else "Nothing to fix.")
    return EXIT_FAILURE if failed else EXIT_OK
