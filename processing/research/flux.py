"""Flux text, time bounds and InfluxDB's CSV turned into typed pandas DataFrames.

Results are read as plain CSV (``query_csv``, no annotations) with
RFC3339Nano timestamps, so nanosecond times survive (``query_data_frame``
would round them to microseconds) and rows stream from the HTTP response
instead of being held as Python objects.

Every value interpolated into Flux is either one of our measurement/field
names or an id validated against the wire contract's pattern
(``[a-z0-9][a-z0-9_-]*``), so no quoting can be broken.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from collector import wire

NS = 1_000_000_000
DAY_NS = 86_400 * NS
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DIALECT: Any = None
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class QueryError(RuntimeError):
    """InfluxDB could not answer (unreachable, refused, bad query); the message says why.

    ``status`` is InfluxDB's HTTP status when it answered (401/403: credentials refused).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def dialect() -> Any:
    global _DIALECT
    if _DIALECT is None:
        from influxdb_client.domain.dialect import Dialect

        _DIALECT = Dialect(header=True, annotations=[], date_time_format="RFC3339Nano")
    return _DIALECT


# --------------------------------------------------------------------------- time


def rfc3339(ts_ns: int) -> str:
    """``2025-11-26T00:00:01.5Z``: UTC, exact to the nanosecond, no trailing zeros."""
    seconds, frac = divmod(int(ts_ns), NS)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}".rstrip("0").rstrip(".") + "Z"


def parse_bound(text: str, tz: ZoneInfo, *, end: bool = False) -> int:
    """A range bound in ns since the epoch.

    ``YYYY-MM-DD`` is a local calendar day in ``tz``: as a start it means its
    midnight, as an end (``end=True``) the midnight after it, so
    ``--from 2025-11-20 --to 2025-11-26`` covers seven whole days. A date-time
    with an offset (or ``Z``) is exact; one without is local time in ``tz``.
    """
    text = text.strip()
    if _DATE.match(text):
        day = dt.date.fromisoformat(text)
        if end:
            day += dt.timedelta(days=1)
        return int(dt.datetime.combine(day, dt.time(), tz).timestamp()) * NS
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither YYYY-MM-DD nor an ISO 8601 date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return (when - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def local_day_starts(start_ns: int, stop_ns: int, tz: ZoneInfo, days: int = 1) -> list[int]:
    """Local midnights (ns) from the day holding ``start_ns`` up to ``stop_ns``, every
    ``days`` days (DST days are 23 or 25 hours long); the first entry is ``start_ns``."""
    out = [start_ns]
    day = dt.datetime.fromtimestamp(start_ns // NS, tz).date()
    while True:
        day += dt.timedelta(days=days)
        t = int(dt.datetime.combine(day, dt.time(), tz).timestamp()) * NS
        if t >= stop_ns:
            return out
        out.append(t)


# --------------------------------------------------------------------------- Flux text


def check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r}: letters, digits and '_' only")
    return value


def check_ids(values: Iterable[str], what: str) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(wire.check_id(v, what))
        except wire.WireError as exc:
            raise ValueError(str(exc)) from None
    return out


def any_of(column: str, values: Sequence[str]) -> str:
    """``r.col == "a" or r.col == "b"`` (values must already be checked)."""
    return " or ".join(f'r.{column} == "{v}"' for v in values)


def select(
    *,
    bucket: str,
    study: str,
    measurement: str,
    start_ns: int,
    stop_ns: int,
    participants: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
) -> str:
    """``from |> range |> filter`` for one measurement of one study."""
    text = (
        f'from(bucket: "{bucket}")'
        f" |> range(start: {rfc3339(start_ns)}, stop: {rfc3339(stop_ns)})"
        f' |> filter(fn: (r) => r._measurement == "{check_name(measurement, "measurement")}"'
        f' and r.study == "{study}")'
    )
    if participants:
        text += f" |> filter(fn: (r) => {any_of('participant', participants)})"
    if fields:
        names = [check_name(f, "field") for f in fields]
        text += f" |> filter(fn: (r) => {any_of('_field', names)})"
    return text


def wide(selection: str) -> str:
    """One row per point and series, one column per field, ungrouped."""
    return (
        selection
        + ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
        + ' |> drop(columns: ["_start", "_stop", "_measurement", "study"]) |> group()'
    )


# --------------------------------------------------------------------------- CSV


def csv_records(rows: Iterable[list[str]]) -> Iterator[dict[str, str]]:
    """Flux CSV rows -> dicts; a blank line starts a new table with its own header."""
    header: list[str] | None = None
    for row in rows:
        if not row or all(cell == "" for cell in row):
            header = None
            continue
        if header is None:
            header = row
            continue
        if row == header:
            continue
        yield {k: v for k, v in zip(header, row, strict=False) if k not in ("", "result", "table")}


def to_frame(records: Iterable[dict[str, str]], kinds: dict[str, str] | None) -> pd.DataFrame:
    """Typed DataFrame; ``kinds`` maps column -> time/int/float/bool/str (None: infer).

    ``_time`` becomes ``time`` (UTC, ns) and ``_field``/``_value`` become
    ``item``/``value``. Columns in ``kinds`` come first in its order, missing
    ones filled with nulls, so every chunk has the same layout.
    """
    df = pd.DataFrame.from_records(list(records))
    df = df.rename(columns={"_time": "time", "_field": "item", "_value": "value"})
    if kinds is None:
        kinds = {c: ("time" if c == "time" else "str") for c in df.columns}
        if "value" in df.columns:
            kinds["value"] = "float"
    out = pd.DataFrame(index=df.index)
    for col, kind in kinds.items():
        raw = df[col] if col in df.columns else pd.Series([""] * len(df), dtype=object)
        out[col] = _convert(raw, kind)
    if len(out) and "time" in out.columns:
        sort_cols = ["time", *(c for c in ("participant", "device") if c in out.columns)]
        out = out.sort_values(sort_cols, kind="stable").reset_index(drop=True)
    return out


def _convert(raw: pd.Series, kind: str) -> pd.Series:
    if kind == "time":
        return pd.to_datetime(raw, format="ISO8601", utc=True).astype("datetime64[ns, UTC]")
    blank = raw.isna() | (raw == "")
    if kind == "str":
        return raw.fillna("").astype(object)
    if kind == "bool":
        mapped = raw.astype(str).str.lower().map({"true": True, "false": False})
        return mapped.where(~blank, None).astype("boolean")
    values = pd.to_numeric(raw.where(~blank, None), errors="coerce")
    if kind == "int":
        return values.astype("Int64")
    return values.astype("float64")
