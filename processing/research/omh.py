"""Open mHealth data points for heart rate and RR intervals.

Each sample becomes one data point ``{"header": ..., "body": ...}``:

* header (``omh:header-1.2``): ``id`` (a UUID5 of study, participant,
  device, measurement and time, so a re-export gives the same ids),
  ``creation_date_time`` (header 1.2: "the date time this data point was
  created on the system where data is stored"; InfluxDB keeps no write time,
  so this is the time of the export, the same for every point of one export),
  ``schema_id`` ``{"namespace": "omh", "name", "version"}``, ``user_id`` (the
  pseudonym) and ``acquisition_provenance`` ``{"source_name": "WellSense",
  "source_creation_date_time": <sample time>, "modality": "sensed"}``;
* body of ``omh:heart-rate:2.0``: ``heart_rate {"value", "unit": "beats/min"}``
  and ``effective_time_frame {"date_time"}`` (the notification time);
* body of ``omh:rr-interval:1.0`` (the only version the official repository
  has): ``rr_interval {"value", "unit": "ms"}`` and
  ``effective_time_frame {"time_interval": {"start_date_time", "end_date_time"}}``:
  the interval ends at the stored beat time and starts ``rr_ms`` before it.

Date-times are RFC 3339 in UTC with as many fractional digits as needed to be
exact. Samples without skin contact (``contact`` false) or ``hr_bpm`` 0 are
not heart-rate measurements and are left out of the heart-rate file.

References: Open mHealth schemas, https://github.com/openmhealth/schemas
(``schema/omh/heart-rate-2.0.json``, ``rr-interval-1.0.json``, ``header-1.2.json``);
IEEE 1752.1-2021 (time frame, unit value).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

SCHEMAS = {"hr": ("heart-rate", "2.0"), "rr": ("rr-interval", "1.0")}
_NAMESPACE = uuid.UUID("0b9c3e5e-5d3a-4f47-9d1e-3c6f1d8a7e21")  # WellSense export ids


def iso(ns: np.ndarray) -> list[str]:
    """RFC 3339 UTC strings, exact to the nanosecond, trailing zeros trimmed."""
    text = np.datetime_as_string(ns.astype("datetime64[ns]"), unit="ns")
    return [s.rstrip("0").rstrip(".") + "Z" for s in text]


def now_iso() -> str:
    """The current time as an RFC 3339 UTC string (an export's creation time)."""
    return iso(np.array([time.time_ns()]))[0]


def data_points(
    measurement: str, df: pd.DataFrame, study: str, created: str | None = None
) -> Iterator[dict[str, Any]]:
    """Open mHealth data points of ``hr`` or ``rr`` rows (store layout).

    ``created`` is the header's ``creation_date_time`` (RFC 3339; default: now).
    """
    if measurement not in SCHEMAS:
        raise ValueError(f"Open mHealth export covers hr and rr, not {measurement!r}")
    name, version = SCHEMAS[measurement]
    created = created or now_iso()
    if measurement == "hr":
        keep = df["hr_bpm"].fillna(0) > 0
        if "contact" in df:
            keep &= df["contact"].fillna(True).astype(bool)
        df = df[keep]
    t_ns = df["time"].astype("int64").to_numpy()
    ends = iso(t_ns)
    if measurement == "rr":
        rr = df["rr_ms"].to_numpy(dtype=np.float64)
        starts = iso(t_ns - np.round(rr * 1_000_000).astype(np.int64))
        values: list[float | int] = rr.tolist()
    else:
        values = df["hr_bpm"].astype("int64").tolist()
    people = df["participant"].tolist()
    devices = df["device"].tolist()
    for i, end in enumerate(ends):
        key = f"{study}/{people[i]}/{devices[i]}/{measurement}/{int(t_ns[i])}"
        header = {
            "id": str(uuid.uuid5(_NAMESPACE, key)),
            "creation_date_time": created,
            "schema_id": {"namespace": "omh", "name": name, "version": version},
            "user_id": people[i],
            "acquisition_provenance": {
                "source_name": "WellSense",
                "source_creation_date_time": end,
                "modality": "sensed",
            },
        }
        body: dict[str, Any]
        if measurement == "rr":
            body = {
                "rr_interval": {"value": values[i], "unit": "ms"},
                "effective_time_frame": {
                    "time_interval": {"start_date_time": starts[i], "end_date_time": end}
                },
            }
        else:
            body = {
                "heart_rate": {"value": values[i], "unit": "beats/min"},
                "effective_time_frame": {"date_time": end},
            }
        yield {"header": header, "body": body}
