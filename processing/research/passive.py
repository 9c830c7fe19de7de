"""Daily passive summaries of one participant: what self-reports are paired with and
what the report draws.

Sources, all read through :class:`~processing.research.store.Store`:

* ``daily`` points (the service's): ``hr_mean``, ``hr_p5``, ``wear_min``,
  ``steps_total``, ``ln_rmssd_night`` (nocturnal ln RMSSD, docs/storage.md);
* ``hrv_window`` points: ``hrv_windows`` = how many of the day's windows have
  a defined RMSSD (``processing.features.night_hrv.usable_quality``), and
  ``ln_rmssd_night`` for nights without a stored ``daily`` value, from
  ``night_hrv.nocturnal_hrv`` on the windows (what the service computes);
* minute activity (``counts`` and ``steps`` summed per minute by InfluxDB, on
  the participant's local clock) through the offline feature pipeline
  ``processing.features.pipeline.activity_report`` (non-wear removed first;
  Cole-Kripke sleep, main sleep period per noon-to-noon day; activity per
  worn minute; IS/IV/L5/M10/RA): ``sleep_onset``, ``sleep_offset``,
  ``sleep_asleep_min``, ``sleep_in_bed_min``, ``counts_mean_per_min``,
  ``counts_mvpa_min``, ``counts_sedentary_min`` (accelerometer counts, as
  named), ``wear_fraction`` (of minute activity), ``valid``.

Days are local calendar days in the connection's time zone. A sleep period is
filed under the date of its evening (``onset - 12 h``), as in
``processing.features.sleep.main_sleep_by_day``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from processing.features.night_hrv import nocturnal_hrv, usable_quality
from processing.features.pipeline import activity_report

from .store import Bound, Store

DAY_COLUMNS = (
    "hr_mean",
    "hr_p5",
    "wear_min",
    "steps_total",
    "ln_rmssd_night",
    "hrv_windows",
    "counts_mean_per_min",
    "counts_mvpa_min",
    "counts_sedentary_min",
    "sleep_onset",
    "sleep_offset",
    "sleep_asleep_min",
    "sleep_in_bed_min",
    "sleep_efficiency",
)


@dataclass
class Passive:
    """A participant's passive data over a range, summarised per local day."""

    participant: str
    days: pd.DataFrame  # index: date (datetime.date), columns DAY_COLUMNS
    minutes: pd.DataFrame  # local minute, counts, steps (NaN = no data)
    hrv: pd.DataFrame  # the raw hrv_window rows
    summary: dict[str, Any] = field(default_factory=dict)  # IS, IV, RA, SRI, ...


def local_naive(times: pd.Series, tz: Any) -> np.ndarray:
    """UTC timestamps -> local wall-clock ``datetime64[m]`` (what the feature code expects)."""
    local = times.dt.tz_convert(tz).dt.tz_localize(None)
    return local.to_numpy().astype("datetime64[m]")


def _window_s(hrv: pd.DataFrame) -> float:
    """The windows' length from their ``window`` tag (``"300s"``); 300 s if absent."""
    tags = hrv["window"].dropna().unique() if "window" in hrv else []
    return float(str(tags[0]).rstrip("s")) if len(tags) == 1 else 300.0


