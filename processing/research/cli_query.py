"""``wellsense query``: one measurement for some participants and a range, on stdout.

Examples::

    wellsense query participants
    wellsense query hrv_window --participant p-7f3a9c --from 2025-11-20 --to 2025-11-26
    wellsense query daily --fields wear_min,hr_mean --format json | jq .
    wellsense query self_report --from 2025-11-01

``--format csv`` (default) writes a header and one row per point;
``--format json`` writes one JSON object per line (JSON Lines). Times are RFC 3339
UTC with nanoseconds. Use ``wellsense export`` for large ranges. With a progress
bar (stderr a terminal, or ``--progress``) the rows are read participant by
participant and week by week, so the bar has a rate and an ETA; the rows are
the same, grouped by participant.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd

from wellsense_cli.conventions import add_format, add_progress_args, progress, progress_wanted

from . import _cli, columns, omh
from .settings import connection_from_args

if TYPE_CHECKING:
    from .store import Store

MEASUREMENTS = ("participants", *columns.FIELDS, "self_report")
CHUNK_DAYS = 7  # one query per participant-week when a progress bar is shown


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
    add_progress_args(p)
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
            if progress_wanted(args):
                df = _read_in_chunks(store, args, fields)
            else:
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


def _read_in_chunks(store: Store, args: Any, fields: list[str] | None) -> pd.DataFrame:
    """The rows of one query, read participant-week by participant-week under a bar."""
    lo, hi = store.bounds(args.start, args.stop)
    people = args.participant or store.participants(lo, hi)
    span = store.extent([args.measurement], people, lo, hi) if people else None
    if span is None:
        return pd.DataFrame()
    plan = store.plan(people, max(lo, span[0]), min(hi, span[1]), CHUNK_DAYS)
    bar = progress(len(plan), desc="query", enabled=True, unit="chunk")
    frames = []
    for participant, a, b in plan:
        bar.set_postfix_str(participant, refresh=False)
        df = store.frame_ns(args.measurement, a, b, [participant], fields)
        if len(df):
            frames.append(df)
        bar.update()
    bar.close()
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
