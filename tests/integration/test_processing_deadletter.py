"""Per-sample validation and the durable dead-letter store, through the real broker and InfluxDB."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector import wire
from processing.deadletterstore import KIND_MESSAGE, DeadLetterStore
from tests.integration.processing_fixture import (
    T0_NS,
    Pipeline,
    hr_messages,
    pipeline,
    publish_messages,
    wait_until,
)

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
T0 = T0_NS


def _glitched(study: str, n_messages: int) -> list[wire.Message]:
    """HR messages of 10 samples; every 100th sample is impossible (HR 65535 or RR 0 ms)."""
    messages = hr_messages(
        study=study, participant="p-1", device="d-1", n_messages=n_messages, samples_per_message=10
    )
    out = []
    for m in messages:
        samples = []
        for i, s in enumerate(m.samples):
            assert isinstance(s, wire.HrSample)
            n = m.seq * 10 + i
            if n % 100 == 99:
                s = (
                    dataclasses.replace(s, hr_bpm=65535)
                    if n % 200 == 99
                    else dataclasses.replace(s, rr_ms=(0.0,))
                )
            samples.append(s)
        out.append(dataclasses.replace(m, samples=tuple(samples)))
    return out


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "wellsense_cli.main", "deadletter", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_a_glitch_sample_never_loses_its_batch_and_is_kept_whole(pipeline: Pipeline) -> None:
    messages = _glitched(pipeline.study, 40)  # 400 samples, 4 impossible
    service = pipeline.start(features={"enabled": False})
    publish_messages(pipeline.broker, messages)
    wait_until(lambda: service.metrics.messages_written == 40, 60, "every message stored")
    assert pipeline.count("hr", "hr_bpm") == 396  # every valid sample
    assert sum(service.metrics.samples_dropped.values()) == 4
    assert not service.metrics.dead_lettered  # no message was lost whole
    assert pipeline.stop(service) == 0
    config = pipeline.write_config()

    listed = _cli(config, "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["kind"], r["participant"], r["seq"]) for r in rows] == [
        ("samples", "p-1", seq) for seq in (9, 19, 29, 39)
    ]
    assert {r["field"] for r in rows} == {"samples[9].hr_bpm", "samples[9].rr_ms[0]"}
    as_csv = _cli(config, "list", "--format", "csv", "--reason", "bad_value")
    assert as_csv.returncode == 0 and len(as_csv.stdout.splitlines()) == 5  # header + 4
    shown = _cli(config, "show", str(rows[0]["id"]), "--format", "json")
    body = json.loads(json.loads(shown.stdout)["payload"])
    assert body["seq"] == 9 and [s["hr_bpm"] for s in body["samples"]] == [65535]

    # Still impossible after a replay: it stays a dead letter, and says so.
    replayed = _cli(config, "replay", str(rows[0]["id"]))
    assert replayed.returncode == 1 and "still invalid" in replayed.stdout
    assert pipeline.count("hr", "hr_bpm") == 396


def test_replay_stores_what_an_older_version_dead_lettered_whole_and_is_idempotent(
    pipeline: Pipeline,
) -> None:
    """A message an older processing rejected whole for one glitch sample is recovered."""
    (message,) = _glitched(pipeline.study, 10)[9:10]  # seq 9: sample 9 has HR 65535
    config = pipeline.write_config()
    with DeadLetterStore(pipeline.directory / "deadletter-w1.sqlite") as store:
        row_id = store.add(
            received_ns=message.sent_ns,
            kind=KIND_MESSAGE,
            reason="bad_value",
            field="samples[9].hr_bpm",
            error="samples[9].hr_bpm: 65535 is out of range 0..300",
            topic=message.topic,
            worker="w1",
            payload=wire.encode(message),
        )
    for _ in range(2):
        replayed = _cli(config, "replay", str(row_id))
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "stored 9 samples; 1 still invalid" in replayed.stdout
        assert pipeline.count("hr", "hr_bpm") == 9  # the same points, once
    listed = _cli(config, "list", "--replayed", "yes", "--format", "json")
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == row_id and row["replay_result"].startswith("stored 9 samples")


def test_a_glitch_in_every_100th_notification_through_the_collector_chain(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Collector ingest -> batcher -> outbox -> publisher -> broker -> processing -> InfluxDB."""
    from collector import ble_events as ev
    from collector.gatt_uuids import Characteristic
    from collector.ingest import Ingest
    from tests.integration.test_delivery_e2e import ROUTE, Gateway
    from wellsense_sim import encode

    service = pipeline.start(features={"enabled": False})
    gw = Gateway(pipeline.broker, pipeline.study, tmp_path / "outbox.sqlite3").start()
    ingest = Ingest(gw.batcher, {"chest": ROUTE}, now_ns=lambda: T0)
    hrm = Characteristic.HEART_RATE_MEASUREMENT.uuid
    n, glitch_hr, glitch_rr = 1000, 0, 0
    try:
        for k in range(n):
            hr, rr = 60 + k % 20, (1000.0,)
            if k % 100 == 99:  # every 100th notification: a uint16 HR or an RR of 0 ms
                if k % 200 == 99:
                    hr, glitch_hr = 65535, glitch_hr + 1
                else:
                    rr, glitch_rr = (0.0, 1000.0), glitch_rr + 1
            data = encode.heart_rate_measurement(hr, contact=True, rr_ms=rr)
            ingest.handle(ev.RawNotification(T0 + k * 10**9, "chest", hrm, data, 1))
        gw.batcher.flush_all()
        gw.wait_empty(120)  # every message confirmed as stored by processing
    finally:
        gw.close()
    assert ingest.sensors["chest"].dropped_samples == 2 * glitch_hr + glitch_rr
    assert pipeline.count("hr", "hr_bpm") == n - glitch_hr  # every valid notification
    assert pipeline.count("rr", "rr_ms") == n - glitch_hr  # every valid RR value
    assert not service.metrics.dead_lettered and not service.metrics.samples_dropped
    # The clock quality of every message is kept (a clock point per message).
    clocks = pipeline.flux('|> filter(fn: (r) => r._measurement == "clock")')
    by_field: dict[str, set[object]] = {}
    for row in clocks:
        by_field.setdefault(row["_field"], set()).add(row["_value"])
    data_seqs = {
        row["_value"]
        for row in pipeline.flux('|> filter(fn: (r) => r._field == "seq")')
        if row["_measurement"] != "clock"
    }
    assert by_field["seq"] == data_seqs
    assert by_field["synced"] == {True} and by_field["source"] == {"sim"}
    assert by_field["max_error_ms"] == {5.0}
    assert pipeline.stop(service) == 0
