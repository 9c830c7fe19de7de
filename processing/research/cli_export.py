"""``wellsense export``: a cohort's data to files, chunk by chunk, with a progress bar.

Examples::

    wellsense export --out export/ --format parquet --from 2025-01-01 --to 2025-06-30
    wellsense export --out omh/ --format omh -m hr -m rr -p p-7f3a9c --from 2025-11-20
    wellsense export --out omh/ --format omh-ndjson --from 2025-01-01   # one data point a line
    wellsense export --out csv/ -m hrv_window -m daily -m self_report

One file per measurement (see ``processing.research.export``); a summary
(file, rows) is printed on stdout, the progress bar (rate, ETA) on stderr when
it is a terminal (``--progress`` forces it, ``--quiet`` hides it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from wellsense_cli.conventions import add_progress_args, progress_wanted

from . import _cli, columns, exports_registry
from .export import DEFAULT_MEASUREMENTS, FORMATS, OMH_FORMATS, ExportSummary, export
from .progress import Progress
from .settings import connection_from_args


def main(argv: list[str], prog: str = "wellsense export") -> int:
    p = _cli.parser(
        prog,
        "Export participants x measurements x range to CSV, Parquet or "
        "Open mHealth JSON, streamed by participant and time chunk.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="csv",
        help="csv, parquet, omh (Open mHealth JSON array: hr and rr only) or omh-ndjson "
        "(the same data points, one per line, for large exports)",
    )
    p.add_argument(
        "--measurement",
        "-m",
        action="append",
        choices=(*columns.FIELDS, "self_report"),
        help=f"repeatable; default: {' '.join(DEFAULT_MEASUREMENTS)} (omh: hr rr)",
    )
    p.add_argument(
        "--participant",
        "-p",
        action="append",
        type=_cli.pseudonym,
        metavar="ID",
        help="pseudonym (repeatable; default: everyone with data)",
    )
    p.add_argument("--chunk-days", type=int, default=1, help="days per query (default 1)")
    add_progress_args(p)
    _cli.add_range(p)
    _cli.add_common(p)
    args = p.parse_args(argv)

    def body() -> int:
        from .store import Store

        if args.chunk_days < 1:
            raise ValueError("--chunk-days must be at least 1")
        measurements = args.measurement or (
            ["hr", "rr"] if args.format in OMH_FORMATS else list(DEFAULT_MEASUREMENTS)
        )
        connection = connection_from_args(args)
        with Store(connection) as store:
            people = args.participant or store.participants(args.start, args.stop)
            if not people:
                raise _cli.NoData("no participant has data in the range")
            progress = Progress(0, title="export", enabled=progress_wanted(args))
            summary = export(
                store,
                args.out,
                fmt=args.format,
                measurements=measurements,
                participants=people,
                start=args.start,
                stop=args.stop,
                chunk_days=args.chunk_days,
                progress=progress,
            )
        for m, path in summary.files.items():
            print(f"{path}\t{summary.rows.get(m, 0)} rows")
        _register(connection.study, args.format, summary)
        if sum(summary.rows.values()) == 0:
            raise _cli.NoData("no rows in the range")
        return _cli.EXIT_OK

    return _cli.run(prog, body)


def _register(study: str, fmt: str, summary: ExportSummary) -> None:
    """Record the export so that an erasure can list it (exports_registry)."""
    if not summary.participants:
        return
    path = exports_registry.default_path()
    try:
        exports_registry.record(
            path,
            study=study,
            fmt=fmt,
            files=summary.files.values(),
            participants=summary.participants,
        )
    except OSError as exc:
        print(
            f"warning: export not recorded in the export registry {path} ({exc.strerror}); "
            f"set ${exports_registry.ENV} to a writable file, or note the export by hand",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
