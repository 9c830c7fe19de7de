"""Researcher access against the suite's real InfluxDB: query, export, CLIs, self-reports,
the HTML report in headless Chromium, and every Grafana query.

One module-scoped synthetic study (processing.research.synthetic: 2 participants x 10
days, raw points through the service's own schema code, features through the service's
feature functions) is written once into its own bucket.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from influxdb_client import InfluxDBClient

from processing.admin.influxsetup import DOWNSAMPLE_LOOKBACK, downsample_flux
from processing.admin.settings import InfluxSettings
from processing.research import (
    cli_export,
    cli_query,
    cli_report,
    cli_selfreport,
    export,
    exports_registry,
    recompute,
    report,
    selfreport,
)
from processing.research.settings import Connection
from processing.research.store import Store
from processing.research.synthetic import ACTIVITY_FACTOR, SLEEP_BIAS_H, SyntheticStudy
from processing.writer import InfluxWriter
from wellsense_cli import localservices as ls

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
FIRST, LAST = "2025-11-01", "2025-11-10"


class Study:
    def __init__(self, influx: ls.Influxd, bucket: str, synth: SyntheticStudy) -> None:
        self.influx = influx
        self.bucket = bucket
        self.downsampled = f"{bucket}-1h"
        self.synth = synth
        self.conn = Connection(
            url=influx.url,
            org=influx.org,
            bucket=bucket,
            token=influx.token,
            study=synth.study,
            timezone=synth.timezone,
        )

    def store(self) -> Store:
        return Store(self.conn)

    def env(self) -> dict[str, str]:
        return {
            "WELLSENSE_INFLUX_URL": self.influx.url,
            "WELLSENSE_INFLUX_ORG": self.influx.org,
            "WELLSENSE_INFLUX_BUCKET": self.bucket,
            "WELLSENSE_INFLUX_TOKEN": self.influx.token,
            "WELLSENSE_STUDY": self.synth.study,
            "WELLSENSE_TIMEZONE": self.synth.timezone,
        }


@pytest.fixture(scope="module")
def study(influxd: ls.Influxd) -> Iterator[Study]:
    run = uuid.uuid4().hex[:8]
    bucket = f"research-{run}"
    s = Study(influxd, bucket, SyntheticStudy(study=f"r{run}"))
    with InfluxDBClient(url=influxd.url, token=influxd.token, org=influxd.org) as client:
        created = [
            client.buckets_api().create_bucket(bucket_name=name, org=influxd.org)
            for name in (bucket, s.downsampled)
        ]
    writer = InfluxWriter(url=influxd.url, org=influxd.org, bucket=bucket, token=influxd.token)
    lines = [*s.synth.raw_lines(), *s.synth.alert_lines()]
    for k in range(0, len(lines), 10_000):
        writer.write(lines[k : k + 10_000])
    with s.store() as store:
        hr, rr, act = (store.frame(m) for m in ("hr", "rr", "activity"))
    hrv = recompute.hrv_window_frame(rr)
    daily = recompute.daily_frame(hr, rr, act, timezone=s.synth.timezone)
    writer.write(recompute.feature_lines("hrv_window", hrv, s.synth.study))
    writer.write(recompute.feature_lines("daily", daily, s.synth.study))
    answers = selfreport.parse_csv(s.synth.self_report_csv(), tz=s.conn.tz)
    writer.write(selfreport.to_lines(answers, s.synth.study))
    writer.close()
    _downsample(s)
    try:
        yield s
    finally:
        with (
            contextlib.suppress(Exception),
            InfluxDBClient(url=influxd.url, token=influxd.token, org=influxd.org) as client,
        ):
            for b in created:
                client.buckets_api().delete_bucket(b)


def _downsample(s: Study) -> None:
    """Run the downsampling task's own Flux (``wellsense influx-setup`` installs it)
    once over the study's range instead of its rolling look-back."""
    settings = InfluxSettings(
        url=s.influx.url,
        org=s.influx.org,
        bucket=s.bucket,
        retention_days=0,
        downsampled_bucket=s.downsampled,
        downsampled_retention_days=0,
        downsample_every="1h",
        token=None,
    )
    flux = downsample_flux(settings).split("\n\n", 1)[1]  # without `option task`
    lookback = f"range(start: -{DOWNSAMPLE_LOOKBACK})"
    assert lookback in flux
    flux = flux.replace(lookback, "range(start: 2025-10-31T00:00:00Z, stop: 2025-11-12T00:00:00Z)")
    with InfluxDBClient(url=s.influx.url, token=s.influx.token, org=s.influx.org) as client:
        client.query_api().query(flux)


