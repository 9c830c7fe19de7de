"""Time bounds, Flux CSV parsing, Open mHealth points, SVG, settings and progress."""

from __future__ import annotations

import argparse
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from processing.research import flux, omh, svg
from processing.research.progress import Progress
from processing.research.settings import ConfigError, connection_from_args

OSLO = ZoneInfo("Europe/Oslo")


def test_bounds_are_local_days_and_exact_datetimes() -> None:
    start = flux.parse_bound("2025-11-01", OSLO)
    end = flux.parse_bound("2025-11-01", OSLO, end=True)
    assert flux.rfc3339(start) == "2025-10-31T23:00:00Z"
    assert end - start == 86_400 * 10**9
    # 2025-03-30 is 23 hours long in Oslo
    assert (
        flux.parse_bound("2025-03-30", OSLO, end=True) - flux.parse_bound("2025-03-30", OSLO)
        == 23 * 3600 * 10**9
    )
    assert flux.parse_bound("2025-11-01T00:00:00.000001Z", OSLO) == 1761955200000001000
    assert flux.rfc3339(1761955200000001000) == "2025-11-01T00:00:00.000001Z"
    with pytest.raises(ValueError):
        flux.parse_bound("tomorrow", OSLO)
    days = flux.local_day_starts(start, start + 3 * 86_400 * 10**9, OSLO, days=2)
    assert [flux.rfc3339(d) for d in days] == ["2025-10-31T23:00:00Z", "2025-11-02T23:00:00Z"]


def test_flux_csv_tables_with_different_headers() -> None:
    rows = [
        ["", "result", "table", "_time", "hr_bpm"],
        ["", "_result", "0", "2025-11-01T00:00:00.000000001Z", "60"],
        [],
        ["", "result", "table", "_time", "hr_bpm", "contact"],
        ["", "_result", "1", "2025-11-01T00:00:01Z", "61", "false"],
    ]
    recs = list(flux.csv_records(rows))
    assert recs[1] == {"_time": "2025-11-01T00:00:01Z", "hr_bpm": "61", "contact": "false"}
    df = flux.to_frame(recs, {"time": "time", "hr_bpm": "int", "contact": "bool"})
    assert df["time"].astype("int64").tolist() == [1761955200000000001, 1761955201000000000]
    assert df["hr_bpm"].tolist() == [60, 61]
    assert df["contact"].isna().tolist() == [True, False]


def test_ids_and_names_are_checked_before_reaching_flux() -> None:
    with pytest.raises(ValueError):
        flux.check_ids(['p" or true'], "participant")
    with pytest.raises(ValueError):
        flux.check_name("hr) |> drop(", "field")


def test_open_mhealth_points() -> None:
    df = pd.DataFrame(
        {
            "time": pd.to_datetime([1761955200015625000, 1761955201000000000], utc=True),
            "participant": "p-1",
            "device": "d-1",
            "rr_ms": [984.375, 1000.0],
        }
    )
    points = list(omh.data_points("rr", df, "pilot"))
    body = points[0]["body"]
    assert body["rr_interval"] == {"value": 984.375, "unit": "ms"}
    assert body["effective_time_frame"]["time_interval"] == {
        "start_date_time": "2025-10-31T23:59:59.03125Z",
        "end_date_time": "2025-11-01T00:00:00.015625Z",
    }
    assert points[0]["header"]["schema_id"] == {
        "namespace": "omh",
        "name": "rr-interval",
        "version": "1.0",
    }
    # creation_date_time is when the point was created in storage, not the sample time
    assert points[0]["header"]["creation_date_time"] != "2025-11-01T00:00:00.015625Z"
    provenance = points[0]["header"]["acquisition_provenance"]
    assert provenance["source_creation_date_time"] == "2025-11-01T00:00:00.015625Z"
    again = next(omh.data_points("rr", df, "pilot", created="2026-01-01T00:00:00Z"))
    assert again["header"]["creation_date_time"] == "2026-01-01T00:00:00Z"
    assert points[0]["header"]["id"] == again["header"]["id"]
    hr = df.rename(columns={"rr_ms": "hr_bpm"}).assign(hr_bpm=[0, 61], contact=[True, True])
    out = list(omh.data_points("hr", hr, "pilot"))
    assert len(out) == 1 and out[0]["body"]["heart_rate"] == {"value": 61, "unit": "beats/min"}
    json.dumps(out)
    with pytest.raises(ValueError):
        list(omh.data_points("activity", df, "pilot"))


def test_official_omh_examples_sort_our_validator() -> None:
    """The validator used on exports accepts the official shouldPass examples
    and refuses every shouldFail one (so it can fail)."""
    from tests.unit.features_data import require
    from tests.unit.omh_schemas import validator

    data = require("openmhealth") / "official-test-data" / "omh"
    for name, version in omh.SCHEMAS.values():
        folder = data / name / version
        assert folder.is_dir(), f"the official repository has no {name} {version}"
        check = validator(f"{name}-{version}.json")
        passing = sorted((folder / "shouldPass").glob("*.json"))
        failing = sorted((folder / "shouldFail").glob("*.json"))
        assert passing and failing
        for path in passing:
            assert check.is_valid(json.loads(path.read_text())), path
        for path in failing:
            assert not check.is_valid(json.loads(path.read_text())), path


