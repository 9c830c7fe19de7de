"""``wellsense selfreport``: import questionnaire/EMA answers, pair them, measure agreement.

Examples::

    wellsense selfreport import answers.csv            # participant,time,instrument,item,value
    wellsense selfreport import answers.csv --dry-run  # validate only
    wellsense selfreport pairs --from 2025-11-01 --to 2025-11-30 --out pairs.csv
    wellsense selfreport agreement --from 2025-11-01 --to 2025-11-30 --out agreement.csv

``import`` writes (it needs a token with write access to the bucket) and
nothing is written unless every line is valid. ``pairs`` is every answer next
to its day's passive features; ``agreement`` is the per-participant bias,
limits of agreement and within-person correlation per construct, and one
``*`` row per construct with the repeated-measures correlation and pooled
limits (``processing.research.agreement``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from wellsense_cli.conventions import add_format

from . import _cli
from .settings import Connection, connection_from_args


def main(argv: list[str], prog: str = "wellsense selfreport") -> int:
    p = _cli.parser(prog, "Self-reports: import from CSV, pair with sensing, agreement.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = sub.add_parser(
        "import", help="import a CSV into the self_report measurement", epilog=_cli.EPILOG
    )
    imp.add_argument("csv", type=Path, help="participant,time,instrument,item,value")
    imp.add_argument("--dry-run", action="store_true", help="validate and count, write nothing")
    _cli.add_common(imp)
    for name, text in (
        ("pairs", "answers with their day's passive features"),
        ("agreement", "bias, limits of agreement, within-person r"),
    ):
        sp = sub.add_parser(name, help=text, epilog=_cli.EPILOG)
        sp.add_argument(
            "--participant",
            "-p",
            action="append",
            type=_cli.pseudonym,
            metavar="ID",
            help="pseudonym (repeatable; default: everyone)",
        )
        sp.add_argument("--out", type=Path, metavar="FILE", help="default: stdout")
        add_format(sp, ("csv", "json"), "csv")
        _cli.add_range(sp, required=True)
        _cli.add_common(sp)
    args = p.parse_args(argv)

    def body() -> int:
        conn = connection_from_args(args)
        if args.action == "import":
            return _import(conn, args.csv, dry_run=args.dry_run)
        return _analyse(conn, args)

    return _cli.run(prog, body)


def _import(conn: Connection, path: Path, *, dry_run: bool) -> int:
    from processing.writer import InfluxWriter, WriteError

    from .selfreport import SelfReportError, read_csv_file, to_lines

    try:
        answers = read_csv_file(path, tz=conn.tz)
    except SelfReportError as exc:
        raise _cli.BadData(str(exc)) from None
    lines = to_lines(answers, conn.study)
    people = len({a.participant for a in answers})
    if not dry_run:
        writer = InfluxWriter(
            url=conn.url, org=conn.org, bucket=conn.bucket, token=conn.token, retry_max_s=5.0
        )
        try:
            for k in range(0, len(lines), 5000):
                writer.write(lines[k : k + 5000])
        except WriteError as exc:
            raise _WriteFailed(str(exc)) from None
        finally:
            writer.close()
    verb = "would write" if dry_run else "wrote"
    print(f"{len(answers)} answers, {people} participants: {verb} {len(lines)} points")
    return _cli.EXIT_OK


class _WriteFailed(OSError):
    pass


def _analyse(conn: Connection, a: argparse.Namespace) -> int:
    from .cli_query import write
    from .passive import passive_days
    from .selfreport import agreement_table, pair, with_scores
    from .store import Store

    with Store(conn) as store:
        answers = with_scores(
            store.frame("self_report", start=a.start, stop=a.stop, participants=a.participant)
        )
        if not len(answers):
            raise _cli.NoData("no self-reports in the range")
        frames = []
        for participant in sorted(set(answers["participant"])):
            passive = passive_days(store, participant, start=a.start, stop=a.stop)
            frames.append(pair(answers, passive, conn.tz))
    pairs = pd.concat(frames, ignore_index=True)
    table = pairs if a.action == "pairs" else agreement_table(pairs)
    if a.action == "pairs":
        table = table.assign(date=table["date"].astype(str))
    out = a.out
    if out is None:
        write(table, a.format)
    else:
        with Path(out).open("w", encoding="utf-8", newline="") as f:
            write(table, a.format, f)
        print(f"{out}\t{len(table)} rows")
    return _cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
