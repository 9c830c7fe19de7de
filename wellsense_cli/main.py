"""Entry point of the `wellsense` console script.

Each subcommand lives in the package that does the work and is imported only
when it is run, so `wellsense collect --help` works on a gateway that has the
`gateway` extra only (no NumPy, SciPy or InfluxDB client).

A subcommand module exposes ``main(argv: list[str], prog: str) -> int``.
A group (``participant``, ``influx``) may route some of its actions to other
modules (:data:`GROUPED`); spellings of the previous release still work for
one more, with a warning on stderr (:data:`DEPRECATED`). Exit codes, formats
and progress follow :mod:`wellsense_cli.conventions`.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple

from wellsense_cli.conventions import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, deprecated


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
    "participant": Subcommand(
        "processing.admin.participant", "enroll, list, withdraw or erase participants"
    ),
    "notice": Subcommand("processing.admin.notice", "plain-language notice for participants"),
    "broker": Subcommand("processing.admin.broker", "render the Mosquitto config and ACLs"),
    "influx": Subcommand("", "InfluxDB: setup (buckets, tasks, tokens), guard (write guard)"),
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

# `wellsense GROUP ACTION` served by a module of its own.
GROUPED: dict[tuple[str, str], Subcommand] = {
    ("participant", "enroll"): Subcommand(
        "processing.admin.enroll", "enrol a participant and gateway"
    ),
    ("influx", "setup"): Subcommand("processing.admin.influxsetup", "buckets, tasks and tokens"),
    ("influx", "guard"): Subcommand(
        "processing.admin.influxguard", "the write guard in front of InfluxDB"
    ),
}

# Spellings of the previous release -> their names now; removed in the next release.
DEPRECATED: dict[str, tuple[str, str]] = {
    "enroll": ("participant", "enroll"),
    "influx-setup": ("influx", "setup"),
    "influx-guard": ("influx", "guard"),
}


def commands() -> list[str]:
    """Every command a user can type (``"rules"``, ``"influx setup"``), aliases left out."""
    out = [name for name, cmd in SUBCOMMANDS.items() if cmd.module]
    return out + [f"{group} {action}" for group, action in GROUPED]


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
    lines += [
        "",
        "Run 'wellsense <command> --help' for a command's options.",
        "Exit codes: 0 done, 1 runtime failure, 2 usage or configuration error, 3 nothing "
        "matched,",
        "4 credentials refused, 5 bad input data. --format json is JSON Lines everywhere.",
    ]
    return "\n".join(lines)


def _group_usage(group: str) -> str:
    actions = [(a, cmd) for (g, a), cmd in GROUPED.items() if g == group]
    width = max(len(a) for a, _ in actions)
    lines = [f"usage: wellsense {group} <action> [<args>]", "", "actions:"]
    lines += [f"  {a:<{width}}  {cmd.summary}" for a, cmd in actions]
    lines += ["", f"Run 'wellsense {group} <action> --help' for its options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return EXIT_OK if args else EXIT_USAGE
    if args[0] == "--version":
        from importlib.metadata import version

        print(f"wellsense {version('wellsense')}")
        return 0
    name, rest = args[0], args[1:]
    if name in DEPRECATED:
        new = DEPRECATED[name]
        deprecated(f"wellsense {name}", f"wellsense {' '.join(new)}")
        name, rest = new[0], [new[1], *rest]
    command = SUBCOMMANDS.get(name)
    if command is None:
        print(f"wellsense: unknown command '{name}'\n\n{_usage()}", file=sys.stderr)
        return EXIT_USAGE
    if rest and (name, rest[0]) in GROUPED:
        command = GROUPED[(name, rest[0])]
        name, rest = f"{name} {rest[0]}", rest[1:]
    elif not command.module:  # a group with no module of its own
        if rest and rest[0] in ("-h", "--help"):
            print(_group_usage(name))
            return EXIT_OK
        problem = f"unknown action '{rest[0]}'" if rest else "an action is required"
        print(f"wellsense {name}: {problem}\n\n{_group_usage(name)}", file=sys.stderr)
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
        return EXIT_FAILURE
    result: int = module.main(rest, prog=f"wellsense {name}")
    return result


if __name__ == "__main__":
    sys.exit(main())