def _expected(synth: SyntheticStudy) -> dict[str, int]:
    msgs = list(synth.messages())
    return {
        "hr": sum(len(m.samples) for m in msgs if m.stream == "hr"),
        "rr": sum(len(s.rr_ms) for m in msgs if m.stream == "hr" for s in m.samples),
        "activity": sum(len(m.samples) for m in msgs if m.stream == "activity"),
    }


# --------------------------------------------------------------------------- query API


def test_query_api_returns_every_point_with_exact_values(study: Study) -> None:
    expected = _expected(study.synth)
    with study.store() as store:
        assert store.participants() == ["p-alpha", "p-bravo"]
        for m, n in expected.items():
            df = store.frame(m, start=FIRST, stop=LAST)
            assert len(df) == n, m
        rr = store.frame("rr", participants=["p-alpha"], start=FIRST, stop=LAST)
        hr = store.frame("hr", participants=["p-bravo"], fields=["hr_bpm"])
    assert str(rr["time"].dtype) == "datetime64[ns, UTC]"
    assert set(rr["participant"]) == {"p-alpha"}
    assert list(hr.columns) == ["time", "participant", "device", "hr_bpm"]
    # values and ns times equal the wire messages exactly
    sent = [
        (t, r)
        for m in study.synth.messages()
        if m.stream == "hr" and m.participant == "p-alpha"
        for s in m.samples
        for t, r in zip(
            __import__("processing.schema").schema.rr_beat_times_ns(s.ts_ns, s.rr_ms),
            s.rr_ms,
            strict=True,
        )
    ]
    got = list(zip(rr["time"].astype("int64").tolist(), rr["rr_ms"].tolist(), strict=True))
    assert got == sorted(sent)


def test_chunks_cover_the_range_once(study: Study) -> None:
    with study.store() as store:
        whole = store.frame("activity", start=FIRST, stop=LAST)
        parts = list(store.chunks("activity", start=FIRST, stop=LAST, chunk_days=3))
    assert {p for p, _, _ in parts} == {"p-alpha", "p-bravo"}
    assert max(len(df) for _, _, df in parts) <= 3 * 1440
    joined = pd.concat([df for _, _, df in parts]).sort_values(["time", "participant"])
    pd.testing.assert_frame_equal(joined.reset_index(drop=True), whole)


# --------------------------------------------------------------------------- export


