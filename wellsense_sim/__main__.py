"""Command line: run the emulator, or control a running one.

    python -m wellsense_sim run --participants 3 --time-scale 720
    python -m wellsense_sim run --config sim.toml --env-file /tmp/sim.env
    python -m wellsense_sim run --time-scale 60 --truth-log truth.jsonl \
        --wearable C0:FF:EE:00:00:01,replay=nsr001_rr_secs.txt.gz,replay_offset_s=3600
    python -m wellsense_sim ctl --bus ADDRESS disconnect C0:FF:EE:00:00:01

``run`` starts a private dbus-daemon unless ``--bus`` is given, prints
``KEY=value`` lines (the bus address as ``DBUS_SYSTEM_BUS_ADDRESS`` and the
sim clock as ``WELLSENSE_SIM_*``) and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wellsense_sim.bus import private_bus
from wellsense_sim.clock import SimClock, SimClockParams
from wellsense_sim.config import ConfigError, load_toml, participant_wearables, wearable_from_dict
from wellsense_sim.control import SimControl, SimControlError
from wellsense_sim.emulator import DEFAULT_MAX_NOTIFY_HZ, Emulator
from wellsense_sim.wearable import WearableConfig


def _epoch_ns(text: str | None) -> int | None:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _wearable_option(text: str) -> WearableConfig:
    # ADDRESS[,key=value...] e.g. C0:FF:EE:00:00:09,name=Strap 9,seed=9,rsc=false
    address, *pairs = text.split(",")
    table: dict[str, Any] = {"address": address}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            with contextlib.suppress(ValueError):
                value = float(raw) if "." in raw else int(raw)
        table[key.strip()] = value
    return wearable_from_dict(table, f"--wearable {text}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wellsense_sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve an emulated BlueZ until SIGTERM")
    run.add_argument("--bus", help="D-Bus address to use (default: start a private bus)")
    run.add_argument("--config", type=Path, help="TOML with [emulator] and [[wearable]]")
    run.add_argument("--participants", type=int, default=0,
                     help="add N generated chest straps C0:FF:EE:00:00:01..")
    run.add_argument("--wearable", action="append", default=[], type=_wearable_option,
                     metavar="ADDR[,key=value...]", help="add one wearable (repeatable)")
    run.add_argument("--time-scale", type=float, help="simulated seconds per real second")
    run.add_argument("--epoch", help="simulated start: ns since 1970 or ISO 8601 (default now)")
    run.add_argument("--max-notify-hz", type=float,
                     help="RSC/battery updates per real second and device (heart rate follows "
                          "the strap's own cadence)")
    run.add_argument("--truth-log", type=Path,
                     help="write each heart rate notification's ground truth here (JSON lines)")
    run.add_argument("--advert-interval", type=float, help="seconds between advertisements")
    run.add_argument("--env-file", type=Path, help="also write the KEY=value lines here")
    run.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    ctl = sub.add_parser("ctl", help="control a running emulator")
    ctl.add_argument("--bus", required=True, help="the emulator's bus address")
    ctl.add_argument("action", choices=["disconnect", "out-of-range", "contact", "worn",
                                        "battery", "fail-connects", "remove", "stats",
                                        "clock"])
    ctl.add_argument("address", nargs="?", help="wearable address")
    ctl.add_argument("value", nargs="?", help="seconds | on/off/auto | percent | count")
    return p


async def _serve(args: argparse.Namespace, bus_address: str) -> None:
    options: dict[str, Any] = {}
    wearables: list[WearableConfig] = []
    if args.config:
        options, wearables = load_toml(args.config)
    wearables += participant_wearables(args.participants) + args.wearable
    scale = args.time_scale or float(options.get("time_scale", 1.0))
    epoch = _epoch_ns(args.epoch or (str(options["epoch"]) if "epoch" in options else None))
    params = SimClockParams.starting_now(epoch, scale)
    emulator = Emulator(
        bus_address, clock=SimClock(params),
        max_notify_hz=args.max_notify_hz or float(options.get("max_notify_hz",
                                                              DEFAULT_MAX_NOTIFY_HZ)),
        advert_interval_s=args.advert_interval or float(options.get("advert_interval_s", 0.5)),
        truth_log=args.truth_log or options.get("truth_log"))
    for config in wearables:
        try:
            emulator.add_wearable(config)
        except ValueError as exc:
            raise ConfigError(f"wearable {config.address}: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with emulator:
        lines = {"DBUS_SYSTEM_BUS_ADDRESS": bus_address, **params.env()}
        text = "".join(f"{k}={v}\n" for k, v in lines.items())
        if args.env_file:
            args.env_file.write_text(text)
        sys.stdout.write(text)
        sys.stdout.write(f"# {len(wearables)} wearable(s): "
                         f"{' '.join(w.address for w in wearables)}\n")
        sys.stdout.flush()
        await stop.wait()


async def _control(args: argparse.Namespace) -> int:
    async with SimControl(args.bus) as sim:
        a, v = args.address, args.value
        if args.action == "stats":
            print(json.dumps(await sim.stats(), indent=2))
        elif args.action == "clock":
            print(json.dumps(await sim.clock(), indent=2))
        elif a is None:
            print(f"{args.action} needs an address", file=sys.stderr)
            return 2
        elif args.action == "disconnect":
            await sim.disconnect(a)
        elif args.action == "remove":
            await sim.remove_wearable(a)
        elif args.action == "out-of-range":
            await sim.out_of_range(a, float(v or 10))
        elif args.action in ("contact", "worn"):
            state = {"on": True, "off": False, "auto": None}[v or "auto"]
            await (sim.set_contact if args.action == "contact" else sim.set_worn)(a, state)
        elif args.action == "battery":
            await sim.set_battery(a, float(v or 100))
        elif args.action == "fail-connects":
            await sim.fail_connects(a, int(v or 1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m wellsense_sim``."""
    args = _parser().parse_args(argv)
    if args.command == "ctl":
        try:
            return asyncio.run(_control(args))
        except SimControlError as exc:
            print(exc, file=sys.stderr)
            return 1
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        if args.bus:
            asyncio.run(_serve(args, args.bus))
        else:
            with private_bus() as address:
                asyncio.run(_serve(args, address))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
