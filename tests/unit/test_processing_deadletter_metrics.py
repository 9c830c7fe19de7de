"""Dead-letter records and self-metrics points."""

from __future__ import annotations

import base64
import json
import math

from processing import deadletter
from processing.metrics import Metrics, percentile


def test_deadletter_record_keeps_reason_and_a_truncated_payload() -> None:
    payload = b"x" * (deadletter.MAX_PAYLOAD_BYTES + 100)
    body = json.loads(
        deadletter.record(
            reason="bad_json",
            field="",
            error="not JSON",
            topic="wellsense/v1/s/p-1/hr",
            payload=payload,
            worker="w1",
            received_ns=5,
        )
    )
    assert body["reason"] == "bad_json" and body["payload_bytes"] == len(payload)
    assert body["payload_truncated"] is True
    assert base64.b64decode(body["payload_b64"]) == payload[: deadletter.MAX_PAYLOAD_BYTES]


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert math.isnan(percentile([], 50))


def test_self_metrics_point_and_interval_reset() -> None:
    m = Metrics(study="s", worker="w2")
    m.received, m.duplicates = 10, 2
    m.dead_lettered["bad_json"] += 3
    m.observe_lag(0.5)
    m.observe_write(0.02)
    values = m.snapshot()
    assert values["dead_lettered"] == 3 and values["dead_bad_json"] == 3
    text = m.line(values, 123)
    assert text is not None and text.startswith("wellsense_self,study=s,worker=w2 ")
    assert "received=10i" in text and "lag_p99_ms=500.0" in text and text.endswith(" 123")
    again = m.snapshot()
    assert math.isnan(again["lag_p50_ms"])  # percentiles cover one interval
    assert "lag_p50_ms" not in (m.line(again, 124) or "")  # NaN is left out
