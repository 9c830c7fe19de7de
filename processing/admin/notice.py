"""`wellsense notice`: a plain-language notice for participants, from the real configuration.

    wellsense notice --config /etc/wellsense/admin.toml \\
        --collector /var/lib/wellsense/bundles/gw-5d2e81/collector.toml \\
        [--processing /etc/wellsense/processing.toml] > notice.md

Every number in it (how often, how long, where) is read from the files the
services run with, so the notice cannot drift from what the system does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collector.config import CollectorConfig
from processing.admin.settings import AdminConfig
from wellsense_cli.conventions import exit_code_for


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:g} seconds"
    if seconds < 5400:
        return f"{seconds / 60:g} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:g} hours"
    return f"{seconds / 86400:g} days"


def _days(days: int) -> str:
    if days == 0:
        return "until the study team deletes it at the end of the study"
    if days % 365 == 0:
        years = days // 365
        return f"{years} year{'s' if years > 1 else ''} ({days} days)"
    return f"{days} days"


def render(admin: AdminConfig, collector: CollectorConfig, processing: dict[str, Any]) -> str:
    """The notice as Markdown."""
    features = processing.get("features", {})
    hrv_s = float(features.get("hrv_window_s", 300))
    features_on = bool(features.get("enabled", True))
    host = urlsplit(admin.broker.public_url).hostname
    ix = admin.influx
    outbox_mb = collector.outbox_max_bytes // (1024 * 1024)
    sensors = len(collector.sensors)
    computed = (
        f"From these, the study's server computes summaries: heart-rate variability in "
        f"windows of {_duration(hrv_s)}, and daily summaries of heart rate, activity, sleep "
        "and daily rhythm, compared with your own usual values."
        if features_on
        else "The study's server does not compute summaries from them."
    )
    minimise = collector.minimise
    kept = f"{minimise.keep_raw_days} day{'s' if minimise.keep_raw_days != 1 else ''}"
    sent = "Readings are"
    on_gateway = "On the gateway: only until they have been sent."
    stored = "Detailed readings and summaries"
    if minimise.enabled:
        # Data minimisation: say plainly that the detail never leaves the home.
        computed = (
            "**Only summaries leave your home.** The gateway itself turns the readings into "
            f"summaries of heart-rate variability, one for every {_duration(minimise.window_s)}, "
            "and sends only those, together with the sensor's battery and connection state "
            "and the gateway's own health. The detailed readings (heart rate, the time between "
            f"heartbeats, movement) stay on the gateway for {kept} and are then deleted."
        )
        sent = "The summaries and the sensor's state are"
        on_gateway = (
            f"On the gateway: the detailed readings for {kept}, then they are deleted; "
            "the summaries only until they have been sent."
        )
        stored = "Summaries"
    return f"""# What the {admin.study.name} collects, and what happens to it

You wear {"a sensor" if sensors == 1 else f"{sensors} sensors"} (a chest strap or band). A small
box in your home (the "gateway") receives its readings over Bluetooth and sends them to the
study. You do not need to do anything with the box.

## What is collected

- **Heart rate and the time between heartbeats**, every time the sensor reports them
  (usually about once a second), and whether the sensor touches the skin.
- **Movement**: steps and walking pace, if your sensor measures them.
- **The sensor's battery level** (every {_duration(collector.ble.battery_interval_s)}) and
  whether it is connected, so the study team can help if something stops working.
- **The gateway's own health** (every {_duration(collector.health_interval_s)}): whether it is
  running and how much it still has to send. This says nothing about you.

Not collected: your name, address, location, sound, pictures, messages or what you do
on your phone or computer. The gateway does not record other Bluetooth devices.

{computed}

## Your name is never used

Your data carries a code ("{collector.sensors[0].participant}"-like codes, chosen at random), not
your name. Only the study team keeps the list that links the code to you, separately
from this system.

## Where it goes

{sent} stored on the gateway first, then sent in small batches (at least every
{_duration(collector.batch.max_interval_s)}), encrypted, to the study's server
({host}). If the internet is down, the gateway keeps them (up to {outbox_mb} MB) and
sends them later.

## Who can see it

- The study's researchers, who can read the coded data but cannot change it.
- The study's data-processing service, which stores the readings and computes the summaries.
- Each gateway has its own password and can only send data for its own participants;
  it cannot see anyone else's data.

## How long it is kept

- {stored}: {_days(ix.retention_days)}.
- Hourly summaries: {_days(ix.downsampled_retention_days)}.
- {on_gateway}

## How to stop or withdraw

{admin.study.withdraw_instructions} Contact: {admin.study.team_contact}.

When you withdraw, the gateway stops collecting from your sensor straight away. If you
ask for your data to be deleted, it is deleted from the study's database, from the
server, and from the gateway, and the study team receives a receipt showing that
nothing is left.
"""


def _gateway_config(path: Path, load: Any) -> CollectorConfig:
    """Load a gateway's config on the server, where its CA and password paths do not exist.

    Those options say nothing the notice needs, so they are left out of a copy.
    """
    import re
    import tempfile

    skip = re.compile(r"^\s*(ca_file|password_file|client_cert_file|client_key_file)\s*=")
    text = "".join(ln for ln in path.read_text().splitlines(True) if not skip.match(ln))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        copy.write_text(text)
        config: CollectorConfig = load(copy)
    return config


def main(argv: list[str], prog: str = "wellsense notice") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Print a plain-language participant notice (Markdown), "
        "generated from the actual configuration.",
    )
    parser.add_argument("--config", type=Path, required=True, help="admin.toml")
    parser.add_argument(
        "--collector",
        type=Path,
        required=True,
        help="a gateway's collector.toml (e.g. from its enrolment bundle)",
    )
    parser.add_argument("--processing", type=Path, help="processing.toml")
    args = parser.parse_args(argv)
    from collector import config as collector_config
    from collector.tomlconfig import ConfigError, load_toml
    from processing.admin import settings

    try:
        admin = settings.load(args.config)
        gateway = _gateway_config(args.collector, collector_config.load)
        processing = load_toml(args.processing) if args.processing else {}
    except (ConfigError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print(render(admin, gateway, processing))
    return 0