def passive_days(
    store: Store, participant: str, *, start: Bound | None, stop: Bound | None
) -> Passive:
    """Daily passive summary; the night before ``start`` is included for sleep."""
    lo, hi = store.bounds(start, stop)
    tz = store.connection.tz
    lo_ext = lo - 86_400 * 1_000_000_000
    daily = store.frame_ns("daily", lo, hi, [participant])
    hrv = store.frame_ns("hrv_window", lo, hi, [participant])
    counts = store.aggregate(
        "activity", "counts", every="1m", fn="sum", participant=participant, start=lo_ext, stop=hi
    )
    steps = store.aggregate(
        "activity", "steps", every="1m", fn="sum", participant=participant, start=lo_ext, stop=hi
    )
    minutes = pd.DataFrame(
        {"minute": local_naive(counts["time"], tz), "counts": counts["value"].to_numpy()}
    )
    if len(steps):
        s = pd.Series(steps["value"].to_numpy(), index=local_naive(steps["time"], tz))
        minutes["steps"] = s.reindex(minutes["minute"].to_numpy()).to_numpy()
    else:
        minutes["steps"] = np.nan

    table: dict[Any, dict[str, Any]] = {}

    def row(day: Any) -> dict[str, Any]:
        return table.setdefault(day, dict.fromkeys(DAY_COLUMNS, np.nan))

    for rec in daily.to_dict("records"):
        r = row(rec["time"].tz_convert(tz).date())
        for key in ("hr_mean", "hr_p5", "wear_min", "steps_total", "ln_rmssd_night"):
            v = rec.get(key)
            r[key] = float(v) if v is not None and v is not pd.NA else np.nan
    if len(hrv):
        usable = hrv["quality"].fillna("").map(lambda q: usable_quality(str(q).split(",")))
        good = hrv[usable.astype(bool)]
        by_day = good.groupby(good["time"].dt.tz_convert(tz).dt.date)["rmssd_ms"]
        for day, n in by_day.count().items():
            row(day)["hrv_windows"] = int(n)
        # nights without a stored daily value (e.g. a gateway that sends only
        # windows): the service's function on the stored windows
        start_s = local_naive(hrv["time"], tz).astype("datetime64[s]").astype(np.int64)
        rmssd = pd.to_numeric(hrv.get("rmssd_ms"), errors="coerce")
        nights = nocturnal_hrv(
            start_s.astype(np.float64),
            np.asarray(rmssd, dtype=np.float64),
            usable.to_numpy(dtype=bool),
            window_s=_window_s(hrv),
        )
        for day64, night in nights.items():
            r = row(pd.Timestamp(day64).date())
            if not np.isfinite(r["ln_rmssd_night"]):
                r["ln_rmssd_night"] = night.ln_rmssd_night
    summary: dict[str, Any] = {}
    if len(minutes):
        rep = activity_report(
            minutes["minute"].to_numpy(),
            minutes["counts"].to_numpy(dtype=np.float64),
            minutes["steps"].to_numpy(dtype=np.float64),
        )
        summary = rep["summary"]
        for d in rep["days"]:
            day = pd.Timestamp(d["date"]).date()
            r = row(day)
            for key in ("counts_mean_per_min", "counts_mvpa_min", "counts_sedentary_min"):
                r[key] = d[key]
            r["wear_fraction_minutes"] = d["wear_fraction"]
            for key in ("sleep_onset", "sleep_offset"):
                r[key] = d[key]
            for key in ("sleep_asleep_min", "sleep_in_bed_min", "sleep_efficiency"):
                r[key] = d[key]
    first = pd.Timestamp(lo, tz="UTC").tz_convert(tz).date()
    last = (pd.Timestamp(hi - 1, tz="UTC").tz_convert(tz)).date()
    days = pd.DataFrame.from_dict(table, orient="index")
    if len(days):
        days = days.sort_index()
        days = days[(days.index >= first - pd.Timedelta(days=1)) & (days.index <= last)]
    return Passive(participant, days, minutes, hrv, summary)


def sleep_periods(p: Passive) -> pd.DataFrame:
    """Main sleep periods: ``night`` (evening date), ``onset``, ``offset`` (local naive),
    ``asleep_min``."""
    if not len(p.days):
        return pd.DataFrame(columns=["night", "onset", "offset", "asleep_min"])
    d = p.days.dropna(subset=["sleep_onset"])
    return pd.DataFrame(
        {
            "night": list(d.index),
            "onset": pd.to_datetime(d["sleep_onset"]),
            "offset": pd.to_datetime(d["sleep_offset"]),
            "asleep_min": d["sleep_asleep_min"].astype(float),
        }
    ).reset_index(drop=True)
