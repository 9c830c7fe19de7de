"""The participant report: one self-contained HTML page (inline SVG, inline CSS, no
scripts, no external assets), safe to e-mail or archive with a study record.

Sections (each an element with the id shown, which the tests look for):

* ``summary``: range, days with data, mean wear, circadian summary (IS, IV, RA, SRI);
* ``hr-trend``: daily mean HR (``daily.hr_mean``) with the personal-baseline band;
* ``hrv-trend``: daily median RMSSD of good 5-min windows with the baseline band;
* ``actogram``: double-plotted half-hour activity counts (day d | day d + 1);
* ``sleep``: main sleep periods per night (18:00 to 12:00);
* ``adherence``: wear minutes per hour of each day (valid HR samples), per-day wear;
* ``alerts``: the alerts raised for the participant in the range;
* ``self-report``: agreement and bias per construct (Bland-Altman plot and table)
  and the other answers next to the day's passive features.

The baseline band is mean +/- 1 SD of the ``window_days`` days before each day
(``processing.features.baseline.rolling_baseline``: the day itself excluded,
shown once ``min_days`` valid days exist).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from processing.features.baseline import MIN_DAYS, WINDOW_DAYS, rolling_baseline

from . import svg
from .agreement import agreement
from .passive import Passive, passive_days, sleep_periods
from .selfreport import CONSTRUCTS, agreement_table, pair, with_scores
from .store import Bound, Store

SECTIONS = (
    "summary",
    "hr-trend",
    "hrv-trend",
    "actogram",
    "sleep",
    "adherence",
    "alerts",
    "self-report",
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:800px;color:#222;background:#fff}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #ccc;
padding-bottom:3px;margin-top:28px}p.note{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.kpi{display:inline-block;margin:4px 18px 4px 0}
.kpi b{display:block;font-size:20px}
"""


def _days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _col(days: pd.DataFrame, dates: Sequence[dt.date], name: str) -> list[float]:
    if name not in days:
        return [math.nan] * len(dates)
    return [float(days.at[d, name]) if d in days.index else math.nan for d in dates]


def _baseline(dates: Sequence[dt.date], values: list[float], min_days: int) -> tuple[Any, Any]:
    b = rolling_baseline(
        np.array(dates, dtype="datetime64[D]"),
        np.array(values, dtype=np.float64),
        window_days=WINDOW_DAYS,
        min_days=min_days,
    )
    return list(b.mean - b.sd), list(b.mean + b.sd)


def _table(df: pd.DataFrame, left: Sequence[str] = ()) -> str:
    if not len(df):
        return '<p class="note">none</p>'
    head = "".join(
        f'<th class="{"l" if c in left else ""}">{escape(str(c))}</th>' for c in df.columns
    )
    rows = []
    for rec in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, rec, strict=True):
            text = ("" if math.isnan(v) else f"{v:.2f}") if isinstance(v, float) else str(v)
            cells.append(f'<td class="{"l" if c in left else ""}">{escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _wear_heatmap(
    store: Store, participant: str, lo: int, hi: int, dates: Sequence[dt.date]
) -> list[list[float]]:
    minutes = store.aggregate(
        "hr",
        "hr_bpm",
        every="1m",
        fn="count",
        participant=participant,
        start=lo,
        stop=hi,
        where="r._value > 0",
    )
    grid = {d: [0.0] * 24 for d in dates}
    if len(minutes):
        local = minutes["time"].dt.tz_convert(store.connection.tz)
        keys = pd.DataFrame({"d": local.dt.date, "h": local.dt.hour})
        for (d, h), n in keys.value_counts().items():
            if d in grid:
                grid[d][int(h)] = min(n / 60.0, 1.0)
    return [grid[d] for d in dates]


