"""What the researcher subcommands share: options, exit codes, error reporting.

Exit codes (every ``wellsense query|export|report|selfreport``) are the CLI's
own (:mod:`wellsense_cli.conventions`):

====  ===========================================================
0     done
1     InfluxDB unreachable or failed the request, or a file error
2     usage or configuration error (the message names the option)
3     nothing matched (no participant or no rows in the range)
4     InfluxDB refused the token (HTTP 401/403)
5     a line of an input file is unusable (selfreport import)
====  ===========================================================

Options are checked before any connection is made: a bad date or pseudonym
is a usage error (2) whatever else is missing. Errors go to stderr as one
line prefixed with the program name; tokens never appear in them. Data goes
to stdout or to the ``--out`` file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from zoneinfo import ZoneInfo

from collector.tomlconfig import ConfigError
from wellsense_cli.conventions import (
    EXIT_BAD_DATA,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NO_DATA,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
)

from . import flux
from .flux import QueryError
from .settings import add_connection_args

__all__ = ["EXIT_BAD_DATA", "EXIT_FAILURE", "EXIT_NO_DATA", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE"]

EPILOG = (
    "Dates are YYYY-MM-DD local days in the study time zone (--to is inclusive) or ISO 8601 "
    "date-times. Exit codes: 0 done, 1 InfluxDB or file error, 2 usage or configuration "
    "error, 3 nothing matched, 4 InfluxDB refused the token, 5 bad input line."
)


class NoData(Exception):
    """Nothing matched; the message says what."""


class BadData(Exception):
    """An input file has an unusable line; the message names the file and line."""


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def when(text: str) -> str:
    """argparse type of a range bound: checked now, interpreted later in the study's zone."""
    try:
        flux.parse_bound(text, ZoneInfo("UTC"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def pseudonym(text: str) -> str:
    """argparse type of a participant pseudonym (the wire contract's pattern)."""
    try:
        return flux.check_ids([text], "participant")[0]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_range(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument(
        "--from",
        dest="start",
        metavar="WHEN",
        type=when,
        required=required,
        help="start: YYYY-MM-DD (local) or ISO 8601",
    )
    p.add_argument(
        "--to",
        dest="stop",
        metavar="WHEN",
        type=when,
        required=required,
        help="end: YYYY-MM-DD (inclusive) or ISO 8601 (exclusive)",
    )


def add_common(p: argparse.ArgumentParser) -> None:
    add_connection_args(p)


def run(prog: str, body: Callable[[], int]) -> int:
    """Call ``body`` and map failures to exit codes with a one-line message."""
    try:
        return body()
    except NoData as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_NO_DATA
    except BadData as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    except (ConfigError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QueryError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_REFUSED if exc.status in (401, 403) else EXIT_FAILURE
    except BrokenPipeError:  # e.g. `wellsense query ... | head`: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        print(f"{prog}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
