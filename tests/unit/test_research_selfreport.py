"""Self-report CSV import, line protocol, scoring and pairing (no database)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from collector import wire
from processing import schema
from processing.research.passive import Passive
from processing.research.selfreport import (
    SelfReportError,
    agreement_table,
    pair,
    parse_csv,
    to_lines,
    with_scores,
)
from tests.golden import valid_messages

OSLO = ZoneInfo("Europe/Oslo")
CSV = """participant,time,instrument,item,value
p-1,2025-11-02T08:30:00+01:00,sleep_diary,sleep_hours,8
p-1,2025-11-02T21:00:00,mood,mood,7
p-1,2025-11-02T21:00:00,mood,energy,5.5
"""


def test_csv_rows_become_one_float_point_per_instrument_and_time() -> None:
    answers = parse_csv(CSV, tz=OSLO)
    assert [a.value for a in answers] == [8.0, 7.0, 5.5]
    assert (
        answers[1].ts_ns == int(dt.datetime(2025, 11, 2, 20, 0, tzinfo=dt.UTC).timestamp()) * 10**9
    )
    lines = to_lines(answers, "pilot")
    assert lines == [
        "self_report,instrument=mood,participant=p-1,study=pilot energy=5.5,mood=7.0 "
        "1762113600000000000",
        "self_report,instrument=sleep_diary,participant=p-1,study=pilot sleep_hours=8.0 "
        "1762068600000000000",
    ]
    assert to_lines(parse_csv(CSV, tz=OSLO), "pilot") == lines  # deterministic: idempotent


def test_every_bad_line_is_reported_and_nothing_is_accepted() -> None:
    text = CSV + "P 2,2025-11-02,mood,mood,3\np-2,soon,mood,mood,3\np-2,2025-11-02,mood,a b,nan\n"
    with pytest.raises(SelfReportError) as exc:
        parse_csv(text, tz=OSLO, source="x.csv")
    assert [e.split(":")[1] for e in exc.value.errors] == ["5", "6", "7"]
    assert "participant" in exc.value.errors[0] and "ISO 8601" in exc.value.errors[1]
    with pytest.raises(SelfReportError, match="header lacks"):
        parse_csv("who,when\n", tz=OSLO)


def _answers(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": pd.to_datetime([r[0] for r in rows], utc=True),
            "participant": "p-1",
            "instrument": [r[1] for r in rows],
            "item": [r[2] for r in rows],
            "value": [r[3] for r in rows],
        }
    )


def test_phq9_total_only_when_all_items_are_answered() -> None:
    full = [("2025-11-03T09:00Z", "phq9", f"q{i}", 1.0) for i in range(1, 10)]
    partial = [("2025-11-10T09:00Z", "phq9", f"q{i}", 2.0) for i in range(1, 9)]
    scored = with_scores(_answers(full + partial))
    totals = scored[scored["item"] == "total"]
    assert totals["value"].tolist() == [9.0]


def test_pairing_uses_last_night_and_the_same_day() -> None:
    days = pd.DataFrame(
        {
            "counts_mvpa_min": [30.0, 40.0],
            "hr_mean": [60.0, 61.0],
            "sleep_offset": ["2025-11-02 07:00", "2025-11-03 06:30"],
            "sleep_asleep_min": [420.0, 450.0],
        },
        index=[dt.date(2025, 11, 1), dt.date(2025, 11, 2)],
    )
    passive = Passive("p-1", days, pd.DataFrame(), pd.DataFrame())
    answers = _answers(
        [
            ("2025-11-02T07:30Z", "sleep_diary", "sleep_hours", 8.0),  # 08:30 local
            ("2025-11-03T07:30Z", "sleep_diary", "sleep_hours", 8.0),
            ("2025-11-02T20:00Z", "activity_ema", "active_min", 45.0),
            ("2025-11-05T20:00Z", "activity_ema", "active_min", 45.0),  # no sensed day
        ]
    )
    p = pair(answers, passive, OSLO)
    assert p["construct"].tolist() == [
        "sleep_duration_h",
        "sleep_duration_h",
        "active_min",
        "active_min",
    ]
    np.testing.assert_allclose(p["sensed"], [7.0, 7.5, 40.0, np.nan])
    table = agreement_table(p)
    sleep = table[(table.construct == "sleep_duration_h") & (table.participant == "p-1")]
    assert sleep["bias"].item() == pytest.approx(0.75)
    assert sleep["n"].item() == 2


def test_csv_import_and_the_selfreport_wire_stream_store_the_same_points() -> None:
    message = wire.decode(valid_messages()["selfreport"])
    rows = ["participant,time,instrument,item,value"]
    for s in message.samples:
        assert isinstance(s, wire.SelfReportSample)
        when = dt.datetime.fromtimestamp(s.ts_ns / 1e9, dt.UTC).isoformat()
        rows += [f"p-7f3a9c,{when},{s.instrument},{k},{v}" for k, v in s.items.items()]
    from_csv = to_lines(parse_csv("\n".join(rows) + "\n", tz=OSLO), "pilot")
    assert from_csv == schema.message_lines(message)
    assert len(from_csv) == 3


def test_csv_and_wire_accept_the_same_item_names() -> None:
    head = "participant,time,instrument,item,value\np-1,2025-11-02T08:00:00Z,mood,"
    parse_csv(head + "a" * 64 + ",1\n", tz=OSLO)
    with pytest.raises(SelfReportError):
        parse_csv(head + "a" * 65 + ",1\n", tz=OSLO)
