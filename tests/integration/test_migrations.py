"""The Flux migrations in docs/migrations.md, run as documented against the real InfluxDB."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from processing import schema
from processing.writer import InfluxWriter
from tests.integration.processing_fixture import T0_NS, Pipeline, pipeline

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAY_NS = 86_400 * 1_000_000_000
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
