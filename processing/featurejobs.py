"""Compute one feature unit from what InfluxDB holds, with the pure feature functions.

A unit reads its whole input back from the database (never from this
worker's memory), so any worker computes the same result for the same stored
data, and writes it at a deterministic timestamp (the unit's start), so a
recomputation replaces the previous result. See ``docs/processing.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from processing import schema
from processing.completeness import daily_completeness
from processing.features.heart_rate import daily_hr
from processing.features.hrv import HRV_KEYS, hrv_window_at
from processing.windows import NS, Unit

log = logging.getLogger(__name__)

DAILY_HR_KEYS = ("hr_mean", "hr_p5", "hr_p50", "hr_p95")

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

    # -- queries -----------------------------------------------------------------

    def _series(self, unit: Unit, measurement: str, field: str) -> tuple[np.ndarray, np.ndarray]:
        """(t_ns int64, value float64) of one field of a participant, all devices, by time."""
        # Ids are wire-validated ([a-z0-9_-]) and the measurement/field names are
        # ours, so interpolating them into the Flux text is safe.
        flux = (
            f'from(bucket: "{self.bucket}")'
            f" |> range(start: {rfc3339(unit.start_ns)}, stop: {rfc3339(unit.end_ns)})"
            f' |> filter(fn: (r) => r._measurement == "{measurement}" and r.study == "{self.study}"'
            f' and r.participant == "{unit.participant}" and r._field == "{field}")'
            ' |> group() |> keep(columns: ["_time", "_value"])'
            " |> map(fn: (r) => ({t: int(v: r._time), v: float(v: r._value)}))"
            ' |> sort(columns: ["t", "v"])'
        )
        times: list[int] = []
        values: list[float] = []
        for row in self._rows(flux):
            times.append(int(row[0]))
            values.append(float(row[1]))
        return np.array(times, dtype=np.int64), np.array(values, dtype=np.float64)

    def _rows(self, flux: str) -> Iterator[list[str]]:
        header: list[str] | None = None
        for row in self.query_api.query_csv(flux, org=self.org, dialect=_dialect()):
            if not row or all(cell == "" for cell in row):
                continue
            if header is None or row == header:
                header = row
                continue
            named = dict(zip(header, row, strict=False))
            yield [named["t"], named["v"]]

    def fingerprint(self, unit: Unit) -> tuple[int, float]:
        """What the unit's result depends on, summarised (count, sum of main input)."""
        if unit.kind == "hrv":
            _, rr = self._series(unit, "rr", "rr_ms")
            return int(rr.size), float(rr.sum())
        _, hr = self._series(unit, "hr", "hr_bpm")
        _, steps = self._series(unit, "activity", "steps")
        return int(hr.size + steps.size), float(hr.sum() + steps.sum())

    # -- computing ---------------------------------------------------------------

    def compute(self, unit: Unit) -> tuple[list[str], tuple[int, float]]:
        """Lines to write for ``unit`` and the fingerprint of the input they came from."""
        if unit.kind == "hrv":
            return self._hrv(unit)
        return self._daily(unit)

    def _hrv(self, unit: Unit) -> tuple[list[str], tuple[int, float]]:
        t_ns, rr = self._series(unit, "rr", "rr_ms")
        fp = (int(rr.size), float(rr.sum()))
        # No stored RR (e.g. a gateway in data minimisation mode): nothing is
        # written and nothing deleted, so gateway-computed windows stay as sent.
        row = hrv_window_at(t_ns, rr, start_ns=unit.start_ns, window_s=self.window_s)
        if row is None:
            return [], fp
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
        return ([text] if text else []), fp

    def _daily(self, unit: Unit) -> tuple[list[str], tuple[int, float]]:
        hr_t, hr = self._series(unit, "hr", "hr_bpm")
        contact_t, contact = self._series(unit, "hr", "contact")
        _, steps = self._series(unit, "activity", "steps")
        rr_t, _ = self._series(unit, "rr", "rr_ms")
        fp = (int(hr.size + steps.size), float(hr.sum() + steps.sum()))
        if hr.size == 0 and steps.size == 0:
            return [], fp
        # contact is absent on sensors without skin contact detection; lost = false.
        lost_times = set(contact_t[contact == 0.0].tolist())
        contact_lost = np.array([t in lost_times for t in hr_t.tolist()], dtype=bool)
        fields: dict[str, schema.FieldValue | None] = dict(
            daily_completeness(hr_t, hr, contact_lost, int(rr_t.size), steps)
        )
        valid = (hr > 0) & ~contact_lost
        if np.any(valid):
            # daily_hr buckets by local calendar day; every sample of this unit is in
            # one local day, so place them on a day-aligned local clock (a 25-hour
            # DST day's last hour is clipped into it rather than spilling over).
            elapsed_s = np.minimum((hr_t[valid] - unit.start_ns) / NS, 86_399.999)
            for summary in daily_hr(elapsed_s, hr[valid]).values():
                fields.update(summary)
        text = schema.line(
            "daily",
            {"study": self.study, "participant": unit.participant, "tz": self.timezone},
            fields,
            unit.start_ns,
        )
        return ([text] if text else []), fp


def stale_fields_possible(unit: Unit, text: str) -> bool:
    """True if ``text`` leaves out a feature an earlier computation may have written.

    Line protocol cannot store NaN, so an undefined feature is simply absent;
    rewriting the point would then keep the old value of that field. The
    caller deletes the old point first in that case.
    """
    fields = text.split(" ")[1]
    keys = {kv.split("=", 1)[0] for kv in fields.split(",")}
    expected = HRV_KEYS if unit.kind == "hrv" else DAILY_HR_KEYS
    return not keys.issuperset(expected)
