"""Offline recompute round trip: raw data through the real processing service (MQTT ->
InfluxDB -> feature jobs), exported, read back and fed to the same feature functions
offline, reproduces the stored ``hrv_window`` and ``daily`` points."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd
import pytest

from processing.research import export, recompute
from processing.research.settings import Connection
from processing.research.store import Store
from processing.research.synthetic import SyntheticStudy
from tests.integration.processing_fixture import Pipeline, pipeline, publish_messages

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
TZ = "Europe/Oslo"


def _store(p: Pipeline) -> Store:
    return Store(
        Connection(
            url=p.influx.url,
            org=p.influx.org,
            bucket=p.bucket,
            token=p.influx.token,
            study=p.study,
            timezone=TZ,
        )
    )


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["participant", "time"], kind="stable").reset_index(drop=True)


def test_exported_raw_data_recomputes_the_stored_features(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    synth = SyntheticStudy(
        study=pipeline.study, participants=("p-one",), days=1, timezone=TZ, rr_minutes=12
    )
    messages = list(synth.messages())
    # a strap that loses skin contact for a few samples: daily must leave them out
    first_hr = next(i for i, m in enumerate(messages) if m.stream == "hr")
    hr = messages[first_hr]
    lost = tuple(
        dataclasses.replace(s, contact=False) if 100 <= k < 130 else s
        for k, s in enumerate(hr.samples)
    )
    messages[first_hr] = dataclasses.replace(hr, samples=lost)
    pipeline.start(features={"timezone": TZ, "hrv_window_s": 300})
    publish_messages(pipeline.broker, messages)

    def stored() -> tuple[pd.DataFrame, pd.DataFrame]:
        with _store(pipeline) as store:
            return store.frame("hrv_window"), store.frame("daily")

    hr_msgs = [m for m in messages if m.stream == "hr"]
    expected = {
        "hr": sum(len(m.samples) for m in hr_msgs),
        "rr": sum(len(s.rr_ms) for m in hr_msgs for s in m.samples),
        "activity": sum(len(m.samples) for m in messages if m.stream == "activity"),
    }

    # Export the raw data to Parquet, read it back, recompute offline.
    deadline = time.monotonic() + 90
    while True:
        with _store(pipeline) as store:
            summary = export.export(
                store, tmp_path, fmt="parquet", measurements=("hr", "rr", "activity"), progress=None
            )
        raw = {m: pd.read_parquet(path) for m, path in summary.files.items()}
        offline_hrv = recompute.hrv_window_frame(raw["rr"], window_s=300)
        offline_daily = recompute.daily_frame(raw["hr"], raw["rr"], raw["activity"], timezone=TZ)
        hrv, daily = stored()
        done = (
            {m: len(df) for m, df in raw.items()} == expected
            and len(hrv) == len(offline_hrv)
            and len(daily) == len(offline_daily)
        )
        if done and _sorted(daily)["hr_samples"].equals(_sorted(offline_daily)["hr_samples"]):
            time.sleep(2)  # let any last recomputation land
            hrv, daily = stored()
            break
        assert time.monotonic() < deadline, f"service features: {len(hrv)} hrv, {len(daily)} daily"
        time.sleep(1)

    expected_rr = expected["rr"]
    assert len(offline_hrv) >= 2 and len(offline_daily) >= 1
    assert (offline_hrv["quality"] == "").any()
    assert offline_hrv["n_rr"].sum() == expected_rr
    pd.testing.assert_frame_equal(_sorted(offline_hrv), _sorted(hrv), check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(
        _sorted(offline_daily), _sorted(daily), check_exact=False, rtol=1e-9
    )
    # the contact-lost samples are counted but not valid
    assert int(daily["hr_samples"].sum() - daily["hr_valid_samples"].sum()) == 30
