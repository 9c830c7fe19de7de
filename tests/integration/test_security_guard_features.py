"""The production path: processing ingests and computes features through the write guard.

The guard's Flux rule is an allow-list; this runs the real feature jobs
(window and daily queries, catch-up, point replacement) through a real guard
in front of the real InfluxDB and checks that the guard refused nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator

import pytest

from processing.admin.influxguard import Guard
from tests.integration.processing_fixture import (
    Pipeline,
    hr_messages,
    pipeline,
    publish_messages,
    wait_until,
)
from tests.integration.security_stack import SECRETS

pytestmark = pytest.mark.integration
__all__ = ["pipeline"]
NS = 1_000_000_000


@pytest.fixture
def guard(pipeline: Pipeline) -> Iterator[Guard]:
    server = Guard(
        ("127.0.0.1", 0),
        influx_url=pipeline.influx.url,
        influx_token=pipeline.influx.token,
        client_token=secrets.token_urlsafe(24),
        org=pipeline.influx.org,
        bucket=pipeline.bucket,
    )
    SECRETS.add(server.client_token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_features_are_computed_through_the_guard_and_nothing_is_refused(
    pipeline: Pipeline, guard: Guard, caplog: pytest.LogCaptureFixture
) -> None:
    p = pipeline
    token_file = p.directory / "guard-client-token"
    token_file.write_text(guard.client_token)
    token_file.chmod(0o600)
    influx = {
        "url": f"http://127.0.0.1:{guard.server_address[1]}",
        "token_file": str(token_file),
    }
    caplog.set_level(logging.INFO, logger="processing.admin.influxguard")
    start = (time.time_ns() - 40 * 60 * NS) // (300 * NS) * (300 * NS) + 10 * NS
    messages = hr_messages(
        study=p.study, participant="p-guard", device="d-1", n_messages=72, start_ns=start
    )
    service = p.start(influx=influx)
    try:
        publish_messages(p.broker, messages)
        wait_until(
            lambda: p.count("hrv_window", "n_beats") == 2 and p.count("daily", "hr_samples") >= 1,
            60,
            "windows and the day computed through the guard",
        )
        assert service.metrics.features_computed >= 3
    finally:
        assert p.stop(service) == 0
    assert p.count("hr", "hr_bpm") == 72 * 5
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert refused == []
    forwarded = {r.getMessage() for r in caplog.records}
    # writes, the feature queries, and the one-point delete before a rewrite
    assert {"POST /api/v2/write", "POST /api/v2/query", "POST /api/v2/delete"} <= forwarded
