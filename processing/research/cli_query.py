"""``wellsense query``: one measurement for some participants and a range, on stdout.

Examples::

    wellsense query participants
    wellsense query hrv_window --participant p-7f3a9c --from 2025-11-20 --to 2025-11-26
    wellsense query daily --fields wear_min,hr_mean --format json | jq .
    wellsense query self_report --from 2025-11-01

``--format csv`` (default) writes a header and one row per point;
``--format json`` writes one JSON object per line (JSON Lines). Times are RFC 3339
UTC with nanoseconds. Use ``wellsense export`` for large ranges.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TextIO

import pandas as pd

from wellsense_cli.conventions import add_format

from . import _cli, columns, omh
from .settings import connection_from_args

MEASUREMENTS = ("participants", *columns.FIELDS, "self_report")


def write(df: pd.DataFrame, fmt: str, out: TextIO | None = None) -> None:
    stream = out if out is not None else sys.stdout
    df = df.copy()
    if "time" in df:
        df["time"] = omh.iso(df["time"].astype("int64").to_numpy())
    if fmt == "csv":
        df.to_csv(stream, index=False, lineterminator="\n")
        return
    for rec in df.to_dict("records"):
        clean = {k: _plain(v) for k, v in rec.items()}
        stream.write(json.dumps(clean, separators=(",", ":")) + "\n")


def _plain(v: object) -> object:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        return v.item()  # numpy scalar
    return v


def main(argv: list[str], prog: str = "wellsense query") -> int:
    p = _cli.parser(prog, "Query one measurement (or the participant list) as CSV or JSON.")
    p.add_argument("measurement", choices=MEASUREMENTS, help="what to read")
    p.add_argument(
        "--participant",
        "-p",
        action="append",
        type=_cli.pseudonym,
        metavar="ID",
        help="pseudonym (repeatable; default: everyone)",
    )
    p.add_argument("--fields", help="comma-separated fields (default: all)")
    add_format(p, ("csv", "json"), "csv")
    p.add_argument("--limit", type=int, default=0, help="at most this many rows (0: all)")
    _cli.add_range(p)
    _cli.add_common(p)
    args = p.parse_args(argv)

    def body() -> int:
        from .store import Store

        with Store(connection_from_args(args)) as store:
            if args.measurement == "participants":
                people = store.participants(args.start, args.stop)
                if not people:
                    raise _cli.NoData("no participant has data in the range")
                write(pd.DataFrame({"participant": people}), args.format)
                return _cli.EXIT_OK
            fields = [f.strip() for f in args.fields.split(",")] if args.fields else None
            df = store.frame(
                args.measurement,
                start=args.start,
                stop=args.stop,
                participants=args.participant,
                fields=fields,
            )
            if not len(df):
                raise _cli.NoData(f"no {args.measurement} rows in the range")
            write(df.head(args.limit) if args.limit > 0 else df, args.format)
            return _cli.EXIT_OK

    return _cli.run(prog, body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
