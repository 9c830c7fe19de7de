"""Self-reports over MQTT (wire stream ``selfreport``) through the real broker, the
processing service and InfluxDB: stored exactly as the CSV import stores them,
idempotent, invalid ones dead-lettered, and read by ``wellsense selfreport``
like imported ones.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from collector import wire
from processing.deadletterstore import DeadLetterStore
from processing.research import cli_selfreport, recompute, selfreport
from processing.research.settings import Connection
from processing.research.store import Store
from processing.research.synthetic import SLEEP_BIAS_H, SyntheticStudy
from processing.writer import InfluxWriter
from tests.golden import invalid_cases
from tests.integration.processing_fixture import (
    Collector,
    Pipeline,
    pipeline,
    publish_all,
    publish_messages,
    wait_until,
)

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration

FIRST, LAST = "2025-11-01", "2025-11-10"
SAMPLES_PER_MESSAGE = 4


def selfreport_messages(
    answers: Iterable[selfreport.Answer], study: str, *, first_seq: int = 0
) -> list[wire.Message]:
    """What a study app sends for ``answers``: one sample per (instrument, time).

    Each participant's app is its own device (``app-<participant>``) numbering
    its messages from ``first_seq``.
    """
    samples: dict[str, dict[tuple[int, str], dict[str, float]]] = {}
    for a in answers:
        mine = samples.setdefault(a.participant, {})
        mine.setdefault((a.ts_ns, a.instrument), {})[a.item] = a.value
    out = []
    for participant, by_key in sorted(samples.items()):
        listed = [
            wire.SelfReportSample(ts_ns=ts, instrument=instrument, items=items, source="app")
            for (ts, instrument), items in sorted(by_key.items())
        ]
        for k in range(0, len(listed), SAMPLES_PER_MESSAGE):
            chunk = tuple(listed[k : k + SAMPLES_PER_MESSAGE])
            out.append(
                wire.Message(
                    stream="selfreport",
                    study=study,
                    participant=participant,
                    device=f"app-{participant}",
                    gateway="gw-test",
                    seq=first_seq + k // SAMPLES_PER_MESSAGE,
                    sent_ns=max(s.ts_ns for s in chunk) + 1_000_000_000,
                    clock=wire.ClockQuality(True, "ntp", 20.0),
                    samples=chunk,
                )
            )
    return out


def _connection(pipeline: Pipeline, bucket: str, synth: SyntheticStudy) -> Connection:
    influx = pipeline.influx
    return Connection(
        url=influx.url,
        org=influx.org,
        bucket=bucket,
        token=influx.token,
        study=pipeline.study,
        timezone=synth.timezone,
    )


def _env(conn: Connection) -> Iterator[tuple[str, str]]:
    yield from {
        "WELLSENSE_INFLUX_URL": conn.url,
        "WELLSENSE_INFLUX_ORG": conn.org,
        "WELLSENSE_INFLUX_BUCKET": conn.bucket,
        "WELLSENSE_INFLUX_TOKEN": conn.token,
        "WELLSENSE_STUDY": conn.study,
        "WELLSENSE_TIMEZONE": conn.timezone,
    }.items()


def _write_passive(conn: Connection, synth: SyntheticStudy) -> None:
    """Raw data and features of the synthetic study, as the research tests write them."""
    writer = InfluxWriter(url=conn.url, org=conn.org, bucket=conn.bucket, token=conn.token)
    try:
        lines = list(synth.raw_lines())
        for k in range(0, len(lines), 10_000):
            writer.write(lines[k : k + 10_000])
        with Store(conn) as store:
            hr, rr, act = (store.frame(m) for m in ("hr", "rr", "activity"))
        hrv = recompute.hrv_window_frame(rr)
        daily = recompute.daily_frame(hr, rr, act, timezone=synth.timezone)
        writer.write(recompute.feature_lines("hrv_window", hrv, conn.study))
        writer.write(recompute.feature_lines("daily", daily, conn.study))
    finally:
        writer.close()


def _self_reports(pipeline: Pipeline, bucket: str) -> list[tuple[Any, ...]]:
    return [r for r in pipeline.dump(bucket) if r[0] == "self_report"]


def test_mqtt_self_reports_equal_the_csv_import_are_idempotent_and_feed_agreement(
    pipeline: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    synth = SyntheticStudy(study=pipeline.study)
    mqtt_conn = _connection(pipeline, pipeline.bucket, synth)
    csv_conn = _connection(pipeline, pipeline.new_bucket(f"{pipeline.bucket}-csv"), synth)
    _write_passive(mqtt_conn, synth)
    answers = selfreport.parse_csv(synth.self_report_csv(), tz=synth.tz)
    messages = selfreport_messages(answers, pipeline.study)
    assert len(messages) > 10

    service = pipeline.start(features={"enabled": False})
    publish_messages(pipeline.broker, messages)
    wait_until(lambda: service.metrics.messages_written == len(messages), 30, "self-reports")
    stored = _self_reports(pipeline, pipeline.bucket)
    assert len(stored) == len(synth.self_report_rows())  # one value per answered item

    # The same answers imported from CSV with `wellsense selfreport import`: equal points.
    csv_path = tmp_path / "answers.csv"
    csv_path.write_text(synth.self_report_csv())
    for key, value in _env(csv_conn):
        monkeypatch.setenv(key, value)
    assert cli_selfreport.main(["import", str(csv_path)]) == 0
    assert _self_reports(pipeline, csv_conn.bucket) == stored

    # Redelivered (same seq: recognised as duplicates) and re-sent by the app (new
    # seq: written again): the same points, nothing added.
    publish_messages(pipeline.broker, messages)
    resent = selfreport_messages(answers, pipeline.study, first_seq=len(messages))
    publish_messages(pipeline.broker, resent)
    wait_until(lambda: service.metrics.received == 3 * len(messages), 30, "every message")
    wait_until(lambda: service.metrics.messages_written == 2 * len(messages), 30, "re-sent written")
    assert service.metrics.duplicates == len(messages)
    assert sum(service.metrics.dead_lettered.values()) == 0
    assert _self_reports(pipeline, pipeline.bucket) == stored
    assert pipeline.stop(service) == 0

    # The researchers' tools read MQTT-ingested answers exactly like imported ones ...
    with Store(mqtt_conn) as via_mqtt, Store(csv_conn) as via_csv:
        from_mqtt = selfreport.with_scores(via_mqtt.frame("self_report", start=FIRST, stop=LAST))
        from_csv = selfreport.with_scores(via_csv.frame("self_report", start=FIRST, stop=LAST))
    pd.testing.assert_frame_equal(from_mqtt, from_csv)
    assert (from_mqtt["item"] == "total").sum() > 0  # PHQ-9 scored
    # ... and `wellsense selfreport agreement` recovers the synthetic study's bias.
    for key, value in _env(mqtt_conn):
        monkeypatch.setenv(key, value)
    out = tmp_path / "agreement.csv"
    assert cli_selfreport.main(["agreement", "--from", FIRST, "--to", LAST, "--out", str(out)]) == 0
    capsys.readouterr()
    table = pd.read_csv(out)
    for p, participant in enumerate(synth.participants):
        row = table[(table.construct == "sleep_duration_h") & (table.participant == participant)]
        assert row["bias"].item() == pytest.approx(SLEEP_BIAS_H[p] + 0.15, abs=0.35)
    assert set(table[table.participant == "*"].construct) == {"sleep_duration_h", "active_min"}


def _lenient_ok(payload: bytes, topic: str) -> bool:
    try:
        wire.decode_lenient(payload, topic=topic)
    except wire.WireError:
        return False
    return True


def test_invalid_self_reports_are_dead_lettered_naming_the_field(pipeline: Pipeline) -> None:
    cases = [c for c in invalid_cases() if c["name"].startswith("selfreport_")]
    assert len(cases) >= 10
    study = pipeline.study
    bad = []
    for i, c in enumerate(cases):
        payload = c["payload"].replace('"study":"pilot"', f'"study":"{study}"')
        # Each its own sequence number: a repeat would be a duplicate, not a dead letter.
        if c["field"] != "seq":
            try:
                body = json.loads(payload)
            except ValueError:
                pass
            else:
                body["seq"] = 1000 + i
                payload = json.dumps(body, separators=(",", ":"))
        bad.append((c["topic"].replace("/pilot/", f"/{study}/"), payload.encode()))
    # A wrong answer set inside an otherwise valid message drops only that
    # sample (per-sample validation, docs/wire.md); the rest are rejected whole.
    partial = {i for i, (t, p) in enumerate(bad) if _lenient_ok(p, t)}
    good = selfreport_messages(
        [selfreport.Answer("p-7f3a9c", 1_764_142_200_000_000_000, "mood", "mood", 5.0)], study
    )
    deadletters = Collector(pipeline.broker, f"wellsense/v1/{study}/_deadletter")
    service = pipeline.start(features={"enabled": False})
    whole = len(cases) - len(partial)
    try:
        publish_all(pipeline.broker, bad)
        publish_messages(pipeline.broker, good)
        wait_until(lambda: deadletters.payloads.qsize() >= whole, 30, "dead letters")
        wait_until(
            lambda: service.metrics.messages_written == 1 + len(partial), 20, "the valid data"
        )
        records = deadletters.records()
    finally:
        deadletters.close()
    by_payload = {base64.b64decode(r["payload_b64"]): r for r in records}
    with DeadLetterStore(pipeline.directory / "deadletter-w1.sqlite") as store:
        dropped = {d.seq: d for d in store.list() if d.kind == "samples"}
    for i, (case, (topic, payload)) in enumerate(zip(cases, bad, strict=True)):
        if i in partial:
            letter = dropped[1000 + i]
            assert (letter.field, letter.topic) == (case["field"], topic), case["name"]
            assert letter.reason == getattr(wire, case["error"]).reason, case["name"]
            continue
        record = by_payload[payload]
        assert (record["field"], record["topic"]) == (case["field"], topic), case["name"]
        assert record["reason"] == getattr(wire, case["error"]).reason, case["name"]
    assert ("mood", 5.0) in [r[3:] for r in _self_reports(pipeline, pipeline.bucket)]
    assert pipeline.stop(service) == 0
