"""Replay a recorded feature history through the engine: what would have fired, and when.

A history is CSV (header row) or JSON (a list of objects, or ``{"records":
[...]}``); each record has

==============================  ==================================================
``time``                        ``YYYY-MM-DD`` (a *daily* record: that day's
                                features) or an ISO 8601 date-time / ns integer
                                (a *status* record: the state at that moment)
``participant``                 pseudonym (daily records and participant status)
``device``, ``gateway``         for device (``battery_pct``) and gateway status
``kind``                        optional: ``daily`` or ``status`` (default: from ``time``)
feature columns                 daily: any catalogue feature or ``<feature>_z``;
                                empty = missing
status columns                  ``wear_hours_24h``, ``battery_pct``,
                                ``gateway_online`` (true/false), ``last_sample``,
                                ``last_worn``, ``gateway_seen`` (times), or
                                ``minutes_since_last_sample``, ``minutes_since_worn``,
                                ``minutes_since_gateway_seen`` (relative to ``time``)
==============================  ==================================================

Daily records are evaluated at the end of their day (00:00 UTC of the next
day); between records the engine ticks every ``tick_s`` seconds, as the
scheduler would.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from collector import safejson
from processing.rules.engine import NS, AlertEvent, RuleEngine, Subject
from processing.rules.loader import RuleSet
from processing.rules.vocabulary import TIMESTAMP_INPUTS, VARIABLES

MAX_RECORDS: Final = 1_000_000
HISTORY_MAX_BYTES: Final = 512 * 1024 * 1024
_ID_KEYS: Final = frozenset({"time", "kind", "participant", "device", "gateway"})
_TIME_COLUMNS: Final = {
    "last_sample": "last_sample_ns",
    "last_worn": "last_worn_ns",
    "gateway_seen": "gateway_seen_ns",
}
_MINUTE_COLUMNS: Final = {v: k for k, v in TIMESTAMP_INPUTS.items()}
_PARTICIPANT_STATUS: Final = frozenset({"wear_hours_24h", "last_sample_ns", "last_worn_ns"})
_GATEWAY_STATUS: Final = frozenset({"gateway_online", "gateway_seen_ns"})
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class HistoryError(ValueError):
    """A history file that cannot be replayed; the message names the record and column."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: str  # "daily" or "status"
    ts_ns: int  # when the engine sees it
    day: dt.date | None
    participant: str
    device: str
    gateway: str
    values: Mapping[str, object]
    where: str  # "FILE:line" or "FILE[index]"


