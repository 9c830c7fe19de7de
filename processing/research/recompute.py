"""Offline recompute: the service's stored features, again, from exported raw data.

The processing service computes one *unit* at a time (``processing.featurejobs``):
an HRV window of ``window_s`` seconds aligned to the Unix epoch, or one local
calendar day. This module does the same orchestration on DataFrames (from
:class:`processing.research.store.Store` or read back from an export) and calls
the **same pure feature functions**:

* ``hrv_window``: for each window [s, s + W) holding RR beats (all devices,
  sorted by time then value), ``processing.features.hrv.hrv_windows`` on the
  beat times t - s (seconds) with ``origin_s = 0``; plus ``n_rr`` (stored
  intervals), ``flags`` and ``quality`` (comma-separated flag names).
* ``daily``: for each local day [d, d + 1) with HR or step samples,
  ``processing.completeness.daily_completeness`` and, over valid samples
  (``hr_bpm > 0`` and contact not reported lost), ``processing.features.
  heart_rate.daily_hr`` on seconds since local midnight (clipped to
  86 399.999 s on a 25-hour day, as the service does).

Each window/day only sees its own raw data, exactly as the service's query
does, so ``recompute(export) == stored`` is a test of the whole chain
(tests/integration/test_research_recompute.py). :func:`feature_lines` turns the
results into line protocol with ``processing.schema.line`` (e.g. to backfill
after a feature change).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from processing import schema
from processing.completeness import daily_completeness
from processing.features.heart_rate import daily_hr
from processing.features.hrv import HRV_KEYS, hrv_windows
from processing.windows import DayCalendar

from . import columns

NS = 1_000_000_000
_LAST_SECOND_OF_DAY = 86_399.999


def _t_ns(df: pd.DataFrame) -> np.ndarray:
    return df["time"].astype("int64").to_numpy()


def hrv_window_frame(rr: pd.DataFrame, *, window_s: int = 300) -> pd.DataFrame:
    """``hrv_window`` rows (store layout) from raw ``rr`` rows of any participants."""
    rows: list[dict[str, object]] = []
    window_ns = window_s * NS
    for participant, group in rr.groupby("participant", sort=True):
        t = _t_ns(group)
        v = group["rr_ms"].to_numpy(dtype=np.float64)
        order = np.lexsort((v, t))
        t, v = t[order], v[order]
        starts = t - t % window_ns
        for start in np.unique(starts):
            sel = starts == start
            row = _hrv_unit(int(start), t[sel], v[sel], window_s)
            if row is not None:
                row.update(participant=str(participant), window=f"{window_s}s")
                rows.append(row)
    return _frame("hrv_window", rows)


def _hrv_unit(
    start_ns: int, t_ns: np.ndarray, rr_ms: np.ndarray, window_s: int
) -> dict[str, object] | None:
    t_s = (t_ns - start_ns).astype(np.float64) / NS
    win = hrv_windows(t_s, rr_ms, window_s=float(window_s), origin_s=0.0)
    if len(win) == 0:
        return None
    first = win.rows()[0]
    row: dict[str, object] = {k: first[k] for k in HRV_KEYS}
    row.update(
        time=start_ns,
        n_beats=int(first["n_beats"]),
        n_rr=int(rr_ms.size),
        coverage=first["coverage"],
        kept_fraction=first["kept_fraction"],
        flags=int(win.flags[0]),
        quality=",".join(first["quality"]),
    )
    return row


def daily_frame(
    hr: pd.DataFrame, rr: pd.DataFrame, activity: pd.DataFrame, *, timezone: str = "UTC"
) -> pd.DataFrame:
    """``daily`` rows (store layout) from raw ``hr``, ``rr`` and ``activity`` rows."""
    calendar = DayCalendar(timezone)
    rows: list[dict[str, object]] = []
    people = sorted(set(hr["participant"]) | set(activity["participant"]))
    for participant in people:
        for start, _end, parts in _days(calendar, participant, hr, rr, activity):
            row = _daily_unit(start, *parts)
            if row is not None:
                row.update(time=start, participant=participant, tz=timezone)
                rows.append(row)
    return _frame("daily", rows)


def _days(
    calendar: DayCalendar,
    participant: str,
    hr: pd.DataFrame,
    rr: pd.DataFrame,
    activity: pd.DataFrame,
) -> Iterator[tuple[int, int, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]]:
    mine = [df[df["participant"] == participant] for df in (hr, rr, activity)]
    stamps = np.concatenate([_t_ns(mine[0]), _t_ns(mine[2])])
    bounds = sorted({calendar.day_of(int(t)) for t in np.unique(stamps // (3600 * NS)) * 3600 * NS})
    # hour starts find every day; a day is kept only if it really holds samples
    for start, end in bounds:
        parts = tuple(df[(_t_ns(df) >= start) & (_t_ns(df) < end)] for df in mine)
        yield start, end, (parts[0], parts[1], parts[2])


def _daily_unit(
    start_ns: int, hr: pd.DataFrame, rr: pd.DataFrame, activity: pd.DataFrame
) -> dict[str, object] | None:
    hr = hr.sort_values("time", kind="stable")
    hr_t = _t_ns(hr)
    hr_bpm = hr["hr_bpm"].astype("float64").to_numpy()
    contact = hr["contact"]
    lost_times = set(hr_t[(contact == False).fillna(False).to_numpy()].tolist())  # noqa: E712
    contact_lost = np.array([t in lost_times for t in hr_t.tolist()], dtype=bool)
    steps = activity["steps"].dropna().astype("float64").to_numpy()
    if hr_bpm.size == 0 and steps.size == 0:
        return None
    row: dict[str, object] = dict(daily_completeness(hr_t, hr_bpm, contact_lost, len(rr), steps))
    valid = (hr_bpm > 0) & ~contact_lost
    if np.any(valid):
        elapsed_s = np.minimum((hr_t[valid] - start_ns) / NS, _LAST_SECOND_OF_DAY)
        for summary in daily_hr(elapsed_s, hr_bpm[valid]).values():
            row.update(summary)
    return row


def _frame(measurement: str, rows: list[dict[str, object]]) -> pd.DataFrame:
    cols = columns.columns(measurement)
    df = pd.DataFrame.from_records(rows, columns=cols)
    kinds = columns.kinds(measurement)
    df["time"] = pd.to_datetime(df["time"].astype("int64"), unit="ns", utc=True)
    for col, kind in kinds.items():
        if kind == "int":
            df[col] = df[col].astype("Int64")
        elif kind == "float":
            df[col] = df[col].astype("float64")
        elif kind == "str":
            df[col] = df[col].fillna("").astype(object)
    return df.sort_values(["time", "participant"], kind="stable").reset_index(drop=True)


def feature_lines(measurement: str, df: pd.DataFrame, study: str) -> list[str]:
    """Line protocol for ``hrv_window`` or ``daily`` rows (NaN/null fields left out)."""
    tags = columns.TAGS[measurement]
    fields = [name for name, _ in columns.FIELDS[measurement]]
    out = []
    for rec in df.to_dict("records"):
        values: dict[str, schema.FieldValue | None] = {}
        for name in fields:
            v = rec.get(name)
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                continue
            values[name] = v if isinstance(v, str) else _number(v)
        tag_values = {"study": study, **{t: str(rec[t]) for t in tags}}
        text = schema.line(measurement, tag_values, values, int(rec["time"].value))
        if text:
            out.append(text)
    return out


def _number(value: object) -> int | float:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)  # type: ignore[arg-type]
