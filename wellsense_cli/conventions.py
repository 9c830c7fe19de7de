"""What every `wellsense` command shares: exit codes, ``--format``, progress, deprecations.

Exit codes (the README's command table lists which ones each command uses):

====  =====================================================================
0     done
1     runtime failure: a service, the network, the disk or a file failed
2     usage or configuration error (argparse's own code; the message names
      the option or the config key)
3     nothing matched: no participant or no rows in the range
4     refused: the server rejected our credentials (token, org or bucket)
5     bad input data: a line of an input file cannot be read (its number
      is in the message)
130   interrupted (Ctrl-C)
====  =====================================================================

Why these: 2 is what argparse already exits with, so a bad option and a bad
config key read the same to a script; "refused" (4) is apart from a runtime
failure (1) because retrying cannot help, which is why the long-running
services' systemd units list 2 and 4 in ``RestartPreventExitStatus=``
instead of restart-looping on them.

``--format``: ``table`` (aligned, for people; the default where it exists),
``csv`` (a header and one row per record), ``json`` (one JSON object per
line: JSON Lines, whatever the command). Progress bars go to stderr only,
and only when stderr is a terminal unless ``--progress`` is given;
``--quiet`` turns them off.

This module imports nothing outside the standard library at import time, so
it loads on a gateway with the ``gateway`` extra only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_DATA = 3
EXIT_REFUSED = 4
EXIT_BAD_DATA = 5
EXIT_INTERRUPTED = 130

EXIT_MEANINGS: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_FAILURE: "runtime failure (service, network, disk or file)",
    EXIT_USAGE: "usage or configuration error",
    EXIT_NO_DATA: "nothing matched",
    EXIT_REFUSED: "credentials refused (token, org or bucket)",
    EXIT_BAD_DATA: "bad input data (line number in the message)",
    EXIT_INTERRUPTED: "interrupted",
}

FORMAT_HELP = {
    "table": "table: aligned columns for people",
    "csv": "csv: a header, then one row per record",
    "json": "json: one JSON object per line (JSON Lines)",
}


def exit_epilog(*codes: int) -> str:
    """'Exit codes: 0 done, 2 usage ...' for a parser's epilog."""
    return "Exit codes: " + ", ".join(f"{c} {EXIT_MEANINGS[c]}" for c in codes) + "."


def add_format(parser: argparse.ArgumentParser | Any, choices: Iterable[str], default: str) -> None:
    """The ``--format`` option, its help naming what each value means."""
    names = tuple(choices)
    described = "; ".join(FORMAT_HELP.get(n, n) for n in names)
    parser.add_argument(
        "--format", choices=names, default=default, help=f"{described} (default: {default})"
    )


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, NumPy scalars -> Python, recursively."""
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # NumPy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_lines(rows: Iterable[Mapping[str, Any]], out: TextIO) -> None:
    """One compact JSON object per line."""
    for row in rows:
        out.write(json.dumps(json_safe(row), separators=(",", ":")) + "\n")


def exit_code_for(exc: BaseException) -> int:
    """The code for an error a command reports and stops on.

    HTTP 401/403 (an exception with ``status``) -> refused; ``ValueError``
    (every ``ConfigError`` is one) -> usage or configuration; ``LookupError``
    (an unknown participant) -> nothing matched; anything else -> failure.
    """
    if getattr(exc, "status", None) in (401, 403):
        return EXIT_REFUSED
    if isinstance(exc, ValueError):
        return EXIT_USAGE
    if isinstance(exc, LookupError):
        return EXIT_NO_DATA
    return EXIT_FAILURE


# --- deprecated spellings ------------------------------------------------------------------


def deprecated(old: str, new: str, *, stream: TextIO | None = None) -> None:
    """Warn on stderr that ``old`` still works for this release but ``new`` is its name."""
    print(
        f"wellsense: '{old}' is deprecated and will be removed in the next release; use '{new}'",
        file=stream if stream is not None else sys.stderr,
    )


# --- progress --------------------------------------------------------------------------------


def add_progress_args(parser: argparse.ArgumentParser | Any, *, quiet_short: bool = True) -> None:
    """``--progress`` (force the bar on, e.g. in a log) and ``--quiet`` (no bar)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument(
        "--progress",
        action="store_true",
        help="show progress (rate, ETA) on stderr even when it is not a terminal",
    )
    flags = ("--quiet", "-q") if quiet_short else ("--quiet",)
    g.add_argument(*flags, action="store_true", help="no progress on stderr")


def progress_wanted(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """On when asked (``--progress``), off when ``--quiet``, else when stderr is a terminal."""
    if getattr(args, "quiet", False):
        return False
    if getattr(args, "progress", False):
        return True
    s = stream if stream is not None else sys.stderr
    return bool(getattr(s, "isatty", lambda: False)())


class Bar(Protocol):
    def update(self, n: float = 1) -> Any: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...
    def close(self) -> Any: ...


def progress(
    total: float | None,
    *,
    desc: str,
    enabled: bool,
    unit: str = "it",
    stream: TextIO | None = None,
    bar_format: str | None = None,
) -> Bar:
    """A tqdm bar on stderr (rate and ETA when ``total`` is known), or a silent one.

    Labels carry pseudonyms and dates only, never addresses or tokens.
    """
    from tqdm import tqdm

    bar: Bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream if stream is not None else sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=0.5,
        leave=True,
        bar_format=bar_format,
    )
    return bar


@contextmanager
def countdown(seconds: float, *, desc: str, enabled: bool) -> Iterator[None]:
    """A bar that fills over ``seconds`` while the body waits (e.g. a BLE scan)."""
    if not enabled or seconds <= 0:
        yield
        return
    bar = progress(
        seconds,
        desc=desc,
        enabled=True,
        bar_format="{desc}: {bar} {remaining} left",
    )
    done = threading.Event()

    def tick() -> None:
        start = last = time.monotonic()
        while not done.wait(0.1):
            now = time.monotonic()
            if now - start >= seconds:
                break
            bar.update(now - last)
            last = now

    thread = threading.Thread(target=tick, name="wellsense-countdown", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()