def read_history(path: Path) -> list[Record]:
    """Parse a CSV or JSON history file into records sorted by time."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: cannot read: {exc}") from None
    rows: list[tuple[str, dict[str, Any]]]
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = safejson.loads(text, max_bytes=HISTORY_MAX_BYTES)
        except safejson.UnsafeJsonError as exc:
            raise HistoryError(f"{path}: not valid JSON: {exc}") from None
        if isinstance(data, dict):
            data = data.get("records")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise HistoryError(f"{path}: expected a list of objects (or {{'records': [...]}})")
        rows = [(f"{path}[{i}]", r) for i, r in enumerate(data)]
    else:
        reader = csv.DictReader(text.splitlines())
        rows = [(f"{path}:{i + 2}", dict(r)) for i, r in enumerate(reader)]
    if len(rows) > MAX_RECORDS:
        raise HistoryError(f"{path}: more than {MAX_RECORDS} records")
    records = [_record(where, row) for where, row in rows]
    records.sort(key=lambda r: (r.ts_ns, r.kind != "daily"))
    return records


def _record(where: str, row: dict[str, Any]) -> Record:
    def fail(message: str) -> HistoryError:
        return HistoryError(f"{where}: {message}")

    raw_time = row.get("time")
    if raw_time in (None, ""):
        raise fail("no 'time'")
    kind = str(row.get("kind") or "")
    is_date = isinstance(raw_time, str) and bool(_DATE.match(raw_time.strip()))
    kind = kind or ("daily" if is_date else "status")
    if kind not in ("daily", "status"):
        raise fail(f"kind {kind!r} is not 'daily' or 'status'")
    participant = str(row.get("participant") or "")
    device = str(row.get("device") or "")
    gateway = str(row.get("gateway") or "")
    values: dict[str, object] = {}
    day: dt.date | None = None
    if kind == "daily":
        if not is_date:
            raise fail(f"a daily record's time is a date (YYYY-MM-DD), got {raw_time!r}")
        day = dt.date.fromisoformat(str(raw_time).strip())
        ts_ns = _date_ns(day + dt.timedelta(days=1))
        if not participant:
            raise fail("a daily record needs a participant")
        for key, raw in row.items():
            if key in _ID_KEYS or raw in (None, ""):
                continue
            var = VARIABLES.get(key)
            if var is None or var.kind != "daily" or var.type != "number":
                raise fail(f"unknown daily feature column {key!r}")
            values[key] = _number(raw, key, fail)
        return Record(kind, ts_ns, day, participant, device, gateway, values, where)
    ts_ns = _time_ns(raw_time, "time", fail)
    for key, raw in row.items():
        if key in _ID_KEYS or raw in (None, ""):
            continue
        if key in _TIME_COLUMNS:
            values[_TIME_COLUMNS[key]] = _time_ns(raw, key, fail)
        elif key in _MINUTE_COLUMNS:
            values[_MINUTE_COLUMNS[key]] = ts_ns - round(_number(raw, key, fail) * 60 * NS)
        elif key == "gateway_online":
            values[key] = _bool(raw, key, fail)
        elif key in ("wear_hours_24h", "battery_pct"):
            values[key] = _number(raw, key, fail)
        else:
            raise fail(f"unknown status column {key!r}")
    if any(k in values for k in _PARTICIPANT_STATUS) and not participant:
        raise fail("participant status needs a participant")
    if "battery_pct" in values and not (participant and device):
        raise fail("battery_pct needs a participant and a device")
    if any(k in values for k in _GATEWAY_STATUS) and not gateway:
        raise fail("gateway status needs a gateway")
    return Record(kind, ts_ns, None, participant, device, gateway, values, where)


def _date_ns(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * NS


def _time_ns(raw: object, key: str, fail: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"{key}: expected ISO 8601 or ns since the epoch, got {text[:40]!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return round(when.timestamp() * 1e6) * 1000


def _number(raw: object, key: str, fail: Any) -> float:
    if isinstance(raw, bool):
        raise fail(f"{key}: expected a number, got {raw!r}")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise fail(f"{key}: expected a number, got {str(raw)[:40]!r}") from None
    return value if math.isfinite(value) else math.nan


def _bool(raw: object, key: str, fail: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "online"):
        return True
    if text in ("false", "0", "no", "offline"):
        return False
    raise fail(f"{key}: expected true or false, got {text[:40]!r}")


def _apply(engine: RuleEngine, record: Record) -> list[AlertEvent]:
    if record.kind == "daily":
        assert record.day is not None
        return engine.on_daily_features(record.participant, record.day, record.values)
    groups = {
        Subject.of_participant(record.participant): _PARTICIPANT_STATUS,
        Subject.of_device(record.participant, record.device): frozenset({"battery_pct"}),
        Subject.of_gateway(record.gateway): _GATEWAY_STATUS,
    }
    events: list[AlertEvent] = []
    for subject, keys in groups.items():
        part = {k: v for k, v in record.values.items() if k in keys}
        if part:
            events.extend(engine.on_status(subject, part))
    return events


def replay(
    rules: RuleSet, records: Iterable[Record], *, study: str = "history", tick_s: float = 900
) -> list[AlertEvent]:
    """Every alert event the rules would have produced over ``records``, in time order."""
    clock = _ReplayClock()
    engine = RuleEngine(rules, study=study, clock=clock)
    events: list[AlertEvent] = []
    ordered = list(records)
    if not ordered:
        return events
    tick_ns = max(1, round(tick_s * NS))
    first, last = ordered[0].ts_ns, ordered[-1].ts_ns
    ticks = range(first - first % tick_ns + tick_ns, last + 1, tick_ns)
    # merge records and ticks by time; at equal times the record goes first
    stream = heapq.merge(
        ((r.ts_ns, 0, i) for i, r in enumerate(ordered)),
        ((t, 1, -1) for t in ticks),
    )
    for ts, is_tick, index in stream:
        clock.now = ts
        if is_tick:
            events.extend(engine.tick(ts))
        else:
            events.extend(_apply(engine, ordered[index]))
    return events


class _ReplayClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def iso(ts_ns: int) -> str:
    """UTC ISO 8601 with seconds, for reports."""
    return dt.datetime.fromtimestamp(ts_ns / NS, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