def build_report(
    store: Store,
    participant: str,
    *,
    start: Bound,
    stop: Bound,
    baseline_min_days: int = MIN_DAYS,
    generated: dt.datetime | None = None,
) -> str:
    """The HTML text of one participant's report."""
    tz = store.connection.tz
    lo, hi = store.bounds(start, stop)
    first = pd.Timestamp(lo, tz="UTC").tz_convert(tz).date()
    last = pd.Timestamp(hi - 1, tz="UTC").tz_convert(tz).date()
    dates = _days_between(first, last)
    labels = [d.strftime("%m-%d") for d in dates]
    passive = passive_days(store, participant, start=lo, stop=hi)
    days = passive.days
    parts: list[str] = []

    # -- summary
    wear = _col(days, dates, "wear_min")
    with_data = sum(1 for w in wear if math.isfinite(w) and w > 0)
    finite_wear = [w for w in wear if math.isfinite(w)]
    mean_wear = sum(finite_wear) / len(dates) / 60 if dates else math.nan
    s = passive.summary
    kpis = [
        ("days with data", f"{with_data} / {len(dates)}"),
        ("mean wear / day", f"{mean_wear:.1f} h" if finite_wear else "-"),
        ("interdaily stability", _num(s.get("is"))),
        ("intradaily variability", _num(s.get("iv"))),
        ("relative amplitude", _num(s.get("ra"))),
        ("sleep regularity index", _num(s.get("sri"))),
    ]
    parts.append(
        '<section id="summary"><h2>Summary</h2>'
        + "".join(f'<span class="kpi"><b>{escape(v)}</b>{escape(k)}</span>' for k, v in kpis)
        + "</section>"
    )

    # -- trends with baseline bands
    for sid, title, col, unit in (
        ("hr-trend", "Heart rate: daily mean", "hr_mean", "bpm"),
        (
            "hrv-trend",
            "HRV: nocturnal ln RMSSD (00-06 h, usable 5-min windows)",
            "ln_rmssd_night",
            "ln ms",
        ),
    ):
        values = _col(days, dates, col)
        band = _baseline(dates, values, baseline_min_days)
        chart = svg.line_chart(title, labels, [(col, values)], band=band, unit=f"({unit})")
        parts.append(
            f'<section id="{sid}"><h2>{escape(title)}</h2>{chart}<p class="note">Shaded: '
            f"personal baseline, mean &plusmn; 1 SD of the previous {WINDOW_DAYS} days "
            f"(shown once {baseline_min_days} days with data exist).</p></section>"
        )

    # -- actogram (half-hour bins of the minute counts)
    bins = _half_hours(passive, dates)
    parts.append(
        '<section id="actogram"><h2>Actogram (double plot)</h2>'
        + svg.actogram("Activity counts per 30 min; each row: day | next day", labels, bins)
        + '<p class="note">Grey ticks: no data.</p></section>'
    )

    # -- sleep timeline
    periods = sleep_periods(passive)
    spans: list[list[tuple[float, float]]] = []
    for d in dates:
        origin = pd.Timestamp(d) + pd.Timedelta(hours=18)
        spans.append(
            [
                (
                    (r.onset - origin).total_seconds() / 3600,
                    (r.offset - origin).total_seconds() / 3600,
                )
                for r in periods.itertuples()
                if r.night == d
            ]
        )
    asleep = [
        _num(days.at[d, "sleep_asleep_min"] / 60 if d in days.index else math.nan) for d in dates
    ]
    parts.append(
        '<section id="sleep"><h2>Sleep timeline</h2>'
        + svg.timeline("Main sleep period per night (18:00 to 12:00)", labels, spans)
        + '<p class="note">Cole-Kripke sleep/wake on worn minutes; hours asleep per night: '
        + escape(", ".join(f"{lab} {a}" for lab, a in zip(labels, asleep, strict=True)))
        + "</p></section>"
    )

    # -- adherence heatmap
    cells = _wear_heatmap(store, participant, lo, hi, dates)
    right = [f"{w / 60:.1f} h" if math.isfinite(w) else "no data" for w in wear]
    parts.append(
        '<section id="adherence"><h2>Wear time and adherence</h2>'
        + svg.heatmap(
            "Share of each hour with a valid HR sample per minute",
            labels,
            cells,
            col_labels=[f"{h:02d}" for h in range(24)],
            right_labels=right,
        )
        + "</section>"
    )

    # -- alerts
    alerts = store.frame_ns("alert", lo, hi, [participant])
    if len(alerts):
        alerts = alerts.assign(time=alerts["time"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M"))[
            ["time", "rule", "severity", "message", "value"]
        ]
    parts.append(
        '<section id="alerts"><h2>Alerts</h2>'
        + _table(alerts, left=("time", "rule", "severity", "message"))
        + "</section>"
    )

    # -- self-report comparison
    parts.append(_self_report_section(store, passive, lo, hi))

    stamp = (generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    c = store.connection
    title = f"WellSense report: {participant}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="note">Study {escape(c.study)}, '
        f"{first} to {last} ({escape(c.timezone)}); generated {stamp}. "
        "Pseudonymous: no names or contact details are stored or shown.</p>"
        + "".join(parts)
        + "</body></html>\n"
    )


def _num(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(f) else f"{f:.2f}"


def _half_hours(passive: Passive, dates: Sequence[dt.date]) -> list[list[float]]:
    m = passive.minutes
    out = {d: [math.nan] * 48 for d in dates}
    if len(m):
        ts = pd.to_datetime(m["minute"])
        frame = pd.DataFrame(
            {"d": ts.dt.date, "b": ts.dt.hour * 2 + ts.dt.minute // 30, "c": m["counts"]}
        )
        for (d, b), total in frame.groupby(["d", "b"])["c"].sum().items():
            if d in out:
                out[d][int(b)] = float(total)
    return [out[d] for d in dates]


def _self_report_section(store: Store, passive: Passive, lo: int, hi: int) -> str:
    tz = store.connection.tz
    answers = with_scores(store.frame_ns("self_report", lo, hi, [passive.participant]))
    pairs = pair(answers, passive, tz)
    html = ['<section id="self-report"><h2>Self-report compared with sensing</h2>']
    if not len(pairs):
        return html[0] + '<p class="note">No self-reports in this range.</p></section>'
    table = agreement_table(pairs)
    mine = table[table["participant"] == passive.participant] if len(table) else table
    for c in CONSTRUCTS:
        g = pairs[(pairs["construct"] == c.name) & pairs["sensed"].notna()]
        if not len(g):
            continue
        x, y = g["value"].to_numpy(float), g["sensed"].to_numpy(float)
        a = agreement(x, y)
        html.append(
            svg.bland_altman(
                f"{c.name}: self-report minus sensed ({c.instrument}/{c.item} vs {c.sensed})",
                list((x + y) / 2),
                list(x - y),
                bias=a.bias,
                loa_low=a.loa_low,
                loa_high=a.loa_high,
                unit=c.unit,
            )
        )
    if len(mine):
        cols = [
            "construct",
            "n",
            "bias",
            "bias_ci_low",
            "bias_ci_high",
            "sd_diff",
            "loa_low",
            "loa_high",
            "r_within",
            "proportional_slope",
        ]
        html.append("<h3>Agreement and bias</h3>" + _table(mine[cols], left=("construct",)))
        html.append(
            '<p class="note">bias = mean(self - sensed), positive = over-reporting; limits of '
            "agreement = bias &plusmn; 1.96 SD of the differences (Bland &amp; Altman 1986); "
            "r_within = Pearson r of self-report and sensing over days.</p>"
        )
    other = pairs[pairs["construct"] == ""]
    other = other[~other["item"].str.match(r"^q\d+$")]  # item-level PHQ-9 answers: see total
    if len(other):
        show = other.assign(date=other["date"].astype(str))[
            [
                "date",
                "instrument",
                "item",
                "value",
                "hr_mean",
                "ln_rmssd_night",
                "steps_total",
                "sleep_last_night_h",
            ]
        ]
        html.append("<h3>Other answers and the day's passive features</h3>")
        html.append(_table(show.head(62), left=("date", "instrument", "item")))
    html.append("</section>")
    return "".join(html)
