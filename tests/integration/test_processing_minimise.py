"""The server's feature job leaves gateway-computed HRV windows alone.

A participant whose gateway minimises data sends ``features`` (and may send
heart rate without RR, e.g. from a band). The server computes HRV windows
only from stored RR, so for that participant it must neither write nor
delete ``hrv_window`` points, even when asked to compute those windows.
"""

from __future__ import annotations

import dataclasses

import pytest

from collector import wire
from processing import config as pconfig
from processing.service import Service
from processing.windows import Unit
from tests.golden import valid_messages
from tests.integration.processing_fixture import Pipeline, pipeline, publish_messages, wait_until

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
W_NS = 300 * 10**9


def _features(study: str, n: int) -> list[wire.Message]:
    golden = wire.decode(valid_messages()["features"])
    first = golden.samples[0]
    assert isinstance(first, wire.FeaturesSample)
    return [
        dataclasses.replace(
            golden,
            study=study,
            seq=k,
            samples=(dataclasses.replace(first, ts_ns=first.ts_ns + k * W_NS),),
        )
        for k in range(n)
    ]


def _hr_without_rr(study: str, start_ns: int, seq: int) -> wire.Message:
    samples = tuple(wire.HrSample(start_ns + i * 10**10, 70, True, None, ()) for i in range(60))
    golden = wire.decode(valid_messages()["hr"])
    return dataclasses.replace(golden, study=study, seq=seq, samples=samples)


def _windows(p: Pipeline) -> list[tuple[str, str, object]]:
    rows = p.flux('|> filter(fn: (r) => r._measurement == "hrv_window")')
    return sorted((r["_time"].isoformat(), r["_field"], r["_value"]) for r in rows)


def test_server_feature_job_neither_overwrites_nor_deletes_gateway_windows(
    pipeline: Pipeline,
) -> None:
    features = _features(pipeline.study, 3)
    start = features[0].samples[0].ts_ns
    service = pipeline.start()  # features on: daily units from HR, HRV units from RR
    publish_messages(pipeline.broker, [*features, _hr_without_rr(pipeline.study, start, 10)])
    wait_until(lambda: service.metrics.messages_written == 4, 20, "four messages written")
    wait_until(lambda: pipeline.count("daily", "hr_samples") == 1, 20, "the daily unit")
    before = _windows(pipeline)
    assert len({t for t, _, _ in before}) == 3
    assert pipeline.stop(service) == 0
    # Ask the server's feature job to (re)compute exactly those windows, through
    # the same path as the running worker (compute, replace): no RR, no change.
    worker = Service(pconfig.load(pipeline.write_config()))
    units = [Unit("hrv", "p-7f3a9c", start + k * W_NS, start + (k + 1) * W_NS) for k in range(3)]
    try:
        worker._run_features(units, 30.0)
    finally:
        if worker._influx_client is not None:
            worker._influx_client.close()
        worker.writer.close()
    assert worker.metrics.features_computed == 3
    assert _windows(pipeline) == before
