"""`wellsense features`: recompute features offline from exported files, with the service's code.

Exit codes: 0 ok, 1 runtime error, 2 usage error or unusable input.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from collector import wire
from collector.beats import BeatClock

from .hrv import DEFAULT_WINDOW_S, HRV_KEYS, hrv_windows
from .io import InputError, read_activity, read_rr
from .pipeline import activity_report

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
MIN_PLAUSIBLE_MEDIAN_MS = 150.0  # below this the file is almost surely in seconds


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # raise instead of sys.exit inside a library
        raise _UsageError(f"{self.prog}: error: {message}\n{self.format_usage().strip()}")


def _build_parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Compute WellSense features offline from files (same code as the service).",
    )
    sub = p.add_subparsers(dest="kind", metavar="{hrv,activity}")
    sub.required = True
    h = sub.add_parser(
        "hrv",
        help="HRV per window from RR intervals",
        description="HRV per window. FILE: RR intervals, one per line; a CSV with "
        "'time,rr_ms' columns (time in seconds of the beat ending each interval); or a "
        "notification CSV with 'received_ns,rr_ms' columns (one row per Heart Rate "
        "Measurement: arrival in ns since the epoch, its RR values separated by spaces), "
        "whose beats are placed with the gateway's beat clock. Plain or gzip.",
    )
    h.add_argument("file", type=Path, metavar="FILE")
    h.add_argument(
        "--window", type=float, default=DEFAULT_WINDOW_S, help="window length in s (default 300)"
    )
    h.add_argument(
        "--rr-unit", choices=("ms", "s"), default="ms", help="unit of the RR values (default ms)"
    )
    h.add_argument(
        "--skip-first",
        action="store_true",
        help="ignore the first value (PhysioNet nsr2db/chf2db exports store an offset there)",
    )
    h.add_argument(
        "--format", choices=("csv", "json"), default="json", help="output format (default json)"
    )
    a = sub.add_parser(
        "activity",
        help="daily activity, sleep and circadian features from minute counts",
        description="Daily and whole-file features. FILE: CSV with 'timestamp,activity' "
        "columns (local time, one row per minute), optional 'steps'. Plain or gzip.",
    )
    a.add_argument("file", type=Path, metavar="FILE")
    a.add_argument(
        "--format", choices=("csv", "json"), default="json", help="output format (default json)"
    )
    return p


def _clean(value: Any) -> Any:
    """JSON-safe value: NaN/inf -> None, NumPy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv_cell(value: Any) -> str:
    value = _clean(value)
    if value is None:
        return ""
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_table(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if not rows:
        return ""
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(rows[0].keys())
    for row in rows:
        writer.writerow(_csv_cell(v) for v in row.values())
    return buf.getvalue()


def notification_beats(
    notifications: Sequence[tuple[int, Sequence[float]]],
) -> tuple[list[int], list[float]]:
    """(beat times in ns, RR in ms) of notifications of one connection, in order.

    The gateway's path exactly: one :class:`~collector.beats.BeatClock`, its
    ``beat_ns``/``rr_break`` put on an ``hr`` sample, and the beats placed from
    the sample with :func:`collector.wire.hr_beat_times_ns`, the function
    processing stores ``rr`` points with.
    """
    clock = BeatClock()
    beat_ns: list[int] = []
    rr_ms: list[float] = []
    for received_ns, rr in notifications:
        times = clock.add(received_ns, rr)
        if not times:
            continue
        sample = wire.HrSample(
            ts_ns=received_ns,
            hr_bpm=0,
            contact=None,
            energy_kj=None,
            rr_ms=tuple(rr),
            beat_ns=times[-1],
            rr_break=clock.last_break,
        )
        beat_ns += wire.hr_beat_times_ns(sample)
        rr_ms += sample.rr_ms
    return beat_ns, rr_ms


def _run_hrv(args: argparse.Namespace) -> str:
    if not args.window > 0:
        raise _UsageError(f"--window must be > 0 s, got {args.window}")
    rec = read_rr(args.file, unit=args.rr_unit, skip_first=args.skip_first)
    finite = rec.rr_ms[np.isfinite(rec.rr_ms)]
    if finite.size == 0:
        raise InputError(f"{args.file}: no RR values found")
    if np.median(finite) < MIN_PLAUSIBLE_MEDIAN_MS:
        raise InputError(
            f"{args.file}: median RR is {np.median(finite):.3g} ms; the file looks like "
            "seconds - pass --rr-unit s"
        )
    if rec.skipped_lines:
        print(
            f"note: skipped {rec.skipped_lines} non-numeric line(s) in {args.file}", file=sys.stderr
        )
    rr_ms = rec.rr_ms
    shift_s = 0.0
    if rec.notifications is not None:
        beat_ns, rr = notification_beats(rec.notifications)
        if not beat_ns:
            raise InputError(f"{args.file}: no RR values found")
        # Epoch-aligned windows; times relative to the first window start, as the
        # service does (float64 epoch seconds would lose microseconds).
        window_ns = round(args.window * 1e9)
        origin_ns = beat_ns[0] - beat_ns[0] % window_ns
        t = (np.asarray(beat_ns, dtype=np.int64) - origin_ns).astype(np.float64) / 1e9
        rr_ms, shift_s = np.asarray(rr), origin_ns / 1e9
        origin: float | None = 0.0
    else:
        t = rec.t_s if rec.t_s is not None else np.nancumsum(rec.rr_ms) / 1000.0
        origin = None if rec.t_s is not None else 0.0
    win = hrv_windows(t, rr_ms, window_s=args.window, origin_s=origin)
    rows = []
    for row in win.rows():
        row["start_s"] += shift_s
        row["end_s"] += shift_s
        ordered = {k: row[k] for k in ("start_s", "end_s", "n_beats", "kept_fraction", "coverage")}
        ordered.update({k: row[k] for k in HRV_KEYS})
        ordered["quality"] = row["quality"]
        rows.append(ordered)
    if args.format == "json":
        return json.dumps(_clean({"windows": rows}), indent=1) + "\n"
    return _csv_table(rows)


def _run_activity(args: argparse.Namespace) -> str:
    rec = read_activity(args.file)
    if rec.activity.size == 0:
        raise InputError(f"{args.file}: no rows")
    report = activity_report(rec.minute, rec.activity, rec.steps)
    if args.format == "json":
        return json.dumps(_clean(report), indent=1) + "\n"
    return _csv_table(report["days"]) + "\n" + _csv_table([report["summary"]])


def main(argv: list[str], prog: str = "wellsense features") -> int:
    """Entry point used by the `wellsense` dispatcher."""
    parser = _build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        out = _run_hrv(args) if args.kind == "hrv" else _run_activity(args)
    except (_UsageError, InputError) as exc:
        print(f"{prog} {args.kind}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # report, never a traceback for the user
        print(f"{prog} {args.kind}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        sys.stdout.write(out)
        sys.stdout.flush()
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_OK