def test_open_mhealth_points_validate_against_the_official_schemas() -> None:
    from tests.unit.omh_schemas import check_data_point, validator

    t_ns = [1761955200015625000, 1761955201000000000]
    rr = pd.DataFrame(
        {
            "time": pd.to_datetime(t_ns, utc=True),
            "participant": "p-1",
            "device": "d-1",
            "rr_ms": [984.375, 1000.0],
        }
    )
    hr = rr.drop(columns="rr_ms").assign(hr_bpm=[60, 61], contact=[True, True])
    points = [*omh.data_points("rr", rr, "pilot"), *omh.data_points("hr", hr, "pilot")]
    assert len(points) == 4
    for point in points:
        check_data_point(json.loads(json.dumps(point)))
    bad = json.loads(json.dumps(points[0]))
    bad["header"]["creation_date_time"] = "2025-11-01 00:00"
    assert not validator("data-point-1.0.json").is_valid(bad)
    bad = json.loads(json.dumps(points[0]))
    bad["body"]["rr_interval"]["unit"] = "s"
    assert not validator("rr-interval-1.0.json").is_valid(bad["body"])


def test_svg_charts_are_well_formed_xml() -> None:
    nan = float("nan")
    charts = [
        svg.line_chart(
            "HR <daily>",
            ["a", "b", "c"],
            [("hr", [60.0, nan, 62.0])],
            band=([nan, 58.0, 59.0], [nan, 63.0, 64.0]),
            unit="bpm",
        ),
        svg.line_chart("empty", [], []),
        svg.actogram("act", ["d1", "d2"], [[0.0, 5.0, nan], [1.0, 2.0, 3.0]]),
        svg.timeline("sleep", ["n1"], [[(4.5, 13.0)]]),
        svg.heatmap("wear", ["d1"], [[0.0, 0.5, 1.0, nan]], col_labels=["0", "1", "2", "3"]),
        svg.bland_altman("ba", [7.0, 8.0], [0.5, 0.7], bias=0.6, loa_low=0.3, loa_high=0.9),
    ]
    for text in charts:
        root = ET.fromstring(text)
        assert (
            root.tag.endswith("svg") and root.find("{http://www.w3.org/2000/svg}title") is not None
        )
    assert "&lt;daily&gt;" in charts[0]
    assert charts[0].count("baseline-band") == 1


def _args(**kw: object) -> argparse.Namespace:
    names = ("config", "url", "org", "bucket", "token_file", "study", "timezone")
    return argparse.Namespace(**{n: kw.get(n) for n in names})


def test_settings_precedence_and_secret_hygiene(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("URL", "ORG", "BUCKET", "TOKEN"):
        monkeypatch.delenv(f"WELLSENSE_INFLUX_{k}", raising=False)
    monkeypatch.delenv("WELLSENSE_STUDY", raising=False)
    monkeypatch.delenv("WELLSENSE_TIMEZONE", raising=False)
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o600)
    cfg = tmp_path / "processing.toml"
    cfg.write_text(
        '[service]\nstudy = "pilot"\n[influx]\nurl = "http://db:8086"\norg = "o"\n'
        f'bucket = "b"\ntoken_file = "{token}"\n[features]\ntimezone = "Europe/Oslo"\n'
        '[mqtt]\nurl = "mqtts://x"\n'
    )
    conn = connection_from_args(_args(config=cfg, bucket="other"))
    assert (conn.url, conn.bucket, conn.study, conn.timezone) == (
        "http://db:8086",
        "other",
        "pilot",
        "Europe/Oslo",
    )
    assert conn.token == "s3cret" and "s3cret" not in repr(conn)
    monkeypatch.setenv("WELLSENSE_STUDY", "trial")
    assert connection_from_args(_args(config=cfg)).study == "trial"
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        connection_from_args(_args(config=cfg))
    with pytest.raises(ConfigError, match="no url"):
        connection_from_args(_args(study="x"))


def test_progress_shows_count_rate_eta_and_rows_on_its_stream() -> None:
    out = io.StringIO()
    p = Progress(20, title="export", stream=out)
    for i in range(20):
        p.update(f"p-1 day {i}", rows=10)
    p.close()
    text = out.getvalue()
    assert "export" in text and "20/20" in text and "200 rows" in text
    assert "chunk/s" in text or "s/chunk" in text  # the rate; ETA is "<" in tqdm's [a<b]
    assert "<" in text
    silent = io.StringIO()
    q = Progress(5, title="export", stream=silent, enabled=False)
    q.update("p-1", 3)
    q.close()
    assert silent.getvalue() == "" and q.rows == 3


def test_column_specs_match_the_storage_schema() -> None:
    from processing import featurejobs, schema
    from processing.research import columns

    for m in columns.RAW:
        tags, fields = schema.MEASUREMENTS[m]
        assert ("study", *columns.TAGS[m]) == tags
        assert tuple(name for name, _ in columns.FIELDS[m]) == fields
    assert columns.DAILY_HR_KEYS == featurejobs.DAILY_HR_KEYS
