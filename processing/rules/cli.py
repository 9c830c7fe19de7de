"""``wellsense rules``: lint rule files, replay them over a history, or run them on InfluxDB.

    wellsense rules check [DIR]                       lint; exit 0 ok, 1 problems, 2 usage
    wellsense rules test [DIR] --history FILE [--format table|json|csv] [--tick 15m]
    wellsense rules run --config processing.toml [--rules DIR] [--interval 60s] [--once]

``DIR`` defaults to the shipped default rule set (``rules/`` of the checkout or
the wheel); a single file works too.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from processing.rules.errors import RuleSetError
from processing.rules.loader import check_dir, load_rules, parse_duration, rule_files
from wellsense_cli.conventions import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    add_format,
    write_json_lines,
)
from wellsense_resources import ResourceError, rules_dir

EXIT_PROBLEMS = EXIT_FAILURE  # rule files with errors
_DIR_HELP = "rule file or folder (default: the shipped default rule set)"


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Declarative alert rules for the study team: lint, replay, run.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{check,test,run}")
    check = sub.add_parser("check", help="lint rule files (exit 0 ok, 1 problems, 2 usage)")
    check.add_argument("dir", nargs="?", type=Path, metavar="DIR", help=_DIR_HELP)
    check.add_argument("--strict", action="store_true", help="treat warnings as problems")
    test = sub.add_parser("test", help="replay the rules over a recorded feature history")
    test.add_argument("dir", nargs="?", type=Path, metavar="DIR", help=_DIR_HELP)
    test.add_argument("--history", type=Path, required=True, metavar="FILE", help="CSV or JSON")
    add_format(test, ("table", "json", "csv"), "table")
    test.add_argument("--tick", default="15m", help="scheduler interval (default 15m)")
    test.add_argument("--study", default="history", help="study id in the output")
    run = sub.add_parser("run", help="evaluate the rules on InfluxDB data on a schedule")
    run.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="FILE",
        help="the processing service's TOML (study, MQTT, InfluxDB)",
    )
    run.add_argument("--rules", type=Path, metavar="DIR", help=_DIR_HELP)
    run.add_argument("--interval", default="60s", help="evaluation interval (default 60s)")
    run.add_argument("--lookback", default="35d", help="history read from InfluxDB (default 35d)")
    run.add_argument("--once", action="store_true", help="evaluate once and exit")
    run.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="least severe log level written to stdout (default info)",
    )
    return parser


def main(argv: list[str], prog: str = "wellsense rules") -> int:
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        _default_rules(args)
    except ResourceError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        return _check(args.dir, strict=args.strict, out=sys.stdout, err=sys.stderr)
    if args.command == "test":
        return _test(args, out=sys.stdout, err=sys.stderr)
    from processing.rules.runner import run_cli

    return run_cli(args, prog=prog)


def _default_rules(args: argparse.Namespace) -> None:
    """Fill in the shipped rule set where no DIR was given (found in the wheel or checkout)."""
    for name in ("dir", "rules"):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, rules_dir())


def _check(directory: Path, *, strict: bool, out: TextIO, err: TextIO) -> int:
    if not directory.exists():
        print(f"rules check: {directory}: no such file or directory", file=err)
        return EXIT_USAGE
    files = rule_files(directory)
    if not files:
        print(f"rules check: {directory}: no *.toml rule files", file=err)
        return EXIT_USAGE
    rules, problems = check_dir(directory)
    for problem in problems:
        print(problem.render(), file=out)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    print(
        f"{len(rules)} rules in {len(files)} files: {errors} errors, {warnings} warnings",
        file=out,
    )
    return EXIT_PROBLEMS if errors or (strict and warnings) else EXIT_OK


def _test(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from processing.rules.history import HistoryError, read_history, replay

    try:
        tick_s = parse_duration(args.tick)
    except ValueError as exc:
        print(f"rules test: --tick: {exc}", file=err)
        return EXIT_USAGE
    if tick_s <= 0:
        print("rules test: --tick must be positive", file=err)
        return EXIT_USAGE
    if not args.dir.exists():
        print(f"rules test: {args.dir}: no such file or directory", file=err)
        return EXIT_USAGE
    try:
        rules = load_rules(args.dir)
    except RuleSetError as exc:
        for problem in exc.errors:
            print(problem.render(), file=err)
        print(f"rules test: {len(exc.errors)} errors in the rules; nothing was run", file=err)
        return EXIT_PROBLEMS
    try:
        records = read_history(args.history)
    except HistoryError as exc:
        print(f"rules test: {exc}", file=err)
        return EXIT_USAGE
    events = replay(rules, records, study=args.study, tick_s=tick_s)
    write_events(events, args.format, out)
    return EXIT_OK


def write_events(events: Sequence[object], fmt: str, out: TextIO) -> None:
    """Print alert events as an aligned table, JSON Lines (one event per line) or CSV."""
    from processing.rules.engine import AlertEvent
    from processing.rules.history import iso

    rows = []
    for e in events:
        assert isinstance(e, AlertEvent)
        rows.append(
            {
                "time": iso(e.ts_ns),
                "rule": e.rule,
                "state": e.state,
                "severity": e.severity,
                "subject": e.subject.key,
                "value": "" if e.value is None else f"{e.value:.4g}",
                "since": iso(e.since_ns),
                "message": e.message,
            }
        )
    if fmt == "json":
        payload = []
        for e in events:
            assert isinstance(e, AlertEvent)
            payload.append({"time": iso(e.ts_ns), **e.to_json()})
        write_json_lines(payload, out)
        return
    columns = ["time", "rule", "state", "severity", "subject", "value", "since", "message"]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        out.write(buffer.getvalue())
        return
    shown = [c for c in columns if c != "message"]
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in shown}
    out.write("  ".join(c.upper().ljust(widths[c]) for c in shown).rstrip() + "\n")
    for r in rows:
        out.write("  ".join(r[c].ljust(widths[c]) for c in shown).rstrip() + "\n")
    fired = sum(1 for r in rows if r["state"] == "firing")
    out.write(f"{fired} fired, {len(rows) - fired} resolved\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m processing.rules.cli"))
