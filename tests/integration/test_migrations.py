"""The Flux migrations in docs/migrations.md, run as documented against the real InfluxDB."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from processing import schema
from processing.windows import NS
from processing.writer import InfluxWriter
from tests.integration.processing_fixture import T0_NS, Pipeline, pipeline

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAY_NS = 86_400 * NS
OLD_TO_NEW = {
    "activity_mean": "steps_mean_per_min",
    "activity_sd": "steps_sd_per_min",
    "zero_fraction": "steps_zero_fraction",
    "mvpa_min": "steps_mvpa_min",
}


def documented_flux(bucket: str) -> str:
    """The activity rename script from docs/migrations.md, pointed at ``bucket``."""
    text = (REPO / "docs" / "migrations.md").read_text()
    blocks = re.findall(r"```flux\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    script, n = re.subn(r'^bucket = ".*"$', f'bucket = "{bucket}"', blocks[0], flags=re.M)
    assert n == 1
    return script


def daily_fields(p: Pipeline) -> dict[tuple[str, int, str], float]:
    rows = p.flux('|> filter(fn: (r) => r._measurement == "daily")')
    return {(r["participant"], int(r["_time"].timestamp()), r["_field"]): r["_value"] for r in rows}


def test_activity_rename_copies_every_old_field_to_its_new_name(pipeline: Pipeline) -> None:
    p = pipeline
    lines = []
    old: dict[tuple[str, int, str], float] = {}
    for k in range(3):
        for participant in ("p-a", "p-b"):
            fields: dict[str, schema.FieldValue | None] = {"wear_min": 900, "hr_mean": 70.0 + k}
            for j, name in enumerate(OLD_TO_NEW):
                fields[name] = 10.0 * k + j + (0.5 if participant == "p-b" else 0.0)
                fields[f"{name}_z"] = -1.5 + k
                fields[f"{name}_robust_z"] = 0.25 * k
            t = T0_NS + k * DAY_NS
            tags = {"study": p.study, "participant": participant, "tz": "Europe/Oslo"}
            line = schema.line("daily", tags, fields, t)
            assert line is not None
            lines.append(line)
            for name, value in fields.items():
                old[(participant, t // 1_000_000_000, name)] = float(value)  # type: ignore[arg-type]
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    try:
        writer.write(lines)
    finally:
        writer.close()

    script = documented_flux(p.bucket)
    for _ in range(2):  # a second run changes nothing
        with p.client() as client:
            client.query_api().query(script, org=p.influx.org)
        stored = daily_fields(p)
        for (participant, t, name), value in old.items():
            assert stored[(participant, t, name)] == value  # nothing overwritten or lost
            base = name.removesuffix("_robust_z").removesuffix("_z")
            if base in OLD_TO_NEW:
                new = OLD_TO_NEW[base] + name[len(base) :]
                assert stored[(participant, t, new)] == value
        renamed = {n for (_, _, n) in stored} - {n for (_, _, n) in old}
        assert len(renamed) == 12 and all(n.startswith("steps_") for n in renamed)
        assert len(stored) == len(old) + 12 * 6  # 12 new fields on each of the 6 points


def test_recompute_command_rebuilds_daily_points_without_the_old_fields(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """`wellsense recompute` on days stored by the old service (old names, daily RMSSD)."""
    from processing.admin.recompute import main
    from tests.integration.test_processing_daily import (
        FIRST,
        N_DAYS,
        TZ,
        P,
        daily_points,
        expected_z,
        synthetic,
    )

    p = pipeline
    lines, truth = synthetic(p.study)
    days = [FIRST + dt.timedelta(days=k) for k in range(N_DAYS)]
    for k, day in enumerate(days):  # what the old service stored for these days
        t = int(dt.datetime.combine(day, dt.time(), ZoneInfo(TZ)).timestamp()) * NS
        tags = {"study": p.study, "participant": P, "tz": TZ}
        old = {"rmssd_ms": 40.0, "rmssd_ms_z": 0.5, "activity_mean": 30.0 + k,
               "activity_mean_z": 0.1, "mvpa_min": 12.0, "wear_min": 1}  # fmt: skip
        lines.append(schema.line("daily", tags, old, t) or "")
    writer = InfluxWriter(url=p.influx.url, org=p.influx.org, bucket=p.bucket, token=p.influx.token)
    try:
        for k in range(0, len(lines), 20_000):
            writer.write(lines[k : k + 20_000])
    finally:
        writer.close()
    config = p.write_config(features={"timezone": TZ})
    args = ["--config", str(config), "--since", str(days[0]), "--until", str(days[-1])]
    assert main([*args, "--progress"]) == 0
    captured = capsys.readouterr()
    assert f"{N_DAYS} days recomputed" in captured.out
    assert "recompute: 100%" in captured.err  # on stderr, with the rate:
    assert "unit/s" in captured.err or "s/unit" in captured.err

    stored = daily_points(p)
    assert sorted(stored) == days
    for i, day in enumerate(days):
        point = stored[day]
        gone = {"rmssd_ms", "rmssd_ms_z", "activity_mean", "activity_mean_z", "mvpa_min"}
        assert not gone & set(point), day
        assert point["wear_min"] == 360 + 630  # recomputed, not the old 1
        assert point["ln_rmssd_night"] == pytest.approx(truth["rmssd"][i])
        assert point["steps_mean_per_min"] == pytest.approx(truth["steps"][i])
        if i >= 7:  # baselines read the recomputed earlier days
            z = expected_z(truth["rmssd"], i)
            assert point["ln_rmssd_night_z"] == pytest.approx(z)
