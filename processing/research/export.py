"""Cohort export to CSV, Parquet or Open mHealth JSON, streamed by participant and time chunk.

Memory is bounded by one chunk (one participant x ``chunk_days`` local days
of one measurement), whatever the length of the study: chunks are read with
:meth:`Store.chunks` and appended to the open file, then dropped.

Files, one per measurement, in ``out_dir``:

* ``csv``: ``<measurement>.csv``, header once, ``time`` as RFC 3339 UTC with
  nanoseconds (``2025-11-01T01:00:00.015625Z``), empty cell = null;
* ``parquet``: ``<measurement>.parquet``, one fixed Arrow schema (``time``
  timestamp[ns, UTC], nullable int64/bool/double/string), a row group per
  ``row_group_rows`` rows;
* ``omh``: ``heart-rate.json`` / ``rr-interval.json``, one JSON array of Open
  mHealth data points (:mod:`processing.research.omh`), written as it goes;
* ``omh-ndjson``: ``heart-rate.ndjson`` / ``rr-interval.ndjson``, the same data
  points one per line (newline-delimited JSON), for exports too large to load
  as one array: a reader streams them line by line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

import pandas as pd

from . import columns, flux, omh
from .progress import Progress
from .store import Bound, Store

FORMATS = ("csv", "parquet", "omh", "omh-ndjson")
OMH_FORMATS = ("omh", "omh-ndjson")
DEFAULT_MEASUREMENTS = ("hr", "rr", "activity", "device_status", "hrv_window", "daily")


class Sink(Protocol):
    path: Path

    def write(self, df: pd.DataFrame) -> None: ...

    def close(self) -> None: ...


def _kinds(measurement: str) -> dict[str, str]:
    if measurement == "self_report":
        return {
            "time": "time",
            "participant": "str",
            "instrument": "str",
            "item": "str",
            "value": "float",
        }
    return columns.kinds(measurement)


class CsvSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("w", encoding="utf-8", newline="")
        self._header = True

    def write(self, df: pd.DataFrame) -> None:
        out = df.copy()
        out["time"] = omh.iso(out["time"].astype("int64").to_numpy())
        out.to_csv(self._file, index=False, header=self._header, lineterminator="\n")
        self._header = False

    def close(self) -> None:
        self._file.close()


class ParquetSink:
    def __init__(self, path: Path, measurement: str, row_group_rows: int = 200_000) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.path = path
        types = {
            "time": pa.timestamp("ns", tz="UTC"),
            "int": pa.int64(),
            "float": pa.float64(),
            "bool": pa.bool_(),
            "str": pa.string(),
        }
        self.schema = pa.schema([pa.field(c, types[k]) for c, k in _kinds(measurement).items()])
        self._writer = pq.ParquetWriter(path, self.schema)
        self._buffer: list[pd.DataFrame] = []
        self._rows = 0
        self.row_group_rows = row_group_rows

    def write(self, df: pd.DataFrame) -> None:
        self._buffer.append(df)
        self._rows += len(df)
        if self._rows >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        df = pd.concat(self._buffer, ignore_index=True)
        table = self._pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
        self._writer.write_table(table)
        self._buffer, self._rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


class OmhSink:
    """Open mHealth data points as one JSON array, or one per line (``ndjson``)."""

    def __init__(
        self, path: Path, measurement: str, study: str, created: str, *, ndjson: bool = False
    ) -> None:
        self.path = path
        self.measurement = measurement
        self.study = study
        self.created = created
        self.ndjson = ndjson
        self._file: TextIO = path.open("w", encoding="utf-8")
        if not ndjson:
            self._file.write("[")
        self._first = True

    def write(self, df: pd.DataFrame) -> None:
        for point in omh.data_points(self.measurement, df, self.study, self.created):
            if not self.ndjson:
                self._file.write("\n" if self._first else ",\n")
            self._file.write(json.dumps(point, separators=(",", ":")))
            if self.ndjson:
                self._file.write("\n")
            self._first = False

    def close(self) -> None:
        if not self.ndjson:
            self._file.write("\n]\n")
        self._file.close()


def sink_for(
    fmt: str, out_dir: Path, measurement: str, study: str, created: str | None = None
) -> Sink:
    if fmt == "csv":
        return CsvSink(out_dir / f"{measurement}.csv")
    if fmt == "parquet":
        return ParquetSink(out_dir / f"{measurement}.parquet", measurement)
    if fmt in OMH_FORMATS:
        if measurement not in omh.SCHEMAS:
            raise ValueError(f"Open mHealth export covers hr and rr, not {measurement!r}")
        ndjson = fmt == "omh-ndjson"
        name = omh.SCHEMAS[measurement][0] + (".ndjson" if ndjson else ".json")
        created = created or omh.now_iso()
        return OmhSink(out_dir / name, measurement, study, created, ndjson=ndjson)
    raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")


@dataclass
class ExportSummary:
    files: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    participants: set[str] = field(default_factory=set)  # those with rows in a file


def export(
    store: Store,
    out_dir: Path,
    *,
    fmt: str,
    measurements: Sequence[str] = DEFAULT_MEASUREMENTS,
    participants: Sequence[str] | None = None,
    start: Bound | None = None,
    stop: Bound | None = None,
    chunk_days: int = 1,
    progress: Progress | None = None,
) -> ExportSummary:
    """Export ``measurements`` for ``participants`` (default: everyone with data)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    lo, hi = store.bounds(start, stop)
    people = list(participants) if participants else store.participants(lo, hi)
    span = store.extent(measurements, people, lo, hi) if people else None
    plan = store.plan(people, max(lo, span[0]), min(hi, span[1]), chunk_days) if span else []
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary()
    created = omh.now_iso()  # the points' creation_date_time: InfluxDB keeps no write time
    sinks = {m: sink_for(fmt, out_dir, m, store.connection.study, created) for m in measurements}
    if progress is not None:
        progress.total = max(len(plan) * len(measurements), 1)
    try:
        for participant, a, b in plan:
            label = f"{participant} {pd.Timestamp(a, tz=store.connection.tz).date()}"
            for m in measurements:
                df = store.frame_ns(m, a, b, [participant])
                if len(df):
                    sinks[m].write(df)
                    summary.participants.add(participant)
                summary.rows[m] = summary.rows.get(m, 0) + len(df)
                summary.chunks += 1
                if progress is not None:
                    progress.update(label, len(df))
    finally:
        for m, sink in sinks.items():
            sink.close()
            summary.files[m] = sink.path
        if progress is not None:
            progress.close()
    _write_empty_headers(fmt, summary)
    return summary


def _write_empty_headers(fmt: str, summary: ExportSummary) -> None:
    """A CSV of a measurement without rows still gets its header line."""
    if fmt != "csv":
        return
    for m, path in summary.files.items():
        if summary.rows.get(m, 0) == 0:
            path.write_text(",".join(_kinds(m)) + "\n", encoding="utf-8")


def read_csv(path: Path, measurement: str) -> pd.DataFrame:
    """Read an exported CSV back with the store's dtypes (ns times kept)."""
    kinds = _kinds(measurement)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return flux.to_frame(raw.to_dict("records"), kinds)
