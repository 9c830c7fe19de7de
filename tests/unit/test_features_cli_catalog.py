"""`wellsense features` CLI, file readers and the generated feature catalogue."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from processing.features import catalog
from processing.features.cli import main
from processing.features.hrv import HRV_KEYS
from processing.features.io import read_rr
from tests.unit.features_data import require

REPO = Path(__file__).resolve().parents[2]


def test_docs_are_generated_from_catalog() -> None:
    committed = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert committed == catalog.render_markdown(), (
        "docs/features.md is stale: run `python -m processing.features.catalog > docs/features.md`"
    )


def test_catalog_covers_every_output_key() -> None:
    names = set(catalog.BY_NAME)
    assert set(HRV_KEYS) <= names
    for spec in catalog.CATALOG:
        assert spec.unit and spec.definition and spec.reference and spec.version >= 1


def _rr_file(tmp_path: Path, n: int = 900) -> Path:
    rng = np.random.default_rng(5)
    rr = 850 + rng.normal(0, 40, n)
    path = tmp_path / "rr.txt"
    path.write_text("\r\n".join(f"{v:.1f}" for v in rr) + "\r\n@\r\n")
    return path


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_hrv_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _rr_file(tmp_path)
    argv = ["hrv", str(path), "--format", "json", "--window", "300"]
    assert main(argv, "wf") == 5  # the trailing '@' is refused, with its line number
    assert f"{path}:901: '@' is not a number" in capsys.readouterr().err
    assert main([*argv, "--skip-bad-lines"], "wf") == 0
    captured = capsys.readouterr()
    assert "skipped 1 non-numeric line" in captured.err
    win = _json_lines(captured.out)  # one window per line
    assert len(win) >= 2
    assert {
        "start_s",
        "end_s",
        "n_beats",
        "kept_fraction",
        "coverage",
        "quality",
        *HRV_KEYS,
    } <= set(win[0])
    assert win[0]["start_s"] == 0.0 and win[0]["end_s"] == 300.0


def test_hrv_csv_with_time_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rr = np.full(800, 800.0) + np.tile([0, 25, -15, 10], 200)
    t = 1_700_000_000 + np.cumsum(rr) / 1000
    path = tmp_path / "rr.csv.gz"
    path.write_bytes(
        gzip.compress(
            (
                "time,rr_ms\n" + "".join(f"{a:.3f},{b}\n" for a, b in zip(t, rr, strict=True))
            ).encode()
        )
    )
    assert main(["hrv", str(path), "--format", "csv"], "wf") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("start_s,end_s,n_beats")
    assert float(lines[1].split(",")[0]) % 300 == 0  # clock-aligned windows


def test_activity_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = np.datetime64("2024-03-04T12:00", "m") + np.arange(3 * 1440)
    clock = (np.arange(t.size) + 720) % 1440
    act = np.where(clock < 420, 0, 200 + (np.arange(t.size) % 7) * 10)
    body = "timestamp,date,activity\n" + "".join(
        f"{str(a).replace('T', ' ')}:00,{str(a)[:10]},{v}\n" for a, v in zip(t, act, strict=True)
    )
    path = tmp_path / "act.csv"
    path.write_text(body)
    assert main(["activity", str(path), "--format", "json"], "wf") == 0
    *days, summary = _json_lines(capsys.readouterr().out)
    assert summary["record"] == "summary" and {"is", "iv", "l5", "m10", "ra"} <= set(summary)
    assert len(days) == 4 and days[1]["date"] == "2024-03-05"
    assert {d["record"] for d in days} == {"day"}
    assert main(["activity", str(path), "--format", "csv"], "wf") == 0
    text = capsys.readouterr().out
    assert text.startswith("date,") and "\nis,iv,l5,m10,ra" in text


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["hrv"],
        ["bogus"],
        ["hrv", "/no/such/file"],
        ["hrv", "FILE", "--window", "-1"],
        ["activity", "FILE"],
    ],
)
def test_usage_and_input_errors_exit_2(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    argv = [str(bad) if a == "FILE" else a for a in argv]
    assert main(argv, "wf") == 2
    assert capsys.readouterr().err.strip()


def test_seconds_file_is_refused_with_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.txt"
    path.write_text("\n".join(["0.8"] * 100))
    assert main(["hrv", str(path)], "wf") == 2
    assert "--rr-unit s" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"], "wf") == 0
    assert "hrv" in capsys.readouterr().out


def test_real_file_quirks() -> None:
    rr = require("rr")
    crlf = read_rr(rr / "healthy-irurzun" / "000.txt")
    at = read_rr(rr / "healthy-irurzun" / "008.txt")
    assert crlf.skipped_lines == 0 and crlf.rr_ms.size > 50_000
    assert at.skipped_lines == 1
    nsr = read_rr(rr / "nsr2db" / "nsr001_rr_secs.txt.gz", unit="s", skip_first=True)
    assert nsr.rr_ms.size == 106459


def test_cli_on_real_depresjon_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = require("depresjon") / "control" / "control_1.csv.gz"  # has the DST gap
    assert main(["activity", str(path), "--format", "json"], "wf") == 0
    summary = _json_lines(capsys.readouterr().out)[-1]
    assert isinstance(summary["is"], float) and isinstance(summary["iv"], float)
    assert 0 < summary["is"] < 1 and 0 < summary["iv"] < 2
    assert summary["missing_min"] == 60


def test_a_bad_csv_line_is_named_by_its_line_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rr.csv"
    rows = "".join(f"{1 + 0.8 * k:.1f},800\n" for k in range(400))
    path.write_text("time,rr_ms\n\n" + rows + "321.0,abc\n")  # a blank line 2 still counts
    assert main(["hrv", str(path)], "wf") == 5
    assert f"{path}:403: '321.0,abc' is not a number" in capsys.readouterr().err
    assert main(["hrv", str(path), "--skip-bad-lines", "--format", "csv"], "wf") == 0
    assert "skipped 1 non-numeric line" in capsys.readouterr().err
