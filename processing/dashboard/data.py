"""What the dashboard shows, read from InfluxDB (a read-only token is enough).

Study-wide questions are asked with one Flux query each (not one per
participant): last sample, worn minutes per local day, battery, gateway
state, alerts and their delivery status. "Worn" is a minute with a valid
heart-rate sample (``hr_bpm > 0``), the definition of the ``daily``
measurement's ``wear_min`` (docs/storage.md).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from processing.research import flux, svg
from processing.research.store import Store

NS: Final = 1_000_000_000
DAY_NS: Final = 86400 * NS
OVERVIEW_DAYS: Final = 14
VALID_DAY_MIN: Final = 600  # a day with >= 10 h worn counts as a valid day
ALERT_LOOKBACK_DAYS: Final = 35
PLOT_DAYS: Final = 7
SEVERITY_WEIGHT: Final = {"critical": 100, "warning": 10, "info": 1}


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    severity: str
    participant: str
    device: str
    gateway: str
    state: str
    since_ns: int  # when this episode started (the firing point's time)
    ts_ns: int  # the newest point of the episode
    message: str
    deliveries: tuple[tuple[str, str, str], ...] = ()  # (alert|resolution, recipient, status)

    @property
    def subject(self) -> str:
        if self.gateway:
            return f"_gateways/{self.gateway}"
        return f"{self.participant}/{self.device}" if self.device else self.participant

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.rule, self.subject, self.since_ns)

    @property
    def open(self) -> bool:
        return self.state != "resolved"


@dataclass(slots=True)
class Row:
    """One participant in the overview."""

    participant: str
    last_ns: int | None = None
    worn_min_by_day: dict[dt.date, float] = field(default_factory=dict)
    battery: dict[str, int] = field(default_factory=dict)  # device -> %
    gateways: dict[str, str] = field(default_factory=dict)  # gateway -> online/offline
    alerts: list[Alert] = field(default_factory=list)

    @property
    def wear_h_per_day(self) -> float:
        return sum(self.worn_min_by_day.values()) / 60 / OVERVIEW_DAYS

    @property
    def valid_days(self) -> int:
        return sum(1 for m in self.worn_min_by_day.values() if m >= VALID_DAY_MIN)

    @property
    def min_battery(self) -> int | None:
        return min(self.battery.values()) if self.battery else None

    def attention(self, now_ns: int, acked: set[tuple[str, str, int]]) -> float:
        """Higher = look first: unacknowledged open alerts, then silence, then low wear."""
        score: float = sum(
            SEVERITY_WEIGHT.get(a.severity, 1) * (1 if a.key in acked else 5)
            for a in self.alerts
            if a.open
        )
        hours_silent = (now_ns - self.last_ns) / 3600 / NS if self.last_ns else 24 * 14
        score += min(hours_silent, 24 * 14) / 6
        score += (OVERVIEW_DAYS - self.valid_days) * 0.5
        return score


class Data:
    """The dashboard's queries over one :class:`Store` (one study)."""

    def __init__(
        self, store: Store, clock: Callable[[], int], registry: Path | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        c = store.connection
        self.bucket, self.study, self.tz = c.bucket, c.study, c.tz

    def _from(self, lo: int, hi: int, measurement: str, extra: str = "") -> str:
        return (
            f'from(bucket: "{self.bucket}") |> range(start: {flux.rfc3339(lo)}, '
            f"stop: {flux.rfc3339(hi)}) |> filter(fn: (r) => r._measurement == "
            f'"{measurement}" and r.study == "{self.study}"{extra})'
        )

    def _rows(self, query: str) -> list[dict[str, str]]:
        return list(self.store.rows(query))

    # -- overview ------------------------------------------------------------------

    def overview(self) -> tuple[list[Row], list[Alert], int]:
        """Participant rows, gateway alerts, and the time they describe."""
        now = self.clock()
        hi = now + 60 * NS
        lo_alerts = now - ALERT_LOOKBACK_DAYS * DAY_NS
        rows: dict[str, Row] = {}
        enrolled = self._enrolled()
        left = {p for p, (_, status) in enrolled.items() if status != "active"}

        def row(p: str) -> Row:
            return rows.setdefault(p, Row(p))

        for p, (_gateway, status) in enrolled.items():
            if status == "active":
                row(p)  # enrolled and silent: exactly who needs a call

        q = self._from(lo_alerts, hi, "hr", ' and r._field == "hr_bpm"')
        q += ' |> group(columns: ["participant"]) |> last()'
        for r in self._rows(q):
            row(r["participant"]).last_ns = _ns(r["_time"])
        for p, day, minutes in self.worn_minutes(None, now - OVERVIEW_DAYS * DAY_NS, hi):
            row(p).worn_min_by_day[day] = minutes
        q = self._from(lo_alerts, hi, "device_status", ' and r._field == "battery_pct"')
        q += ' |> group(columns: ["participant", "device"]) |> last()'
        for r in self._rows(q):
            row(r["participant"]).battery[r["device"]] = int(float(r["_value"]))
        gw_state = {
            r["gateway"]: r["_value"]
            for r in self._rows(
                self._from(lo_alerts, hi, "gateway_state", ' and r._field == "state"')
                + ' |> group(columns: ["gateway"]) |> last()'
            )
        }
        sensors = self._rows(
            self._from(lo_alerts, hi, "gateway_sensor", ' and r._field == "battery_pct"')
            + ' |> group(columns: ["gateway", "sensor"]) |> last()'
        )
        gateway_of_device = {r["sensor"]: r["gateway"] for r in sensors}
        for p, (gw, status) in enrolled.items():
            if status == "active" and gw:
                row(p).gateways[gw] = gw_state.get(gw, "not heard from")
        devices = self._rows(
            self._from(now - OVERVIEW_DAYS * DAY_NS, hi, "hr", ' and r._field == "hr_bpm"')
            + ' |> group(columns: ["participant", "device"]) |> last()'
        )
        for r in devices:
            by_sensor = gateway_of_device.get(r["device"])
            if by_sensor and not row(r["participant"]).gateways:
                row(r["participant"]).gateways[by_sensor] = gw_state.get(by_sensor, "unknown")
        gateway_alerts = []
        for a in self.alerts(None, lo_alerts, hi):
            if a.gateway:
                gateway_alerts.append(a)
            elif a.participant:
                row(a.participant).alerts.append(a)
        shown = [r for p, r in rows.items() if p not in left]  # withdrawn or erased
        return sorted(shown, key=lambda r: r.participant), gateway_alerts, now

    def _enrolled(self) -> dict[str, tuple[str, str]]:
        """participant -> (gateway, status) from the enrolment registry, if configured."""
        if self.registry is None:
            return {}
        from processing.admin.registry import Registry

        reg = Registry(self.registry, self.study)
        return {p: (e.gateway, e.status) for p, e in reg.participants.items()}

    def worn_minutes(
        self, participant: str | None, lo: int, hi: int
    ) -> list[tuple[str, dt.date, float]]:
        """(participant, local day, minutes with a valid HR sample)."""
        who = _who(participant)
        q = 'import "timezone"\n' + self._from(lo, hi, "hr", f' and r._field == "hr_bpm"{who}')
        q += (
            ' |> filter(fn: (r) => r._value > 0) |> group(columns: ["participant"])'
            " |> aggregateWindow(every: 1m, fn: count, createEmpty: false)"
            f' |> aggregateWindow(every: 1d, fn: count, createEmpty: false, timeSrc: "_start",'
            f' location: timezone.location(name: "{self.store.connection.timezone}"))'
            ' |> keep(columns: ["participant", "_time", "_value"])'
        )
        out = []
        for r in self._rows(q):
            day = dt.datetime.fromtimestamp(_ns(r["_time"]) / NS, self.tz).date()
            out.append((r["participant"], day, float(r["_value"])))
        return out

    def alerts(self, participant: str | None, lo: int, hi: int) -> list[Alert]:
        """Every alert episode in [lo, hi): open ones and resolved ones, newest first."""
        who = _who(participant)
        q = self._from(lo, hi, "alert", who)
        q += (
            ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            ' |> group() |> sort(columns: ["_time"])'
        )
        deliveries = self._deliveries(participant, lo, hi)
        episodes: dict[tuple[str, str, str, str], Alert] = {}
        done: list[Alert] = []
        for r in self._rows(q):
            key = (
                r.get("rule", ""),
                r.get("participant", ""),
                r.get("device", ""),
                r.get("gateway", ""),
            )
            ts = _ns(r["_time"])
            state = r.get("state") or "firing"  # points written before states existed
            current = episodes.get(key)
            if state == "firing" and (current is None or not current.open):
                if current is not None:
                    done.append(current)
                episodes[key] = Alert(
                    key[0],
                    r.get("severity", ""),
                    key[1],
                    key[2],
                    key[3],
                    "firing",
                    ts,
                    ts,
                    r.get("message", ""),
                    deliveries.get((key, "firing", ts), ()),
                )
            elif state == "resolved" and current is not None and current.open:
                sent = current.deliveries + deliveries.get((key, "resolved", ts), ())
                episodes[key] = Alert(
                    current.rule,
                    current.severity,
                    *key[1:],
                    "resolved",
                    current.since_ns,
                    ts,
                    r.get("message", ""),
                    sent,
                )
        done.extend(episodes.values())
        return sorted(done, key=lambda a: (not a.open, -a.since_ns))

    def _deliveries(
        self, participant: str | None, lo: int, hi: int
    ) -> dict[tuple[tuple[str, str, str, str], str, int], tuple[tuple[str, str, str], ...]]:
        """(alert key, state, event ns) -> ((what, recipient, status), ...) from alert_delivery."""
        q = self._from(lo, hi, "alert_delivery", _who(participant))
        q += (
            ' |> filter(fn: (r) => r._field == "status" or r._field == "state")'
            ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            ' |> group() |> sort(columns: ["_time", "recipient"])'
        )
        out: dict[Any, list[tuple[str, str, str]]] = defaultdict(list)
        for r in self._rows(q):
            key = tuple(r.get(k, "") for k in ("rule", "participant", "device", "gateway"))
            state = r.get("state", "")
            what = "alert" if state == "firing" else "resolution"
            entry = (what, r.get("recipient", ""), r.get("status", ""))
            if entry not in out[(key, state, _ns(r["_time"]))]:  # one line per recipient
                out[(key, state, _ns(r["_time"]))].append(entry)
        return {k: tuple(v) for k, v in out.items()}

    # -- participant page ----------------------------------------------------------

    def participant_known(self, participant: str) -> bool:
        """Enrolled (per the registry) or with data in the last 90 days."""
        if participant in self._enrolled():
            return True
        now = self.clock()
        return participant in self.store.participants(now - 90 * DAY_NS, now + 60 * NS)

    def plots(self, participant: str) -> dict[str, str]:
        """Inline SVG plots of the last :data:`PLOT_DAYS` days, keyed by section id."""
        now = self.clock()
        hi = now + 60 * NS
        lo = _hour_floor(now - PLOT_DAYS * DAY_NS)
        hours = list(range(lo, hi, 3600 * NS))
        labels = [dt.datetime.fromtimestamp(h / NS, self.tz).strftime("%m-%d %H:00") for h in hours]

        def hourly(
            measurement: str, field_name: str, fn: str, where: str | None = None
        ) -> list[float]:
            df = self.store.aggregate(
                measurement,
                field_name,
                every="1h",
                fn=fn,
                participant=participant,
                start=lo,
                stop=hi,
                where=where,
            )
            by_hour = (
                {int(t.value): float(v) for t, v in zip(df["time"], df["value"], strict=True)}
                if len(df)
                else {}
            )
            return [by_hour.get(h, math.nan) for h in hours]

        out = {}
        out["hr"] = svg.line_chart(
            "Heart rate, hourly mean",
            labels,
            [("heart rate", hourly("hr", "hr_bpm", "mean", "r._value > 0"))],
            unit="(beats/min)",
        )
        out["rr"] = svg.line_chart(
            "Beat-to-beat (RR) intervals, hourly mean",
            labels,
            [("RR interval", hourly("rr", "rr_ms", "mean"))],
            unit="(ms)",
        )
        out["hrv"] = svg.line_chart(
            "Heart rate variability (RMSSD of 5-minute windows), hourly mean",
            labels,
            [("RMSSD", hourly("hrv_window", "rmssd_ms", "mean"))],
            unit="(ms)",
        )
        out["activity"] = svg.line_chart(
            "Activity, counts per hour",
            labels,
            [("activity counts", hourly("activity", "counts", "sum"))],
            unit="(counts)",
        )
        days = [now - k * DAY_NS for k in range(OVERVIEW_DAYS - 1, -1, -1)]
        dates = [dt.datetime.fromtimestamp(d / NS, self.tz).date() for d in days]
        day_labels = [d.strftime("%m-%d") for d in dates]
        lo_days = now - OVERVIEW_DAYS * DAY_NS
        worn = {day: m for _, day, m in self.worn_minutes(participant, lo_days, hi)}
        out["wear"] = svg.line_chart(
            "Hours worn per day",
            day_labels,
            [("hours worn", [worn.get(d, 0.0) / 60 for d in dates])],
            unit="(h)",
        )
        daily = self.store.frame_ns("daily", lo_days - DAY_NS, hi, [participant])
        by_day: dict[dt.date, dict[str, float]] = {}
        for rec in daily.to_dict("records") if len(daily) else []:
            day = rec["time"].tz_convert(self.tz).date()
            by_day[day] = {k: _float(v) for k, v in rec.items() if k != "time"}

        def marker(name: str) -> list[float]:
            return [by_day.get(d, {}).get(name, math.nan) for d in dates]

        out["daily"] = svg.line_chart(
            "Heart rate per day (from the daily features)",
            day_labels,
            [
                ("mean", marker("hr_mean")),
                ("5th percentile", marker("hr_p5")),
                ("95th percentile", marker("hr_p95")),
            ],
            unit="(beats/min)",
        )
        return out


def _who(participant: str | None) -> str:
    """A Flux predicate on one participant (the id checked first: it may come from a URL)."""
    if participant is None:
        return ""
    return f' and r.participant == "{flux.check_ids([participant], "participant")[0]}"'


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _hour_floor(ns: int) -> int:
    return ns - ns % (3600 * NS)


def _ns(text: str) -> int:
    """RFC 3339 (as Flux CSV writes it, up to ns) -> ns since the epoch."""
    head, _, frac = text.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    return int(base.timestamp()) * NS + int((frac or "0").ljust(9, "0")[:9])
