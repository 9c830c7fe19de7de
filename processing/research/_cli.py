"""What the researcher subcommands share: options, exit codes, error reporting.

Exit codes (every ``wellsense query|export|report|selfreport``):

====  ===========================================================
0     done
1     InfluxDB unreachable or refused the request, or a file error
2     usage or configuration error (the message names the option)
3     nothing matched (no participant or no rows in the range)
====  ===========================================================

Errors go to stderr as one line prefixed with the program name; tokens never
appear in them. Data goes to stdout or to the ``--out`` file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from collector.tomlconfig import ConfigError

from .flux import QueryError
from .settings import add_connection_args

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_DATA = 3

EPILOG = (
    "Dates are YYYY-MM-DD local days in the study time zone (--to is inclusive) or ISO 8601 "
    "date-times. Exit codes: 0 done, 1 InfluxDB or file error, 2 usage or configuration "
    "error, 3 nothing matched."
)


class NoData(Exception):
    """Nothing matched; the message says what."""


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def add_range(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument(
        "--from",
        dest="start",
        metavar="WHEN",
        required=required,
        help="start: YYYY-MM-DD (local) or ISO 8601",
    )
    p.add_argument(
        "--to",
        dest="stop",
        metavar="WHEN",
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
    except (ConfigError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QueryError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # e.g. `wellsense query ... | head`: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        print(f"{prog}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
