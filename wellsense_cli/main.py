"""Entry point of the `wellsense` console script.

Each subcommand lives in the package that does the work and is imported only
when it is run, so `wellsense collect --help` works on a gateway that has the
`gateway` extra only (no NumPy, SciPy or InfluxDB client).

A subcommand module exposes ``main(argv: list[str], prog: str) -> int``.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Subcommand(NamedTuple):
    module: str
    summary: str


SUBCOMMANDS: dict[str, Subcommand] = {
    # gateway
    "collect": Subcommand("collector.cli", "run the BLE gateway collector, or scan for sensors"),
    "doctor": Subcommand("collector.doctor", "check a gateway: BlueZ, broker, clock, disk, outbox"),
    # server
    "process": Subcommand("processing.cli", "run the processing service (MQTT -> InfluxDB)"),
    "features": Subcommand("processing.features.cli", "compute features offline from files"),
    "rules": Subcommand("processing.rules.cli", "lint, replay and run the alert rules"),
    "dashboard": Subcommand("processing.dashboard.cli", "staff dashboard; its users and roles"),
    # researchers
    "query": Subcommand(
        "processing.research.cli_query", "query raw data, features or self-reports"
    ),
    "export": Subcommand(
        "processing.research.cli_export", "export a cohort (CSV, Parquet, mHealth)"
    ),
    "report": Subcommand(
        "processing.research.cli_report", "a participant's self-contained HTML report"
    ),
    "selfreport": Subcommand(
        "processing.research.cli_selfreport", "import self-reports; agreement"
    ),
    # study administration
    "enroll": Subcommand("processing.admin.enroll", "enrol a participant and gateway"),
    "participant": Subcommand("processing.admin.participant", "list, withdraw or erase"),
    "notice": Subcommand("processing.admin.notice", "plain-language notice for participants"),
    "broker": Subcommand("processing.admin.broker", "render the Mosquitto config and ACLs"),
    "influx-setup": Subcommand("processing.admin.influxsetup", "buckets, tasks and tokens"),
    "influx-guard": Subcommand("processing.admin.influxguard", "InfluxDB write guard"),
    "deadletter": Subcommand(
        "processing.deadletter_cli", "list, show and replay processing's dead letters"
    ),
    "recompute": Subcommand(
        "processing.admin.recompute", "recompute stored features after a definition change"
    ),
    # local development
    "services": Subcommand("wellsense_cli.services", "start/stop local Mosquitto and InfluxDB"),
    "demo": Subcommand("wellsense_cli.demo", "run the end-to-end demo on simulated wearables"),
}

EXIT_USAGE = 2


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [
        "usage: wellsense [-h] [--version] <command> [<args>]",
        "",
        "Passive sensing for mental-health research: wearables -> MQTT -> features -> InfluxDB.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in SUBCOMMANDS.items()]
    lines += ["", "Run 'wellsense <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else EXIT_USAGE
    if args[0] == "--version":
        from importlib.metadata import version

        print(f"wellsense {version('wellsense')}")
        return 0
    name, rest = args[0], args[1:]
    command = SUBCOMMANDS.get(name)
    if command is None:
        print(f"wellsense: unknown command '{name}'\n\n{_usage()}", file=sys.stderr)
        return EXIT_USAGE
    try:
        module = importlib.import_module(command.module)
    except ImportError as exc:
        missing = exc.name or str(exc)
        print(
            f"wellsense {name}: needs the Python package '{missing}', which is not installed "
            "(install the matching extra: 'wellsense[gateway]' or 'wellsense[server]')",
            file=sys.stderr,
        )
        return 1
    result: int = module.main(rest, prog=f"wellsense {name}")
    return result


if __name__ == "__main__":
    sys.exit(main())
