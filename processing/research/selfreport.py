"""Self-reports: CSV import into ``self_report``, pairing with passive features, agreement.

**Storage** (docs/storage.md): measurement ``self_report``, tags ``study``,
``participant``, ``instrument``; one float field per item; the time the answer
was given. Answers of one instrument given at the same moment are one point,
so importing the same file twice writes the same points (idempotent). Values
are always stored as floats, so an item never changes field type (InfluxDB
rejects a float written to a field that holds integers).

**CSV import**: a header with ``participant,time,instrument,item,value``;
``time`` is ISO 8601 (with an offset, or local time in the study zone);
``participant`` and ``instrument`` follow the wire contract's id pattern
(``[a-z0-9][a-z0-9_-]*``), ``item`` is ``[A-Za-z_][A-Za-z0-9_]*``, ``value`` a
finite number. Every problem is reported with its line number and nothing is
written unless the whole file is valid.

**MQTT**: a study app may send the same answers as they are given (wire
stream ``selfreport``, docs/wire.md); processing stores them with
:func:`processing.schema.self_report_lines`, which :func:`to_lines` is, so
both ways give the same points.

**Scoring**: instruments in :data:`SCORES` get a derived item (PHQ-9: ``total``
= sum of ``q1``..``q9``, 0-27, only when all nine are answered; Kroenke,
Spitzer & Williams 2001, J Gen Intern Med 16:606-613).

**Pairing**: each answer is paired with the passive summary
(:mod:`processing.research.passive`) of its local day; constructs in
:data:`CONSTRUCTS` measure the same quantity on both sides and get agreement
indices (:mod:`processing.research.agreement`):

* ``sleep_duration_h``: ``sleep_diary/sleep_hours`` vs the sensed minutes asleep
  / 60 of the main sleep period that ended most recently before the answer
  (within 24 h): "last night";
* ``active_min``: ``activity_ema/active_min`` vs sensed minutes of
  moderate-to-vigorous activity (``counts_mvpa_min``) on the answer's local day.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from collector import wire
from processing import schema

from .agreement import agreement, pooled_agreement, repeated_measures_correlation
from .passive import Passive

NS = 1_000_000_000
HEADER = ("participant", "time", "instrument", "item", "value")
_ITEM = wire.SELFREPORT_ITEM_PATTERN  # the wire contract's item names
MAX_ERRORS_SHOWN = 20


class SelfReportError(ValueError):
    """The CSV cannot be imported; ``errors`` lists every problem with its line."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f"\n... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        super().__init__("\n".join(shown) + more)


#: One answered item (participant, ts_ns, instrument, item, value); defined with
#: the storage schema, which the ``selfreport`` wire stream shares.
Answer = schema.SelfReportAnswer


@dataclass(frozen=True, slots=True)
class Construct:
    """A self-report item and the sensed feature that measures the same thing."""

    name: str
    instrument: str
    item: str
    sensed: str  # column of the passive day table
    scale: float  # sensed value x scale is in the self-report's unit
    window: str  # "last_night" or "same_day"
    unit: str


CONSTRUCTS: tuple[Construct, ...] = (
    Construct(
        "sleep_duration_h",
        "sleep_diary",
        "sleep_hours",
        "sleep_asleep_min",
        1 / 60,
        "last_night",
        "h",
    ),
    Construct(
        "active_min", "activity_ema", "active_min", "counts_mvpa_min", 1.0, "same_day", "min"
    ),
)

SCORES: dict[str, tuple[str, tuple[str, ...]]] = {
    "phq9": ("total", tuple(f"q{i}" for i in range(1, 10))),
}

PAIRED_FEATURES = (
    "hr_mean",
    "ln_rmssd_night",
    "wear_min",
    "steps_total",
    "counts_mvpa_min",
    "counts_mean_per_min",
)


# --------------------------------------------------------------------------- import


