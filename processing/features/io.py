"""Readers for the offline-recompute file formats (RR lists and minute activity CSVs).

Kept apart from the feature code so features stay pure; standard library and
NumPy only. Readers skip blank lines and tolerate CRLF and gzip; anything else
unexpected raises :class:`InputError` with a message naming the file and line.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._types import FloatArray


class InputError(ValueError):
    """The input file cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class RRFile:
    rr_ms: FloatArray
    t_s: FloatArray | None  # beat times when the file had a time column
    skipped_lines: int  # non-numeric lines ignored (e.g. a stray '@')
    #: (received_ns, RR values) per notification, for a ``received_ns,rr_ms`` file
    notifications: tuple[tuple[int, tuple[float, ...]], ...] | None = None


@dataclass(frozen=True, slots=True)
class ActivityFile:
    minute: np.ndarray  # datetime64[m], local wall-clock time as written
    activity: FloatArray
    steps: FloatArray | None


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


def read_rr(path: Path, *, unit: str = "ms", skip_first: bool = False) -> RRFile:
    """Read RR intervals: one number per line, a CSV with ``time,rr_ms`` columns,
    or a notification CSV with ``received_ns,rr_ms`` columns.

    ``unit`` is ``"ms"`` or ``"s"`` (values are converted to ms);
    ``skip_first`` drops the first numeric line (PhysioNet nsr2db/chf2db
    exports put the offset of the first beat there). A CSV's ``time`` column
    is seconds (any epoch) of the beat that ends each interval. A notification
    CSV has one row per Heart Rate Measurement as a gateway received it:
    ``received_ns`` (integer ns since the Unix epoch) and ``rr_ms`` (its RR
    values in ms separated by spaces, empty for none); ``rr_ms`` of the result
    is every value in order and ``notifications`` the rows (the caller places
    the beats with the gateway's beat clock).
    """
    if unit not in ("ms", "s"):
        raise InputError(f"unknown unit {unit!r}: use 'ms' or 's'")
    text = _read_text(path)
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if lines and "," in lines[0] and _number(lines[0].split(",")[0]) is None:
        if "received_ns" in [h.strip().lower() for h in lines[0].split(",")]:
            return _read_notifications(path, lines, unit)
        return _read_rr_csv(path, lines, unit)
    values: list[float] = []
    skipped = 0
    for ln in lines:
        v = _number(ln)
        if v is None:
            skipped += 1
        else:
            values.append(v)
    if skip_first and values:
        values = values[1:]
    rr = np.asarray(values, dtype=np.float64) * (1000.0 if unit == "s" else 1.0)
    return RRFile(rr_ms=rr, t_s=None, skipped_lines=skipped)


def _read_rr_csv(path: Path, lines: list[str], unit: str) -> RRFile:
    header = [h.strip().lower() for h in lines[0].split(",")]
    rr_col = next((c for c in ("rr_ms", "rr", "rr_s") if c in header), None)
    time_col = next((c for c in ("time", "t_s", "time_s", "timestamp") if c in header), None)
    if rr_col is None:
        raise InputError(f"{path}: CSV header {lines[0]!r} has no 'rr_ms' column")
    scale = 1.0 if rr_col == "rr_ms" or unit == "ms" else 1000.0
    if rr_col == "rr_s":
        scale = 1000.0
    i_rr = header.index(rr_col)
    i_t = header.index(time_col) if time_col else None
    rr: list[float] = []
    ts: list[float] = []
    skipped = 0
    for n, row in enumerate(csv.reader(io.StringIO("\n".join(lines[1:]))), start=2):
        if len(row) <= max(i_rr, i_t or 0):
            raise InputError(f"{path}:{n}: expected {len(header)} columns, got {len(row)}")
        v = _number(row[i_rr])
        t = _number(row[i_t]) if i_t is not None else 0.0
        if v is None or t is None:
            skipped += 1
            continue
        rr.append(v * scale)
        ts.append(t)
    t_arr = np.asarray(ts, dtype=np.float64) if i_t is not None else None
    return RRFile(rr_ms=np.asarray(rr, dtype=np.float64), t_s=t_arr, skipped_lines=skipped)


def _read_notifications(path: Path, lines: list[str], unit: str) -> RRFile:
    header = [h.strip().lower() for h in lines[0].split(",")]
    if header != ["received_ns", "rr_ms"]:
        raise InputError(f"{path}: a notification CSV has the columns 'received_ns,rr_ms'")
    scale = 1000.0 if unit == "s" else 1.0
    rows: list[tuple[int, tuple[float, ...]]] = []
    for n, line in enumerate(lines[1:], start=2):
        received, _, values = line.partition(",")
        try:
            received_ns = int(received.strip())
            rr = tuple(float(v) * scale for v in values.split())
        except ValueError:
            raise InputError(
                f"{path}:{n}: expected 'received_ns,rr_ms' (an integer, then numbers "
                "separated by spaces)"
            ) from None
        rows.append((received_ns, rr))
    rr_all = np.asarray([v for _, rr in rows for v in rr], dtype=np.float64)
    return RRFile(rr_ms=rr_all, t_s=None, skipped_lines=0, notifications=tuple(rows))


def read_activity(path: Path) -> ActivityFile:
    """Read a minute activity CSV with ``timestamp`` and ``activity`` columns.

    Timestamps are local wall-clock ``YYYY-MM-DD HH:MM[:SS]`` (the Depresjon
    format); an optional ``steps`` column is kept. Rows are sorted by time and
    duplicate minutes keep their first value.
    """
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise InputError(f"{path}: empty file") from None
    for col in ("timestamp", "activity"):
        if col not in header:
            raise InputError(f"{path}: CSV header {header} has no {col!r} column")
    i_ts, i_act = header.index("timestamp"), header.index("activity")
    i_steps = header.index("steps") if "steps" in header else None
    stamps: list[str] = []
    acts: list[float] = []
    steps: list[float] = []
    for n, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(i_ts, i_act, i_steps or 0):
            raise InputError(f"{path}:{n}: expected {len(header)} columns, got {len(row)}")
        value = _number(row[i_act])
        if value is None or value < 0:
            raise InputError(f"{path}:{n}: activity {row[i_act]!r} is not a count >= 0")
        stamps.append(row[i_ts].strip().replace(" ", "T"))
        acts.append(value)
        if i_steps is not None:
            s = _number(row[i_steps])
            steps.append(np.nan if s is None else s)
    try:
        minute = np.array(stamps, dtype="datetime64[m]")
    except ValueError as exc:
        raise InputError(f"{path}: bad timestamp ({exc})") from None
    act = np.asarray(acts, dtype=np.float64)
    stp = np.asarray(steps, dtype=np.float64) if i_steps is not None else None
    order = np.argsort(minute, kind="stable")
    minute, act = minute[order], act[order]
    stp = stp[order] if stp is not None else None
    first = np.ones(minute.size, dtype=bool)
    first[1:] = minute[1:] != minute[:-1]
    return ActivityFile(minute[first], act[first], stp[first] if stp is not None else None)
