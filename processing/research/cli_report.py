"""``wellsense report -p PARTICIPANT --from --to --out report.html``: the participant report.

A self-contained HTML page (inline SVG and CSS, no scripts, no external
assets); see ``processing.research.report`` for its sections. The positional
``wellsense report PARTICIPANT`` of the previous release still works, with a
deprecation warning, until the next one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from processing.features.baseline import MIN_DAYS
from wellsense_cli.conventions import deprecated

from . import _cli
from .settings import connection_from_args


def main(argv: list[str], prog: str = "wellsense report") -> int:
    p = _cli.parser(prog, "Write one participant's self-contained HTML report.")
    p.add_argument(
        "--participant", "-p", type=_cli.pseudonym, metavar="ID", help="pseudonym (required)"
    )
    p.add_argument(  # deprecated spelling, kept for one release
        "old_participant", nargs="?", type=_cli.pseudonym, help=argparse.SUPPRESS
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="report.html")
    p.add_argument(
        "--baseline-min-days",
        type=int,
        default=MIN_DAYS,
        help=f"days of data before the baseline band shows (default {MIN_DAYS})",
    )
    _cli.add_range(p, required=True)
    _cli.add_common(p)
    args = p.parse_args(argv)
    if args.old_participant is not None:
        if args.participant is not None:
            p.error("give the participant once, with -p ID")
        deprecated(f"{prog} {args.old_participant}", f"{prog} -p {args.old_participant}")
        args.participant = args.old_participant
    if args.participant is None:
        p.error("the following arguments are required: --participant/-p")

    def body() -> int:
        from .report import build_report
        from .store import Store

        with Store(connection_from_args(args)) as store:
            if args.participant not in store.participants(args.start, args.stop):
                raise _cli.NoData(f"{args.participant} has no data in the range")
            html = build_report(
                store,
                args.participant,
                start=args.start,
                stop=args.stop,
                baseline_min_days=args.baseline_min_days,
            )
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(args.out)
        print(args.out)
        return _cli.EXIT_OK

    return _cli.run(prog, body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