def test_parquet_and_csv_exports_read_back_equal_to_the_source(
    study: Study, tmp_path: Path
) -> None:
    measurements = ("hr", "rr", "hrv_window", "daily", "self_report", "device_status")
    with study.store() as store:
        source = {m: store.frame(m, start=FIRST, stop=LAST) for m in measurements}
        for fmt in ("parquet", "csv"):
            summary = export.export(
                store,
                tmp_path / fmt,
                fmt=fmt,
                measurements=measurements,
                start=FIRST,
                stop=LAST,
                chunk_days=3,
            )
            assert summary.chunks == 2 * 4 * len(measurements)  # 10 days in 3-day chunks
    for m in measurements:
        src = source[m].sort_values(["time", "participant"], kind="stable").reset_index(drop=True)
        back = pd.read_parquet(tmp_path / "parquet" / f"{m}.parquet")
        back = back.sort_values(["time", "participant"], kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(back, src, check_dtype=False)
        assert str(back["time"].dtype) == "datetime64[ns, UTC]"
        csv = export.read_csv(tmp_path / "csv" / f"{m}.csv", m)
        pd.testing.assert_frame_equal(
            csv, src.sort_values(["time", "participant"], kind="stable").reset_index(drop=True)
        )


def test_open_mhealth_export_follows_the_schemas(study: Study, tmp_path: Path) -> None:
    with study.store() as store:
        export.export(
            store,
            tmp_path,
            fmt="omh",
            measurements=("hr", "rr"),
            participants=["p-alpha"],
            start="2025-11-01",
            stop="2025-11-01",
        )
        rr = store.frame("rr", participants=["p-alpha"], start="2025-11-01", stop="2025-11-01")
    points = json.loads((tmp_path / "rr-interval.json").read_text())
    assert len(points) == len(rr)
    rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
    first = points[0]
    assert first["header"]["schema_id"] == {
        "namespace": "omh",
        "name": "rr-interval",
        "version": "1.0",
    }
    assert first["header"]["user_id"] == "p-alpha"
    assert {"id", "creation_date_time", "schema_id"} <= set(first["header"])
    assert first["body"]["rr_interval"] == {"value": rr["rr_ms"].iloc[0], "unit": "ms"}
    interval = first["body"]["effective_time_frame"]["time_interval"]
    assert all(rfc3339.match(v) for v in interval.values())
    end = pd.Timestamp(interval["end_date_time"]).value
    start = pd.Timestamp(interval["start_date_time"]).value
    assert end == rr["time"].iloc[0].value
    assert end - start == round(rr["rr_ms"].iloc[0] * 1e6)
    hr = json.loads((tmp_path / "heart-rate.json").read_text())
    assert hr[0]["header"]["schema_id"]["name"] == "heart-rate"
    assert hr[0]["body"]["heart_rate"]["unit"] == "beats/min"
    assert rfc3339.match(hr[0]["body"]["effective_time_frame"]["date_time"])
    assert len({p["header"]["id"] for p in hr}) == len(hr)
    # one creation time per export (InfluxDB keeps no write time), never a sample time
    created = {p["header"]["creation_date_time"] for p in points + hr}
    assert len(created) == 1 and rfc3339.match(created.pop())
    provenance = first["header"]["acquisition_provenance"]
    assert provenance["source_creation_date_time"] == interval["end_date_time"]


def test_open_mhealth_export_validates_and_streams_ndjson(study: Study, tmp_path: Path) -> None:
    """Every exported data point validates against the official Open mHealth
    JSON schemas (data-point 1.0, header 1.2, heart-rate 2.0, rr-interval 1.0),
    and the NDJSON format holds the same points, one per line."""
    from tests.unit.omh_schemas import check_data_point

    with study.store() as store:
        for fmt, sub in (("omh", "json"), ("omh-ndjson", "nd")):
            export.export(
                store,
                tmp_path / sub,
                fmt=fmt,
                measurements=("hr", "rr"),
                participants=["p-alpha"],
                start="2025-11-01",
                stop="2025-11-01",
            )
    for name in ("heart-rate", "rr-interval"):
        array = json.loads((tmp_path / "json" / f"{name}.json").read_text())
        lines = (tmp_path / "nd" / f"{name}.ndjson").read_text().splitlines()
        streamed = [json.loads(line) for line in lines]
        assert array and len(streamed) == len(array)
        assert [p["header"]["id"] for p in streamed] == [p["header"]["id"] for p in array]
        assert [p["body"] for p in streamed] == [p["body"] for p in array]
        for point in array + streamed:
            check_data_point(point)


# --------------------------------------------------------------------------- CLIs


def test_cli_query_and_export(
    study: Study,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in study.env().items():
        monkeypatch.setenv(k, v)
    assert cli_query.main(["participants"]) == 0
    assert capsys.readouterr().out.split() == ["participant", "p-alpha", "p-bravo"]
    args = [
        "daily",
        "-p",
        "p-alpha",
        "--from",
        FIRST,
        "--to",
        LAST,
        "--format",
        "json",
        "--fields",
        "wear_min,hr_mean",
    ]
    assert cli_query.main(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 10 and set(rows[0]) == {"time", "participant", "tz", "wear_min", "hr_mean"}
    whole = cli_query.main(["hr", "--from", FIRST, "--to", LAST])
    one_query = sorted(capsys.readouterr().out.splitlines())
    assert whole == 0 and cli_query.main(["hr", "--from", FIRST, "--to", LAST, "--progress"]) == 0
    chunked = capsys.readouterr()  # participant-weeks under a bar: the same rows
    assert sorted(chunked.out.splitlines()) == one_query and len(one_query) > 1000
    assert "query: 100%" in chunked.err
    assert cli_query.main(["hr", "--from", "2024-01-01", "--to", "2024-01-02"]) == 3
    with pytest.raises(SystemExit) as bad:  # checked by argparse, before any connection
        cli_query.main(["hr", "-p", "Not A Pseudonym"])
    assert bad.value.code == 2
    assert "participant" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_query.main(["--help"])
    assert exc.value.code == 0
    assert "Exit codes" in capsys.readouterr().out

    out = tmp_path / "x"
    registry = tmp_path / "exports.jsonl"
    monkeypatch.setenv("WELLSENSE_EXPORT_REGISTRY", str(registry))
    args = [
        "--out",
        str(out),
        "--format",
        "parquet",
        "-m",
        "daily",
        "-m",
        "rr",
        "--from",
        FIRST,
        "--to",
        LAST,
        "--progress",  # stderr is not a terminal here
    ]
    assert cli_export.main(args) == 0
    captured = capsys.readouterr()
    assert "export: 100%" in captured.err and "rr.parquet" in captured.out
    assert len(pd.read_parquet(out / "daily.parquet")) == 19  # p-bravo skips a day
    # The export registry names the files, so an erasure can list them.
    listed = exports_registry.exports_of(registry, study.conn.study, "p-alpha")
    assert len(listed) == 1 and str((out / "rr.parquet").resolve()) in listed[0]["files"]
    assert "p-alpha" not in registry.read_text()  # pseudonyms are stored hashed
    nd = tmp_path / "nd"
    assert cli_export.main(["--out", str(nd), "--format", "omh-ndjson", "-p", "p-alpha", "-q"]) == 0
    assert sorted(p.name for p in nd.iterdir()) == ["heart-rate.ndjson", "rr-interval.ndjson"]
    first = json.loads((nd / "rr-interval.ndjson").read_text().split("\n", 1)[0])
    assert first["header"]["schema_id"]["version"] == "1.0"
    capsys.readouterr()
    monkeypatch.setenv("WELLSENSE_INFLUX_TOKEN", "wrong-token")
    assert cli_export.main(["--out", str(out), "--quiet"]) == 4  # EXIT_REFUSED
    assert "401" in capsys.readouterr().err


# --------------------------------------------------------------------------- self-report


def test_selfreport_import_is_idempotent_and_agreement_recovers_the_bias(
    study: Study,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in study.env().items():
        monkeypatch.setenv(k, v)
    with study.store() as store:
        before = len(store.self_reports())
    csv_path = tmp_path / "answers.csv"
    csv_path.write_text(study.synth.self_report_csv())
    assert cli_selfreport.main(["import", str(csv_path)]) == 0  # the fixture imported it already
    assert "wrote" in capsys.readouterr().out
    with study.store() as store:
        assert len(store.self_reports()) == before == len(study.synth.self_report_rows())
    bad = tmp_path / "bad.csv"
    bad.write_text("participant,time,instrument,item,value\nP 1,yesterday,mood,mood,x\n")
    assert cli_selfreport.main(["import", str(bad)]) == 5  # EXIT_BAD_DATA
    err = capsys.readouterr().err
    assert "bad.csv:2" in err

    out = tmp_path / "agreement.csv"
    assert cli_selfreport.main(["agreement", "--from", FIRST, "--to", LAST, "--out", str(out)]) == 0
    table = pd.read_csv(out)
    pairs_out = tmp_path / "pairs.csv"
    assert (
        cli_selfreport.main(["pairs", "--from", FIRST, "--to", LAST, "--out", str(pairs_out)]) == 0
    )
    pairs = pd.read_csv(pairs_out)
    for p, participant in enumerate(("p-alpha", "p-bravo")):
        row = table[(table.construct == "sleep_duration_h") & (table.participant == participant)]
        g = pairs[(pairs.construct == "sleep_duration_h") & (pairs.participant == participant)]
        g = g.dropna(subset=["sensed"])
        d = g["value"] - g["sensed"]
        # the indices are the hand formulas on the exported pairs ...
        assert row["n"].item() == len(d)
        assert row["bias"].item() == pytest.approx(d.mean())
        assert row["loa_high"].item() == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
        # ... and recover the bias built into the synthetic study (sensing loses a few
        # minutes at sleep onset/offset, so sensed sleep is a little shorter than true)
        assert row["bias"].item() == pytest.approx(SLEEP_BIAS_H[p] + 0.15, abs=0.35)
        act = pairs[(pairs.construct == "active_min") & (pairs.participant == participant)]
        ratio = (act["value"] / act["sensed"]).median()
        assert ratio == pytest.approx(ACTIVITY_FACTOR, rel=0.1)
    pooled = table[table.participant == "*"]
    assert set(pooled.construct) == {"sleep_duration_h", "active_min"}
    assert (pooled["r_rm"] > 0.8).all()


# --------------------------------------------------------------------------- report


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    exe = _chromium()
    assert exe is not None
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    return subprocess.run(cmd, capture_output=True, timeout=120, env=env, check=False)


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (make test installs it)")
def test_report_renders_in_headless_chromium(
    study: Study,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in study.env().items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "report.html"
    assert cli_report.main(["-p", "p-alpha", "--from", FIRST, "--to", LAST, "--out", str(out)]) == 0
    html = out.read_text()
    assert not re.search(r"(src|href)=\"(https?:|//)", html), "external asset"
    assert "<script" not in html
    dom = _headless(tmp_path / "profile", "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout.decode()
    for section in report.SECTIONS:
        assert f'id="{section}"' in text, section
    assert text.count('class="baseline-band"') >= 2  # HR and HRV bands (days 8-10)
    assert 'class="sleep"' in text and 'class="act"' in text and 'class="pair"' in text
    assert "low_wear" in text and "sleep_duration_h" in text

    png = tmp_path / "report.png"
    shot = _headless(
        tmp_path / "profile2", "--window-size=900,2400", f"--screenshot={png}", out.as_uri()
    )
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    colours = _distinct_colours(png.read_bytes())
    assert colours > 20, "the screenshot is blank"
    assert cli_report.main(["p-nobody", "--from", FIRST, "--to", LAST, "--out", str(out)]) == 3
    assert "deprecated" in capsys.readouterr().err  # the positional of the last release


def _distinct_colours(png: bytes) -> int:
    """Distinct RGB values among the pixels of a PNG (stdlib only: zlib + filters)."""
    import struct
    import zlib

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, _, ctype = struct.unpack(">IIBB", data[:10])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    seen: set[bytes] = set()
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        if y % 8 == 0:
            for x in range(0, width, 4):
                seen.add(bytes(line[x * bpp : x * bpp + 3]))
        prev = line
    return len(seen)


# --------------------------------------------------------------------------- Grafana


def _grafana_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        for var in dash["templating"]["list"]:
            if var["type"] == "query":  # a constant holds a name, not Flux
                out.append((f"{path.name}: variable {var['name']}", var["query"]))
        for panel in dash["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.name}: {panel['title']}", target["query"]))
    return out


def _substitute(query: str, study: Study) -> str:
    """What Grafana sends: its Flux macros and the template variables replaced."""
    values = {
        "v.defaultBucket": json.dumps(study.bucket),
        "v.timeRangeStart": "2025-10-31T00:00:00Z",
        "v.timeRangeStop": "2025-11-12T00:00:00Z",
        "v.windowPeriod": "5m",
        "${study}": study.synth.study,
        "${participant}": "p-alpha",
        "${downsampled}": study.downsampled,
    }
    for key, value in values.items():
        query = query.replace(key, value)
    assert "${" not in query and "v." not in query.replace("r._value", ""), query
    return query


def test_grafana_provisioning_is_complete() -> None:
    ds = (GRAFANA / "provisioning" / "datasources" / "wellsense.yaml").read_text()
    assert "type: influxdb" in ds and "version: Flux" in ds and "uid: wellsense-influxdb" in ds
    assert "token: ${WELLSENSE_GRAFANA_INFLUX_TOKEN}" in ds
    assert "path:" in (GRAFANA / "provisioning" / "dashboards" / "wellsense.yaml").read_text()
    titles = {json.loads(p.read_text())["title"] for p in (GRAFANA / "dashboards").glob("*.json")}
    assert titles == {"WellSense: study overview", "WellSense: participant"}
    assert "isDefault: false" in ds  # a Grafana serving other data keeps its own default
    for path in (GRAFANA / "dashboards").glob("*.json"):
        dash = json.loads(path.read_text())
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] == "wellsense-influxdb"
        constants = {v["name"]: v["query"] for v in dash["templating"]["list"]}
        if "${downsampled}" in path.read_text():
            # the bucket influx-setup creates by default
            assert constants["downsampled"] == "wellsense_1h"


def _panel_query(dashboard: str, title_start: str) -> str:
    dash = json.loads((GRAFANA / "dashboards" / dashboard).read_text())
    (panel,) = [p for p in dash["panels"] if p["title"].startswith(title_start)]
    query: str = panel["targets"][0]["query"]
    return query


def test_grafana_alert_panels_tell_firing_from_resolved(study: Study) -> None:
    fired = {p: 0 for p in study.synth.participants}
    for line in study.synth.alert_lines():
        if "state=\"firing\"" in line:
            fired[line.split("participant=", 1)[1].split(",", 1)[0]] += 1
    assert any(fired.values())
    table = _panel_query("participant.json", "Alerts")
    counts = _panel_query("study-overview.json", "Alerts per participant")
    with study.store() as store:
        events = list(store.rows(_substitute(table, study)))
        rows = list(store.rows(_substitute(counts, study)))
    assert {r["state"] for r in events} == {"firing", "resolved"}
    by_participant = {r["participant"]: r for r in rows}
    for participant, n in fired.items():
        if n:
            assert int(by_participant[participant]["fired"]) == n
            assert int(by_participant[participant]["resolved"]) == n


def test_grafana_long_range_panels_read_the_downsampled_bucket(study: Study) -> None:
    """The hourly panels read what the downsampling task wrote, and agree with
    the raw data they summarise."""
    steps = _panel_query("participant.json", "Steps per hour")
    hr = _panel_query("participant.json", "Heart rate, hourly")
    for query in (steps, hr):
        assert 'from(bucket: "${downsampled}")' in query and "v.defaultBucket" not in query
    with study.store() as store:
        hourly = sum(float(r["_value"]) for r in store.rows(_substitute(steps, study)))
        act = store.frame("activity", participants=["p-alpha"])
        hr_rows = list(store.rows(_substitute(hr, study)))
    assert hourly == act["steps"].sum()
    assert {r["_field"] for r in hr_rows} == {"hr_bpm_mean", "hr_bpm_min", "hr_bpm_max"}


@pytest.mark.parametrize("name,query", _grafana_queries(), ids=[n for n, _ in _grafana_queries()])
def test_every_grafana_query_runs_and_returns_rows(study: Study, name: str, query: str) -> None:
    with study.store() as store:
        rows = list(store.rows(_substitute(query, study)))
    assert rows, f"{name}: no rows"
    assert all(not (isinstance(v, float) and math.isnan(v)) for r in rows for v in r.values())


def test_series_count_is_tag_sets_times_field_keys(study: Study) -> None:
    """docs/storage.md's cardinality formula: a series is a measurement, a tag
    set and a field key (Flux returns one table per series), not a tag set."""
    span = "start: 2025-10-31T00:00:00Z, stop: 2025-11-12T00:00:00Z"
    with study.store() as store:
        series = list(
            store.rows(
                f'from(bucket: "{study.bucket}") |> range({span})'
                ' |> filter(fn: (r) => r._measurement == "hr") |> first()'
                ' |> keep(columns: ["_field", "study", "participant", "device"]) |> group()'
            )
        )
    tag_sets = {(r["study"], r["participant"], r["device"]) for r in series}
    fields = {r["_field"] for r in series}
    assert len(tag_sets) == len(study.synth.participants) and len(fields) >= 3
    assert len(series) == len(tag_sets) * len(fields)
