"""Compute one feature unit from what InfluxDB holds, with the pure feature functions.

A unit reads its whole input back from the database (never from this
worker's memory), so any worker computes the same result for the same stored
data, and writes it at a deterministic timestamp (the unit's start), so a
recomputation replaces the previous result. See ``docs/processing.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from processing import schema
from processing.dailyfeatures import (
    DAILY_HR_KEYS,
    HISTORY_FIELDS,
    OPTIONAL_FIELDS,
    DailyInputs,
    baseline_values,
    daily_fields,
    local_seconds,
    same_values,
)
from processing.dailysleep import RHYTHM_DAYS, Minutes
from processing.features._types import FloatArray
from processing.features.baseline import WINDOW_DAYS
from processing.features.hrv import HRV_KEYS, hrv_window_at
from processing.features.night_hrv import usable_quality
from processing.features.rr_clean import Quality, quality_names
from processing.windows import NS, DayCalendar, Unit

#: How far back a clock_step point is looked for: steps back of up to a day.
CLOCK_STEP_LOOKBACK_NS = 86_400 * 10**9

MINUTE_NS = 60 * NS

log = logging.getLogger(__name__)

__all__ = ["DAILY_HR_KEYS", "FeatureJobs", "UnitResult", "rfc3339", "stale_fields_possible"]

# Query results as plain CSV (no annotations): cheap to parse, ns timestamps kept.
_CSV_DIALECT: Any = None


def _dialect() -> Any:
    global _CSV_DIALECT
    if _CSV_DIALECT is None:
        from influxdb_client.domain.dialect import Dialect

        _CSV_DIALECT = Dialect(header=True, annotations=[], date_time_format="RFC3339Nano")
    return _CSV_DIALECT


def rfc3339(ts_ns: int) -> str:
    seconds, frac = divmod(ts_ns, NS)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


@dataclass(slots=True)
class UnitResult:
    """A computed unit: lines to write, the input fingerprint, units to recompute after it.

    ``followups`` are units whose result reads this one: the day of an HRV
    window (its ``ln_rmssd_night``), and the stored later days whose baseline
    includes a day whose baseline features changed.
    """

    lines: list[str]
    fingerprint: tuple[int, float]
    followups: list[Unit] = field(default_factory=list)


class FeatureJobs:
    """Runs units against one bucket.

    Args:
        query_api: an ``influxdb_client`` QueryApi.
        org, bucket, study: where the raw data is.
        window_s: HRV window length (the ``window`` tag is ``"<n>s"``).
        timezone: the ``tz`` tag of daily points.
    """

    def __init__(
        self, *, query_api: Any, org: str, bucket: str, study: str, window_s: int, timezone: str
    ) -> None:
        self.query_api = query_api
        self.org = org
        self.bucket = bucket
        self.study = study
        self.window_s = window_s
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._calendar = DayCalendar(timezone)

    # -- queries -----------------------------------------------------------------

    def _range(self, start_ns: int, end_ns: int, flt: str) -> str:
        return (
            f'from(bucket: "{self.bucket}")'
            f" |> range(start: {rfc3339(start_ns)}, stop: {rfc3339(end_ns)})"
            f' |> filter(fn: (r) => r.study == "{self.study}" and {flt})'
        )

    def _series(self, unit: Unit, measurement: str, field: str) -> tuple[np.ndarray, np.ndarray]:
        """(t_ns int64, value float64) of one field of a participant, all devices, by time."""
        # Ids are wire-validated ([a-z0-9_-]) and the measurement/field names are
        # ours, so interpolating them into the Flux text is safe.
        flux = self._range(
            unit.start_ns,
            unit.end_ns,
            f'r._measurement == "{measurement}" and r.participant == "{unit.participant}"'
            f' and r._field == "{field}"',
        ) + (
            ' |> group() |> keep(columns: ["_time", "_value"])'
            " |> map(fn: (r) => ({t: int(v: r._time), v: float(v: r._value)}))"
            ' |> sort(columns: ["t", "v"])'
        )
        times: list[int] = []
        values: list[float] = []
        for row in self._rows(flux, ("t", "v")):
            times.append(int(row[0]))
            values.append(float(row[1]))
        return np.array(times, dtype=np.int64), np.array(values, dtype=np.float64)

    def _rows(self, flux: str, columns: tuple[str, ...]) -> Iterator[list[str]]:
        header: list[str] | None = None
        for row in self.query_api.query_csv(flux, org=self.org, dialect=_dialect()):
            if not row or all(cell == "" for cell in row):
                continue
            if header is None or row == header:
                header = row
                continue
            named = dict(zip(header, row, strict=False))
            yield [named.get(c, "") for c in columns]

    def _per_minute(
        self,
        participant: str,
        start_ns: int,
        end_ns: int,
        measurement: str,
        field: str,
        fn: str,
        extra: str = "",
    ) -> FloatArray:
        """``fn`` (mean or sum) of one field per elapsed minute from ``start_ns`` (NaN = none).

        HR keeps only samples with ``hr_bpm > 0`` (contact flags are not used
        for this multi-day series; the day's own HR features still use them).
        """
        n = max(0, -(-(end_ns - start_ns) // MINUTE_NS))
        keep = " and r._value > 0" if field == "hr_bpm" else extra
        flux = self._range(
            start_ns,
            end_ns,
            f'r._measurement == "{measurement}" and r.participant == "{participant}"'
            f' and r._field == "{field}"{keep}',
        ) + (
            " |> map(fn: (r) => ({r with _value: float(v: r._value)}))"
            f" |> group() |> aggregateWindow(every: 1m, fn: {fn}, createEmpty: false,"
            ' timeSrc: "_start")'
            ' |> map(fn: (r) => ({t: int(v: r._time), v: r._value})) |> keep(columns: ["t", "v"])'
        )
        out = np.full(n, np.nan)
        for t_text, v_text in self._rows(flux, ("t", "v")):
            i = (int(t_text) - start_ns) // MINUTE_NS
            if 0 <= i < n and v_text != "":
                out[i] = float(v_text)
        return out

    def _noon_before(self, start_ns: int, days: int) -> int:
        """Local noon ``days`` calendar days before the local day starting at ``start_ns``."""
        day = self._local_date(start_ns) - dt.timedelta(days=days)
        return int(dt.datetime.combine(day, dt.time(12), self._tz).timestamp()) * NS

    def _minutes(self, unit: Unit) -> Minutes:
        """HR, steps and accelerometer epochs per minute from local noon seven days
        before the day to its end."""
        start = self._noon_before(unit.start_ns, RHYTHM_DAYS)
        hr = self._per_minute(unit.participant, start, unit.end_ns, "hr", "hr_bpm", "mean")
        steps = self._per_minute(unit.participant, start, unit.end_ns, "activity", "steps", "sum")
        t = start + np.arange(hr.size, dtype=np.int64) * MINUTE_NS
        # The gateway's accelerometer epochs (accel_epoch): vector-magnitude counts of
        # the 60-s epochs summed per minute, the 30-s epochs' z-angle averaged.
        args = (unit.participant, start, unit.end_ns, "accel_epoch")
        counts = self._per_minute(*args, "counts_vm", "sum", ' and r.epoch == "60"')
        angle = self._per_minute(*args, "angle_z_deg", "mean", ' and r.epoch == "30"')
        if not np.isfinite(counts).any() and not np.isfinite(angle).any():
            return Minutes(start, local_seconds(t, self.timezone), hr, steps)
        return Minutes(start, local_seconds(t, self.timezone), hr, steps, counts, angle)

    def _windows(self, unit: Unit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start (ns), RMSSD (ms, NaN if undefined) and "usable" of the day's HRV windows.

        Usable: no quality flag that leaves RMSSD undefined
        (``night_hrv.usable_quality``); the flags that blank only frequency,
        DFA or SampEn features do not count against a window.

        One value per window start: a window stored by the server and by a
        gateway (mode switched mid-window) counts once, with the server's value.
        """
        # from noon of the day before: a sleep period may start in that evening
        flux = self._range(
            self._noon_before(unit.start_ns, 1),
            unit.end_ns,
            f'r._measurement == "hrv_window" and r.participant == "{unit.participant}"'
            ' and (r._field == "rmssd_ms" or r._field == "quality")',
        ) + (
            " |> map(fn: (r) => ({t: int(v: r._time), f: r._field, v: string(v: r._value),"
            ' s: if exists r.source then r.source else ""}))'
            ' |> group() |> keep(columns: ["t", "f", "v", "s"])'
        )
        by_window: dict[int, dict[str, dict[str, str]]] = {}
        for t_text, f, v, s in self._rows(flux, ("t", "f", "v", "s")):
            by_window.setdefault(int(t_text), {}).setdefault(s, {})[f] = v
        starts: list[int] = []
        rmssd: list[float] = []
        usable: list[bool] = []
        for t in sorted(by_window):
            sources = by_window[t]
            point = sources.get("") or sources[min(sources)]
            if "quality" not in point:
                continue
            starts.append(t)
            rmssd.append(float(point["rmssd_ms"]) if point.get("rmssd_ms") else math.nan)
            usable.append(usable_quality(point["quality"].split(",")))
        return (
            np.array(starts, dtype=np.int64),
            np.array(rmssd, dtype=np.float64),
            np.array(usable, dtype=bool),
        )

    def _stored_days(
        self, participant: str, start_ns: int, end_ns: int
    ) -> dict[dt.date, dict[str, float]]:
        """:data:`HISTORY_FIELDS` of this participant's stored ``daily`` points, by local date."""
        names = " or ".join(f'r._field == "{n}"' for n in HISTORY_FIELDS)
        flux = self._range(
            start_ns,
            end_ns,
            f'r._measurement == "daily" and r.participant == "{participant}"'
            f' and r.tz == "{self.timezone}" and ({names})',
        ) + (
            " |> map(fn: (r) => ({t: int(v: r._time), f: r._field, v: float(v: r._value)}))"
            ' |> group() |> keep(columns: ["t", "f", "v"])'
        )
        out: dict[dt.date, dict[str, float]] = {}
        for t, f, v in self._rows(flux, ("t", "f", "v")):
            day = self._local_date(int(t))
            out.setdefault(day, {})[f] = float(v)
        return out

    def _local_date(self, ts_ns: int) -> dt.date:
        return dt.datetime.fromtimestamp(ts_ns // NS, self._tz).date()

    def _days_back(self, start_ns: int, days: int) -> int:
        """Local midnight ``days`` calendar days before the local midnight ``start_ns``."""
        day = self._local_date(start_ns) - dt.timedelta(days=days)
        return int(dt.datetime.combine(day, dt.time(), self._tz).timestamp()) * NS

    def daily_inputs(self, unit: Unit) -> DailyInputs:
        """Everything a daily unit depends on, read from storage."""
        hr_t, hr = self._series(unit, "hr", "hr_bpm")
        contact_t, contact = self._series(unit, "hr", "contact")
        act_t, steps = self._series(unit, "activity", "steps")
        rr_t, _ = self._series(unit, "rr", "rr_ms")
        window_t, rmssd, usable = self._windows(unit)
        # contact is absent on sensors without skin contact detection; lost = false.
        lost_times = set(contact_t[contact == 0.0].tolist())
        contact_lost = np.array([t in lost_times for t in hr_t.tolist()], dtype=bool)
        history = self._stored_days(
            unit.participant, self._days_back(unit.start_ns, WINDOW_DAYS), unit.start_ns
        )
        return DailyInputs(
            start_ns=unit.start_ns,
            end_ns=unit.end_ns,
            day=self._local_date(unit.start_ns),
            timezone=self.timezone,
            hr_t=hr_t,
            hr_bpm=hr,
            contact_lost=contact_lost,
            rr_beats=int(rr_t.size),
            act_t=act_t,
            steps=steps,
            window_t=window_t,
            window_rmssd=rmssd,
            window_usable=usable,
            window_s=self.window_s,
            history=history,
            minutes=self._minutes(unit),
        )

    def recent(self, start_ns: int, stop_ns: int) -> dict[str, tuple[list[int], list[int]]]:
        """Per participant, times that touch every unit with raw data in [start, stop).

        Returns (HRV window starts that hold ``rr`` points, hour starts that hold
        ``hr`` or ``activity`` samples), ready for ``DirtyUnits.mark``: the
        crash catch-up (docs/processing.md) marks exactly the units a live
        worker would have marked for that data.
        """
        out: dict[str, tuple[list[int], list[int]]] = {}
        queries = (
            ('r._measurement == "rr" and r._field == "rr_ms"', f"{self.window_s}s", 0),
            (
                '((r._measurement == "hr" and r._field == "hr_bpm") or'
                ' (r._measurement == "activity" and r._field == "steps"))',
                "1h",
                1,
            ),
        )
        for flt, every, slot in queries:
            flux = self._range(start_ns, stop_ns, flt) + (
                ' |> group(columns: ["participant"])'
                f" |> aggregateWindow(every: {every}, fn: count, createEmpty: false,"
                ' timeSrc: "_start")'
                " |> map(fn: (r) => ({p: r.participant, t: int(v: r._time)}))"
                ' |> keep(columns: ["p", "t"])'
            )
            for participant, t in self._rows(flux, ("p", "t")):
                if participant:
                    out.setdefault(participant, ([], []))[slot].append(int(t))
        return out

    def fingerprint(self, unit: Unit) -> tuple[int, float]:
        """What the unit's result depends on, summarised (count, sum of its inputs)."""
        if unit.kind == "hrv":
            _, rr = self._series(unit, "rr", "rr_ms")
            return int(rr.size), float(rr.sum())
        return _daily_fingerprint(self.daily_inputs(unit))

    # -- computing ---------------------------------------------------------------

    def compute(self, unit: Unit) -> UnitResult:
        """Lines to write for ``unit``, the fingerprint of their input and follow-up units."""
        if unit.kind == "hrv":
            return self._hrv(unit)
        return self._daily(unit)

    def _clock_stepped(self, unit: Unit) -> bool:
        """Does a stretch of repeated time (a gateway clock stepped back) overlap the unit?

        ``clock_step`` points (processing.clocksteps) sit at the stretch's start
        and carry its end; a step of up to :data:`CLOCK_STEP_LOOKBACK_NS` back is found.
        """
        flux = self._range(
            unit.start_ns - CLOCK_STEP_LOOKBACK_NS,
            unit.end_ns,
            f'r._measurement == "clock_step" and r.participant == "{unit.participant}"'
            ' and r._field == "until_ns"',
        ) + (
            ' |> group() |> keep(columns: ["_time", "_value"])'
            " |> map(fn: (r) => ({t: int(v: r._time), v: int(v: r._value)}))"
        )
        return any(int(row[1]) >= unit.start_ns for row in self._rows(flux, ("t", "v")))

    def _hrv(self, unit: Unit) -> UnitResult:
        t_ns, rr = self._series(unit, "rr", "rr_ms")
        fp = (int(rr.size), float(rr.sum()))
        # No stored RR (e.g. a gateway in data minimisation mode): nothing is
        # written and nothing deleted, so gateway-computed windows stay as sent.
        row = hrv_window_at(t_ns, rr, start_ns=unit.start_ns, window_s=self.window_s)
        if row is None:
            return UnitResult([], fp)
        if self._clock_stepped(unit):
            # Beats of two timelines share this window: no feature mixes them.
            row = {**row, **dict.fromkeys(HRV_KEYS, None)}
            row["flags"] = int(row["flags"]) | Quality.CLOCK_STEP
            row["quality"] = quality_names(row["flags"])
        fields: dict[str, schema.FieldValue | None] = {k: row[k] for k in HRV_KEYS}
        fields.update(
            n_beats=int(row["n_beats"]),
            n_rr=int(rr.size),
            coverage=row["coverage"],
            kept_fraction=row["kept_fraction"],
            flags=row["flags"],
            quality=",".join(row["quality"]),
        )
        text = schema.line(
            "hrv_window",
            {"study": self.study, "participant": unit.participant, "window": f"{self.window_s}s"},
            fields,
            unit.start_ns,
        )
        # The day's ln_rmssd_night (and its baseline) reads this window: recompute the
        # day; a window after local noon may lie in the next night's sleep period too.
        start, end = self._calendar.day_of(unit.start_ns)
        days = [Unit("daily", unit.participant, start, end)]
        if unit.start_ns >= self._noon_before(end, 1):
            days.append(Unit("daily", unit.participant, *self._calendar.day_of(end)))
        return UnitResult([text] if text else [], fp, days if text else [])

    def _daily(self, unit: Unit) -> UnitResult:
        inputs = self.daily_inputs(unit)
        fp = _daily_fingerprint(inputs)
        if not inputs.has_data():
            return UnitResult([], fp)
        fields: dict[str, schema.FieldValue | None] = dict(daily_fields(inputs))
        text = schema.line(
            "daily",
            {"study": self.study, "participant": unit.participant, "tz": self.timezone},
            fields,
            unit.start_ns,
        )
        return UnitResult([text] if text else [], fp, self._later_days(unit, fields))

    def _later_days(self, unit: Unit, fields: dict[str, schema.FieldValue | None]) -> list[Unit]:
        """Stored later days whose baseline includes this day, if its values changed."""
        stored = self._stored_days(unit.participant, unit.start_ns, unit.end_ns)
        before = next(iter(stored.values()), {})
        if before and same_values(before, baseline_values(fields)):
            return []
        if not before and all(math.isnan(v) for v in baseline_values(fields).values()):
            return []
        horizon = self._days_back(unit.start_ns, -(WINDOW_DAYS + 1))
        later = self._stored_days(unit.participant, unit.end_ns, horizon)
        out = []
        for day in sorted(later):
            start = int(dt.datetime.combine(day, dt.time(), self._tz).timestamp()) * NS
            _, end = self._calendar.day_of(start)
            out.append(Unit("daily", unit.participant, start, end))
        return out


def _daily_fingerprint(inputs: DailyInputs) -> tuple[int, float]:
    """(count, sum) over every input of a daily unit, history included."""
    minutes = inputs.minutes
    parts = [
        inputs.hr_bpm,
        inputs.contact_lost.astype(np.float64),
        inputs.steps,
        inputs.window_rmssd[np.isfinite(inputs.window_rmssd)],
        inputs.window_usable.astype(np.float64),
        np.array([v for day in inputs.history.values() for v in day.values()], dtype=np.float64),
    ]
    if minutes is not None:
        parts += [minutes.hr_bpm, minutes.steps, minutes.counts, minutes.angle_z_deg]
    count = sum(int(p.size) for p in parts) + inputs.rr_beats
    total = float(sum(float(np.nansum(p)) for p in parts))
    return count, total


def stale_fields_possible(unit: Unit, text: str) -> bool:
    """True if ``text`` leaves out a feature an earlier computation may have written.

    Line protocol cannot store NaN, so an undefined feature is simply absent;
    rewriting the point would then keep the old value of that field. The
    caller deletes the old point first in that case.
    """
    fields = text.split(" ")[1]
    keys = {kv.split("=", 1)[0] for kv in fields.split(",")}
    expected = HRV_KEYS if unit.kind == "hrv" else OPTIONAL_FIELDS
    return not keys.issuperset(expected)
