"""Read what the rules need from InfluxDB (docs/storage.md), for the standalone runner.

Every query uses absolute times from the injected clock (never InfluxDB's
``now()``), so a simulated clock or a replay sees consistent data. Study ids,
bucket and measurement names are validated identifiers, so interpolating
them into the Flux text is safe (as in :mod:`processing.featurejobs`).

What each status variable is made of:

* ``last_sample_ns``: newest ``hr.hr_bpm`` point of any device (``last()``
  per series, which InfluxDB answers from its index), within the lookback.
* ``last_worn_ns`` and ``wear_hours_24h``: ``hr`` points of the trailing 24 h
  with ``hr_bpm > 0`` and ``contact`` not false, counted per minute; the
  last worn minute's end is the last worn time (minute resolution). Not worn
  at all in the trailing 24 h: ``last_worn_ns`` is the window's start (so
  ``minutes_since_worn`` reads at least 1440), or the participant's first
  sample if that is later (a participant who just started is not "unworn
  for a day").
* ``battery_pct``: newest ``device_status.battery_pct`` per device.
* ``gateway_online`` / ``gateway_seen_ns``: newest ``gateway_state.state``
  and the newest of ``gateway_health`` and an ``online`` state.

Daily features: fields of ``daily`` by local day (its ``tz`` tag), including
the baseline deviations the processing service stores (``<feature>_z``,
``<feature>_robust_z``; the engine computes those it is not given) and the
nocturnal HRV (``ln_rmssd_night``, ``hrv_night_windows``,
``hrv_night_usable_fraction``; docs/storage.md). HRV window features a
``daily`` point does not hold are the day's median over its ``hrv_window``
points (e.g. ``sdnn_ms``, ``rmssd_ms``), plus ``hrv_windows`` and
``hrv_good_fraction`` from the windows' ``quality`` field (good = RMSSD
defined, ``night_hrv.usable_quality``). Only complete days are returned.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

from processing.features.catalog import CATALOG
from processing.features.night_hrv import usable_quality
from processing.rules.engine import NS, Subject
from processing.rules.loader import Rule
from processing.rules.vocabulary import base_feature

log = logging.getLogger("wellsense.rules.influx")

DAY_NS: Final = 86_400 * NS
_HRV_FEATURES: Final = frozenset(s.name for s in CATALOG if s.module in ("hrv", "rr_clean"))
_DAILY_ALIASES: Final = {"steps_total": "steps"}  # stored field -> catalogue name


def rfc3339(ts_ns: int) -> str:
    seconds, frac = divmod(ts_ns, NS)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def _ns(value: Any) -> int:
    """A FluxRecord time (datetime, microseconds) as ns."""
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1_000_000) * 1000
    return int(value)


@dataclass(slots=True)
class StatusSnapshot:
    participants: dict[str, dict[str, object]] = field(default_factory=dict)
    devices: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    gateways: dict[str, dict[str, object]] = field(default_factory=dict)

    def updates(self) -> list[tuple[Subject, dict[str, object]]]:
        out: list[tuple[Subject, dict[str, object]]] = []
        for p, values in sorted(self.participants.items()):
            out.append((Subject.of_participant(p), values))
        for (p, d), values in sorted(self.devices.items()):
            out.append((Subject.of_device(p, d), values))
        for g, values in sorted(self.gateways.items()):
            out.append((Subject.of_gateway(g), values))
        return out


@dataclass(frozen=True, slots=True)
class StoredAlert:
    rule: str
    subject: Subject
    firing: bool
    fired_ns: int | None


class InfluxSource:
    """Queries one bucket for one study.

    Args:
        query_api: an ``influxdb_client`` QueryApi.
        org, bucket, study: where the data is.
        lookback_ns: how far back participants, daily features and alerts are read.
        timezone: zone of the study (days of ``hrv_window`` points).
    """

    def __init__(
        self,
        *,
        query_api: Any,
        org: str,
        bucket: str,
        study: str,
        lookback_ns: int,
        timezone: str = "UTC",
    ) -> None:
        self.query_api = query_api
        self.org = org
        self.bucket = bucket
        self.study = study
        self.lookback_ns = lookback_ns
        self.tz = ZoneInfo(timezone)

    def _query(self, body: str, start_ns: int, stop_ns: int) -> list[dict[str, Any]]:
        flux = (
            f'from(bucket: "{self.bucket}")'
            f" |> range(start: {rfc3339(start_ns)}, stop: {rfc3339(stop_ns)})"
            f' |> filter(fn: (r) => r.study == "{self.study}") {body}'
        )
        tables = self.query_api.query(flux, org=self.org)
        return [record.values for table in tables for record in table.records]

    # -- status ----------------------------------------------------------------------

    def status(self, now_ns: int) -> StatusSnapshot:
        snap = StatusSnapshot()
        stop = now_ns + 60 * NS  # tolerate clocks slightly ahead of ours
        start = now_ns - self.lookback_ns
        last_rows = self._query(
            '|> filter(fn: (r) => r._measurement == "hr" and r._field == "hr_bpm") |> last()',
            start,
            stop,
        )
        for row in last_rows:
            p = snap.participants.setdefault(str(row["participant"]), {})
            t = _ns(row["_time"])
            p["last_sample_ns"] = max(t, int(p.get("last_sample_ns", 0)))  # type: ignore[call-overload]
        first_seen: dict[str, int] = {}
        first_rows = self._query(
            '|> filter(fn: (r) => r._measurement == "hr" and r._field == "hr_bpm") |> first()',
            start,
            stop,
        )
        for row in first_rows:
            participant, t = str(row["participant"]), _ns(row["_time"])
            first_seen[participant] = min(t, first_seen.get(participant, t))
        day_start = now_ns - DAY_NS
        wear_rows = self._query(
            '|> filter(fn: (r) => r._measurement == "hr"'
            ' and (r._field == "hr_bpm" or r._field == "contact"))'
            ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            " |> filter(fn: (r) => r.hr_bpm > 0 and (not exists r.contact or r.contact))"
            " |> map(fn: (r) => ({_time: r._time, participant: r.participant, _value: 1}))"
            ' |> group(columns: ["participant"])'
            " |> aggregateWindow(every: 1m, fn: count, createEmpty: false)",
            day_start,
            stop,
        )
        minutes: dict[str, int] = defaultdict(int)
        last_worn: dict[str, int] = {}
        for row in wear_rows:
            participant = str(row["participant"])
            minutes[participant] += 1
            end = min(_ns(row["_time"]), now_ns)
            last_worn[participant] = max(end, last_worn.get(participant, 0))
        for participant, values in snap.participants.items():
            values["wear_hours_24h"] = minutes.get(participant, 0) / 60.0
            # never worn in the trailing 24 h: not worn since the window's start, or since
            # the participant's first data if that is later (a new participant)
            never = max(day_start, first_seen.get(participant, day_start))
            values["last_worn_ns"] = last_worn.get(participant, never)
        battery = self._query(
            '|> filter(fn: (r) => r._measurement == "device_status"'
            ' and r._field == "battery_pct") |> last()',
            start,
            stop,
        )
        newest: dict[tuple[str, str], int] = {}
        for row in battery:
            key = (str(row["participant"]), str(row["device"]))
            t = _ns(row["_time"])
            if t >= newest.get(key, -1):
                newest[key] = t
                snap.devices[key] = {"battery_pct": float(row["_value"])}
        gw_rows = self._query(
            '|> filter(fn: (r) => (r._measurement == "gateway_state" and r._field == "state")'
            ' or (r._measurement == "gateway_health" and r._field == "uptime_s")) |> last()',
            start,
            stop,
        )
        for row in sorted(gw_rows, key=lambda r: _ns(r["_time"])):
            g = snap.gateways.setdefault(str(row["gateway"]), {})
            t = _ns(row["_time"])
            if row["_measurement"] == "gateway_state":
                g["gateway_online"] = row["_value"] == "online"
                if row["_value"] != "online":
                    continue
            g["gateway_seen_ns"] = max(t, int(g.get("gateway_seen_ns", 0)))  # type: ignore[call-overload]
        return snap

    # -- daily -----------------------------------------------------------------------

    def daily(self, now_ns: int, rules: list[Rule]) -> dict[str, dict[dt.date, dict[str, object]]]:
        """Complete days' features per participant, for the features ``rules`` read."""
        wanted = _daily_inputs(rules)
        out: dict[str, dict[dt.date, dict[str, object]]] = defaultdict(lambda: defaultdict(dict))
        if not wanted:
            return {}
        start = now_ns - self.lookback_ns
        for row in self._query('|> filter(fn: (r) => r._measurement == "daily")', start, now_ns):
            name = _DAILY_ALIASES.get(str(row["_field"]), str(row["_field"]))
            if name not in wanted:
                continue
            tz = ZoneInfo(str(row.get("tz") or "UTC"))
            local = _local(row["_time"], tz)
            if _ns_of(local + dt.timedelta(days=1)) > now_ns:
                continue  # the day is not over yet
            out[str(row["participant"])][local.date()][name] = _float(row["_value"])
        hrv = (wanted & _HRV_FEATURES) | ({"quality"} if wanted & _QUALITY else set())
        if hrv:
            self._hrv_days(start, now_ns, hrv, out)
        return {p: dict(days) for p, days in out.items()}

    def _hrv_days(
        self,
        start: int,
        now_ns: int,
        fields: set[str],
        out: dict[str, dict[dt.date, dict[str, object]]],
    ) -> None:
        cond = " or ".join(f'r._field == "{f}"' for f in sorted(fields))
        rows = self._query(
            f'|> filter(fn: (r) => r._measurement == "hrv_window" and ({cond}))', start, now_ns
        )
        values: dict[tuple[str, dt.date, str], list[Any]] = defaultdict(list)
        for row in rows:
            local = _local(row["_time"], self.tz)
            day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
            if _ns_of(day_start + dt.timedelta(days=1)) > now_ns:
                continue
            values[(str(row["participant"]), local.date(), str(row["_field"]))].append(
                row["_value"]
            )
        for (participant, day, name), items in values.items():
            target = out[participant][day]
            if name == "quality":
                # "" or None (the client may read None) is a window without flags
                good = sum(1 for q in items if usable_quality(str(q or "").split(",")))
                target["hrv_windows"] = float(len(items))
                target["hrv_good_fraction"] = good / len(items) if items else math.nan
            elif name not in target:  # a stored daily value wins (the single source)
                nums = [x for x in (_float(v) for v in items) if math.isfinite(x)]
                target[name] = statistics.median(nums) if nums else math.nan

    # -- stored alerts ---------------------------------------------------------------

    def stored_alerts(self, now_ns: int) -> list[StoredAlert]:
        """The newest state of every (rule, subject) in ``alert``, with its last firing."""
        start = now_ns - self.lookback_ns
        base = '|> filter(fn: (r) => r._measurement == "alert" and r._field == "state")'
        last = self._query(f"{base} |> last()", start, now_ns + 60 * NS)
        fired = self._query(
            f'{base} |> filter(fn: (r) => r._value == "firing") |> last()', start, now_ns + 60 * NS
        )

        def key(row: dict[str, Any]) -> tuple[str, Subject]:
            participant = str(row.get("participant") or "")
            device = str(row.get("device") or "")
            gateway = str(row.get("gateway") or "")
            if gateway:
                subject = Subject.of_gateway(gateway)
            elif device:
                subject = Subject.of_device(participant, device)
            else:
                subject = Subject.of_participant(participant)
            return str(row["rule"]), subject

        fired_at = {key(r): _ns(r["_time"]) for r in fired}
        newest: dict[tuple[str, Subject], tuple[int, bool]] = {}
        for row in last:
            k, t = key(row), _ns(row["_time"])
            if t >= newest.get(k, (-1, False))[0]:
                newest[k] = (t, row["_value"] == "firing")
        return [
            StoredAlert(rule, subject, firing, fired_at.get((rule, subject)))
            for (rule, subject), (_, firing) in sorted(newest.items())
        ]


_QUALITY: Final = frozenset({"hrv_windows", "hrv_good_fraction"})


def _daily_inputs(rules: list[Rule]) -> set[str]:
    from processing.rules import nodes

    wanted: set[str] = set()
    for rule in rules:
        if rule.kind != "daily":
            continue
        names = nodes.names(rule.condition.expr)
        if rule.value is not None:
            names |= nodes.names(rule.value)
        for name in names:
            base = base_feature(name)
            wanted.add(name)  # stored z-scores are read as they are
            if base:
                wanted.add(base[0])  # and their feature, for the engine's own baseline
    return wanted


def _local(value: Any, tz: ZoneInfo) -> dt.datetime:
    when = (
        value
        if isinstance(value, dt.datetime)
        else dt.datetime.fromtimestamp(int(value) / NS, dt.UTC)
    )
    return when.astimezone(tz)


def _ns_of(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000) * 1000


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
