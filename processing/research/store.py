"""The query API: participants x measurements x time range -> pandas DataFrames.

>>> from processing.research.store import Store                      # doctest: +SKIP
>>> store = Store.from_env()          # WELLSENSE_INFLUX_* and WELLSENSE_STUDY
>>> hr = store.frame("hr", start="2025-11-20", stop="2025-11-26", participants=["p-7f3a9c"])
>>> hrv = store.frame("hrv_window", start="2025-11-20", stop="2025-11-26")
>>> for participant, chunk_ns, df in store.chunks("rr", start="2025-01-01", stop="2025-06-30"):
...     ...                           # one participant-day at a time: bounded memory

Wide frames have ``time`` (UTC, nanoseconds), the measurement's tags
(``participant``, ``device``, ...) and one column per field with a fixed
dtype (:mod:`processing.research.columns`); absent fields are nulls.
Self-reports come in long form (``time, participant, instrument, item, value``).
``start`` and ``stop`` accept ns integers, ``YYYY-MM-DD`` local dates (``stop``
inclusive) or ISO 8601 date-times; see :func:`processing.research.flux.parse_bound`.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from . import columns, flux
from .settings import Connection, connection_from_args

log = logging.getLogger(__name__)

Bound = int | str
EPOCH_START_NS = 0


class Store:
    """Read access to one study in one bucket.

    Args:
        connection: where the data is (see :mod:`processing.research.settings`).
        client: an existing ``influxdb_client.InfluxDBClient`` (one is made otherwise).
    """

    def __init__(self, connection: Connection, *, client: Any = None) -> None:
        self.connection = connection
        if client is None:
            from influxdb_client import InfluxDBClient

            client = InfluxDBClient(
                url=connection.url,
                token=connection.token,
                org=connection.org,
                timeout=int(connection.timeout_s * 1000),
            )
        self._client = client
        self._query = client.query_api()

    @classmethod
    def from_env(cls, **overrides: Any) -> Store:
        """A store configured from ``WELLSENSE_*`` variables (and keyword overrides)."""
        names = ("config", "url", "org", "bucket", "token_file", "study", "timezone")
        args = argparse.Namespace(**{n: overrides.get(n) for n in names})
        return cls(connection_from_args(args))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level -----------------------------------------------------------------

    def bounds(self, start: Bound | None, stop: Bound | None) -> tuple[int, int]:
        """(start_ns, stop_ns); ``None`` means the epoch / now."""
        tz = self.connection.tz
        lo = EPOCH_START_NS if start is None else _bound(start, tz, end=False)
        if stop is None:
            hi = pd.Timestamp.now(tz="UTC").value + flux.DAY_NS
        else:
            hi = _bound(stop, tz, end=True)
        if hi <= lo:
            raise ValueError("the range is empty: stop must be after start")
        return lo, hi

    def rows(self, query: str) -> Iterator[dict[str, str]]:
        """Records of a Flux query, streamed."""
        try:
            csv_rows = self._query.query_csv(query, org=self.connection.org, dialect=flux.dialect())
            yield from flux.csv_records(csv_rows)
        except flux.QueryError:
            raise
        except Exception as exc:  # the client raises ApiException, urllib3 and OS errors
            raise flux.QueryError(_describe(exc), status=getattr(exc, "status", None)) from None

    def flux_frame(self, query: str, kinds: dict[str, str] | None = None) -> pd.DataFrame:
        """Any Flux query as a DataFrame (strings, ``time`` parsed) unless ``kinds`` is given."""
        return flux.to_frame(self.rows(query), kinds)

    # -- discovery -----------------------------------------------------------------

    def participants(self, start: Bound | None = None, stop: Bound | None = None) -> list[str]:
        """Pseudonyms with any raw or self-report data in the range, sorted."""
        lo, hi = self.bounds(start, stop)
        c = self.connection
        query = (
            'import "influxdata/influxdb/schema"\n'
            f'schema.tagValues(bucket: "{c.bucket}", tag: "participant",'
            f' predicate: (r) => r.study == "{c.study}",'
            f" start: {flux.rfc3339(lo)}, stop: {flux.rfc3339(hi)})"
        )
        return sorted({r["_value"] for r in self.rows(query) if r.get("_value")})

    def extent(
        self,
        measurements: Sequence[str],
        participants: Sequence[str] | None,
        lo: int,
        hi: int,
    ) -> tuple[int, int] | None:
        """[first, last + 1 ns) of the data of ``measurements`` inside [lo, hi), or None.

        Chunked reads plan over this, so an open range ("everything") does not
        become one query per day since 1970.
        """
        c = self.connection
        names = [flux.check_name(m, "measurement") for m in measurements]
        people = flux.check_ids(participants, "participant") if participants else None
        sel = (
            f'from(bucket: "{c.bucket}")'
            f" |> range(start: {flux.rfc3339(lo)}, stop: {flux.rfc3339(hi)})"
            f' |> filter(fn: (r) => r.study == "{c.study}")'
            f" |> filter(fn: (r) => {flux.any_of('_measurement', names)})"
        )
        if people:
            sel += f" |> filter(fn: (r) => {flux.any_of('participant', people)})"
        times: list[int] = []
        for fn in ("first", "last"):
            # first()/last() per series are pushed down to the storage engine
            query = f"{sel} |> {fn}() |> map(fn: (r) => ({{t: int(v: r._time)}}))"
            times += [int(r["t"]) for r in self.rows(query)]
        if not times:
            return None
        return min(times), max(times) + 1

    # -- measurements ---------------------------------------------------------------

    def frame(
        self,
        measurement: str,
        *,
        start: Bound | None = None,
        stop: Bound | None = None,
        participants: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """One measurement over the range in one query (use :meth:`chunks` for big ranges)."""
        lo, hi = self.bounds(start, stop)
        return self.frame_ns(measurement, lo, hi, participants, fields)

    def frame_ns(
        self,
        measurement: str,
        lo: int,
        hi: int,
        participants: Sequence[str] | None,
        fields: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Like :meth:`frame` with the range in ns since the epoch: [lo, hi)."""
        c = self.connection
        people = flux.check_ids(participants, "participant") if participants else None
        if measurement == "self_report":
            sel = flux.select(
                bucket=c.bucket,
                study=c.study,
                measurement=measurement,
                start_ns=lo,
                stop_ns=hi,
                participants=people,
                fields=fields,
            )
            query = sel + ' |> keep(columns: ["_time", "participant", "instrument", "_field",'
            query += ' "_value"]) |> group()'
            kinds = {"time": "time", "participant": "str", "instrument": "str"}
            kinds.update({"item": "str", "value": "float"})
            return flux.to_frame(self.rows(query), kinds)
        if measurement not in columns.FIELDS:
            known = ", ".join([*columns.FIELDS, "self_report"])
            raise ValueError(f"unknown measurement {measurement!r}: one of {known}")
        kinds = columns.kinds(measurement)
        if fields:
            unknown = sorted(set(fields) - set(kinds))
            if unknown:
                raise ValueError(f"{measurement} has no field {unknown[0]!r}")
            keep = {"time", *columns.TAGS[measurement], *fields}
            kinds = {k: v for k, v in kinds.items() if k in keep}
        sel = flux.select(
            bucket=c.bucket,
            study=c.study,
            measurement=measurement,
            start_ns=lo,
            stop_ns=hi,
            participants=people,
            fields=fields,
        )
        return flux.to_frame(self.rows(flux.wide(sel)), kinds)

    def chunks(
        self,
        measurement: str,
        *,
        start: Bound | None = None,
        stop: Bound | None = None,
        participants: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
        chunk_days: int = 1,
    ) -> Iterator[tuple[str, int, pd.DataFrame]]:
        """(participant, chunk start ns, frame) per participant and ``chunk_days`` local days.

        Only one chunk is in memory at a time; empty chunks are skipped.
        """
        lo, hi = self.bounds(start, stop)
        people = list(participants) if participants else self.participants(lo, hi)
        span = self.extent([measurement], people, lo, hi) if people else None
        if span is None:
            return
        lo, hi = max(lo, span[0]), min(hi, span[1])
        for participant, a, b in self.plan(people, lo, hi, chunk_days):
            df = self.frame_ns(measurement, a, b, [participant], fields)
            if len(df):
                yield participant, a, df

    def plan(
        self, participants: Sequence[str], lo: int, hi: int, chunk_days: int
    ) -> list[tuple[str, int, int]]:
        """The (participant, start_ns, stop_ns) work units of a chunked read."""
        starts = flux.local_day_starts(lo, hi, self.connection.tz, max(1, chunk_days))
        edges = [*starts, hi]
        return [(p, a, b) for p in participants for a, b in itertools.pairwise(edges)]

    # -- conveniences ---------------------------------------------------------------

    def self_reports(self, **kw: Any) -> pd.DataFrame:
        """Questionnaire and EMA answers in long form."""
        return self.frame("self_report", **kw)

    def aggregate(
        self,
        measurement: str,
        field: str,
        *,
        every: str,
        fn: str,
        participant: str,
        start: Bound | None = None,
        stop: Bound | None = None,
        where: str | None = None,
    ) -> pd.DataFrame:
        """``aggregateWindow`` of one field of one participant: columns ``time`` (window
        start, UTC) and ``value``; empty windows are left out. ``where`` is an extra Flux
        predicate on ``r`` (ours, not user input)."""
        if fn not in ("sum", "mean", "count", "max", "min", "median"):
            raise ValueError(f"unsupported aggregate {fn!r}")
        if not re.match(r"^\d+[smhd]$", every):
            raise ValueError(f"bad window {every!r}")
        lo, hi = self.bounds(start, stop)
        c = self.connection
        sel = flux.select(
            bucket=c.bucket,
            study=c.study,
            measurement=measurement,
            start_ns=lo,
            stop_ns=hi,
            participants=flux.check_ids([participant], "participant"),
            fields=[field],
        )
        if where:
            sel += f" |> filter(fn: (r) => {where})"
        query = (
            sel + " |> toFloat() |> group()"
            f" |> aggregateWindow(every: {every}, fn: {fn}, createEmpty: false,"
            ' timeSrc: "_start") |> keep(columns: ["_time", "_value"])'
        )
        return flux.to_frame(self.rows(query), {"time": "time", "value": "float"})


def _bound(value: Bound, tz: Any, *, end: bool) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, pd.Timestamp):
        return int(value.value)
    return flux.parse_bound(str(value), tz, end=end)


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status is not None:
        body = str(getattr(exc, "body", "") or getattr(exc, "reason", ""))[:300]
        return f"InfluxDB answered HTTP {status}: {body}"
    return f"cannot query InfluxDB: {type(exc).__name__}: {str(exc)[:300]}"
