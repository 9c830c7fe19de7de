"""`wellsense collect`: run the gateway collector, or scan for sensors.

    wellsense collect --config /etc/wellsense/collector.toml
    wellsense collect scan [--timeout 10] [--format table|json|csv] [--progress|--quiet]

Exit codes (wellsense_cli.conventions): 0 success, 1 runtime failure, 2 bad
usage or configuration, 3 (scan) no sensor found. ``--format json`` writes one
JSON object per sensor per line (JSON Lines).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sqlite3
import sys
from pathlib import Path

from wellsense_cli.conventions import (
    EXIT_FAILURE,
    EXIT_NO_DATA,
    EXIT_OK,
    EXIT_USAGE,
    add_format,
    add_progress_args,
    countdown,
    progress_wanted,
    write_json_lines,
)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Collect heart rate, RR intervals and activity from BLE wearables and "
        "publish them to the study's broker, storing everything on disk first.",
        epilog="Run '%(prog)s scan' first on a new gateway to find the participant's sensor.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="collector TOML file (sample: deploy/gateway/collector.sample.toml)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="least severe log level written to stdout (default info)",
    )
    sub = parser.add_subparsers(dest="action", metavar="{scan}")
    scan = sub.add_parser(
        "scan",
        help="list nearby BLE sensors (name, address, RSSI, services)",
        description="List nearby BLE sensors, strongest signal first.",
    )
    scan.add_argument("--timeout", type=float, default=10.0, help="seconds to scan (default 10)")
    scan.add_argument("--adapter", default=None, help="BlueZ adapter, e.g. hci0")
    scan.add_argument(
        "--all",
        action="store_true",
        help="show every device, not only those offering heart rate or RSC",
    )
    add_format(scan, ("table", "json", "csv"), "table")
    add_progress_args(scan)
    return parser


def main(argv: list[str], prog: str = "wellsense collect") -> int:
    args = _parser(prog).parse_args(argv)
    if args.action == "scan":
        return _scan(args)
    if args.config is None:
        print(
            f"{prog}: --config FILE is required to run the collector (or use '{prog} scan')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from collector import logs
    from collector.config import load
    from collector.tomlconfig import ConfigError

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(args.log_level)
    from collector.minimise import MinimiseUnavailableError
    from collector.outbox import OutboxError
    from collector.rawstore import RawStoreError
    from collector.service import PublisherFailedError, serve

    try:
        asyncio.run(serve(config))
    except OutboxError as exc:
        print(f"{prog}: outbox problem: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except PublisherFailedError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except sqlite3.Error as exc:  # a full disk while journaling or committing, say
        print(f"{prog}: outbox problem: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (RawStoreError, MinimiseUnavailableError) as exc:
        print(f"{prog}: data minimisation: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _scan(args: argparse.Namespace) -> int:
    from collector import ble
    from collector.gatt_uuids import Service

    wanted = None if args.all else [Service.HEART_RATE.uuid, Service.RUNNING_SPEED_AND_CADENCE.uuid]
    try:
        with countdown(args.timeout, desc="scanning", enabled=progress_wanted(args)):
            results = asyncio.run(
                ble.scan(args.timeout, adapter=args.adapter, service_uuids=wanted)
            )
    except Exception as exc:  # bleak raises many kinds; the user needs the words
        print(
            f"wellsense collect scan: cannot scan: {exc}. Is Bluetooth on "
            "('bluetoothctl show') and is this user in the 'bluetooth' group?",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    rows = [
        {
            "name": r.name or "",
            "address": r.address,
            "rssi_dbm": r.rssi_dbm,
            "services": " ".join(_short(u) for u in r.service_uuids),
        }
        for r in results
    ]
    if args.format == "json":
        write_json_lines(rows, sys.stdout)
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=["name", "address", "rssi_dbm", "services"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(ble.format_scan_results(results))
    if not rows:  # the table says so itself
        if args.format != "table":
            print("wellsense collect scan: no sensor found", file=sys.stderr)
        return EXIT_NO_DATA
    return EXIT_OK


def _short(uuid: str) -> str:
    """0000180d-0000-1000-8000-00805f9b34fb -> 180d (SIG UUIDs), else as is."""
    if uuid.startswith("0000") and uuid.endswith("-0000-1000-8000-00805f9b34fb"):
        return uuid[4:8]
    return uuid