def parse_csv(text: str, *, tz: ZoneInfo, source: str = "<csv>") -> list[Answer]:
    """Validate a self-report CSV; raise :class:`SelfReportError` listing every bad line."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise SelfReportError([f"{source}: empty file"]) from None
    missing = [h for h in HEADER if h not in header]
    if missing:
        raise SelfReportError([f"{source}:1: header lacks {', '.join(missing)}"])
    pos = {h: header.index(h) for h in HEADER}
    answers: list[Answer] = []
    errors: list[str] = []
    for n, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            answers.append(_answer(row, pos, tz))
        except ValueError as exc:
            errors.append(f"{source}:{n}: {exc}")
    if errors:
        raise SelfReportError(errors)
    return answers


def _answer(row: list[str], pos: dict[str, int], tz: ZoneInfo) -> Answer:
    if len(row) < len(pos):
        raise ValueError(f"expected {len(pos)} columns, got {len(row)}")
    cell = {k: row[i].strip() for k, i in pos.items()}
    try:
        participant = wire.check_id(cell["participant"], "participant")
        instrument = wire.check_id(cell["instrument"], "instrument")
    except wire.WireError as exc:
        raise ValueError(str(exc)) from None
    if not _ITEM.match(cell["item"]):
        raise ValueError(f"item {cell['item']!r}: letters, digits and '_' only")
    try:
        value = float(cell["value"])
    except ValueError:
        raise ValueError(f"value {cell['value']!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"value {cell['value']!r} is not finite")
    try:
        when = dt.datetime.fromisoformat(cell["time"].replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {cell['time']!r} is not ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    ts_ns = (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000
    return Answer(participant, ts_ns, instrument, cell["item"], value)


def to_lines(answers: Iterable[Answer], study: str) -> list[str]:
    """One ``self_report`` point per (participant, instrument, time); later rows win.

    The same function (:func:`processing.schema.self_report_lines`) stores
    answers that arrive over MQTT (wire stream ``selfreport``).
    """
    return schema.self_report_lines(answers, study)


def read_csv_file(path: Path, *, tz: ZoneInfo) -> list[Answer]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SelfReportError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_csv(text, tz=tz, source=str(path))


# --------------------------------------------------------------------------- scoring


def with_scores(answers: pd.DataFrame) -> pd.DataFrame:
    """Add derived rows (e.g. PHQ-9 ``total``) to long-form answers."""
    extra = []
    for instrument, (name, items) in SCORES.items():
        sub = answers[(answers["instrument"] == instrument) & answers["item"].isin(items)]
        for (participant, time), g in sub.groupby(["participant", "time"]):
            if set(g["item"]) >= set(items):
                extra.append(
                    {
                        "time": time,
                        "participant": participant,
                        "instrument": instrument,
                        "item": name,
                        "value": float(g["value"].sum()),
                    }
                )
    if not extra:
        return answers
    return pd.concat([answers, pd.DataFrame(extra)], ignore_index=True).sort_values(
        ["participant", "time", "instrument", "item"], kind="stable", ignore_index=True
    )


# --------------------------------------------------------------------------- pairing


def pair(answers: pd.DataFrame, passive: Passive, tz: ZoneInfo) -> pd.DataFrame:
    """Each answer of ``passive.participant`` with its day's passive features.

    Columns: ``time``, ``date`` (local), ``instrument``, ``item``, ``value``,
    :data:`PAIRED_FEATURES`, ``sleep_last_night_h`` and, for construct items,
    ``construct`` and ``sensed`` (in the self-report's unit; NaN if not sensed).
    """
    mine = answers[answers["participant"] == passive.participant].copy()
    if not len(mine):
        return pd.DataFrame(
            columns=[
                "time",
                "participant",
                "date",
                "instrument",
                "item",
                "value",
                "construct",
                "sensed",
                *PAIRED_FEATURES,
                "sleep_last_night_h",
            ]
        )
    local = mine["time"].dt.tz_convert(tz)
    mine["date"] = local.dt.date
    days = passive.days
    for feat in PAIRED_FEATURES:
        mine[feat] = [
            float(days.at[d, feat]) if d in days.index and feat in days else np.nan
            for d in mine["date"]
        ]
    nights = _nights(passive)
    local_naive = local.dt.tz_localize(None)
    last_night_min = np.array([_last_night(nights, t) for t in local_naive], dtype=np.float64)
    mine["sleep_last_night_h"] = last_night_min / 60
    mine["construct"] = ""
    mine["sensed"] = np.nan
    for c in CONSTRUCTS:
        sel = (mine["instrument"] == c.instrument) & (mine["item"] == c.item)
        mine.loc[sel, "construct"] = c.name
        if c.window == "last_night":  # the night's value, whatever ``sensed`` names
            mine.loc[sel, "sensed"] = last_night_min[sel.to_numpy()] * c.scale
        else:
            mine.loc[sel, "sensed"] = [
                float(days.at[d, c.sensed]) * c.scale
                if d in days.index and c.sensed in days
                else np.nan
                for d in mine.loc[sel, "date"]
            ]
    return mine.reset_index(drop=True)


def _nights(passive: Passive) -> list[tuple[pd.Timestamp, float]]:
    d = passive.days
    if "sleep_offset" not in d:
        return []
    out = []
    for _, r in d.dropna(subset=["sleep_offset"]).iterrows():
        out.append((pd.Timestamp(r["sleep_offset"]), float(r["sleep_asleep_min"])))
    return sorted(out)


def _last_night(nights: Sequence[tuple[pd.Timestamp, float]], when: pd.Timestamp) -> float:
    best = math.nan
    for offset, asleep in nights:
        if offset <= when and when - offset <= pd.Timedelta(hours=24):
            best = asleep
    return best


def agreement_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per participant and construct: the :class:`~processing.research.agreement.Agreement`
    indices; plus one ``participant == "*"`` row per construct with the repeated-measures
    correlation (``r_rm``, ``r_rm_p``) and pooled limits of agreement."""
    rows = []
    usable = pairs[(pairs["construct"] != "") & pairs["sensed"].notna() & pairs["value"].notna()]
    for (construct, participant), g in usable.groupby(["construct", "participant"], sort=True):
        a = agreement(g["value"].to_numpy(), g["sensed"].to_numpy())
        rows.append({"construct": construct, "participant": participant, **a.as_dict()})
    for construct, g in usable.groupby("construct", sort=True):
        rm = repeated_measures_correlation(g["participant"], g["value"], g["sensed"])
        pooled = pooled_agreement(g["participant"], g["value"], g["sensed"])
        rows.append(
            {
                "construct": construct,
                "participant": "*",
                "n": pooled.n_pairs,
                "bias": pooled.bias,
                "sd_diff": pooled.sd_total,
                "loa_low": pooled.loa_low,
                "loa_high": pooled.loa_high,
                "r_rm": rm.r,
                "r_rm_p": rm.p,
                "r_rm_df": rm.df,
            }
        )
    return pd.DataFrame(rows)
