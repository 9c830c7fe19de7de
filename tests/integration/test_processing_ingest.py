"""Processing against the real broker and database: golden messages in, exact points out."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

import pytest

from collector import wire
from tests.golden import invalid_cases, valid_messages
from tests.integration.processing_fixture import (
    Collector,
    Pipeline,
    hr_messages,
    pipeline,
    publish_all,
    publish_messages,
    wait_until,
)

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration


def _golden(study: str) -> dict[str, wire.Message]:
    return {
        name: dataclasses.replace(wire.decode(payload), study=study)
        for name, payload in valid_messages().items()
    }


def test_golden_messages_become_exact_points(pipeline: Pipeline) -> None:
    golden = _golden(pipeline.study)
    service = pipeline.start(features={"enabled": False})
    publish_messages(pipeline.broker, list(golden.values()))
    state = json.dumps({"state": "online", "ts_ns": 1_764_115_100_000_000_000}).encode()
    publish_all(pipeline.broker, [(f"wellsense/v1/{pipeline.study}/_gateways/gw-01/state", state)])
    wait_until(lambda: service.metrics.messages_written == 9, 20, "nine messages written")

    s = pipeline.study
    tags = (("device", "d-1a2b3c"), ("participant", "p-7f3a9c"), ("study", s))
    hr = [r for r in pipeline.dump() if r[0] in ("hr", "rr") and r[1] == tags]
    assert hr == sorted(
        [
            ("hr", tags, "2025-11-25T23:59:58+00:00", "hr_bpm", 62),
            ("hr", tags, "2025-11-25T23:59:58+00:00", "contact", True),
            ("hr", tags, "2025-11-25T23:59:58+00:00", "seq", 42),
            ("hr", tags, "2025-11-25T23:59:59+00:00", "hr_bpm", 63),
            ("hr", tags, "2025-11-25T23:59:59+00:00", "contact", True),
            ("hr", tags, "2025-11-25T23:59:59+00:00", "seq", 42),
            ("hr", tags, "2025-11-25T23:59:59.900000+00:00", "hr_bpm", 0),
            ("hr", tags, "2025-11-25T23:59:59.900000+00:00", "contact", False),
            ("hr", tags, "2025-11-25T23:59:59.900000+00:00", "seq", 42),
            # the last RR of a notification ends at its ts_ns; earlier ones before it
            ("rr", tags, "2025-11-25T23:59:57.015625+00:00", "rr_ms", 968.75),
            ("rr", tags, "2025-11-25T23:59:57.015625+00:00", "seq", 42),
            ("rr", tags, "2025-11-25T23:59:58+00:00", "rr_ms", 984.375),
            ("rr", tags, "2025-11-25T23:59:58+00:00", "seq", 42),
            ("rr", tags, "2025-11-25T23:59:59+00:00", "rr_ms", 951.171875),
            ("rr", tags, "2025-11-25T23:59:59+00:00", "seq", 42),
        ],
        key=repr,
    )
    # Nanoseconds survive: the first beat is exactly 984.375 ms before the second.
    rows = pipeline.flux('|> filter(fn: (r) => r._measurement == "rr" and r._field == "rr_ms")')
    assert sorted(r["_time"].timestamp() for r in rows)[0] == pytest.approx(1764115197.015625)

    # v1.1 (hr-v1.1.json): beats where the gateway's beat clock put them (beat_ns), not at ts_ns.
    tags_v11 = (("device", "d-4d5e6f"), ("participant", "p-7f3a9c"), ("study", s))
    rr_v11 = [(r[2][:23], r[4]) for r in pipeline.dump() if r[:2] == ("rr", tags_v11)]
    assert [v for v in rr_v11 if isinstance(v[1], float)] == [
        ("2025-11-26T00:01:36.627", 968.75),
        ("2025-11-26T00:01:37.612", 984.375),
        ("2025-11-26T00:01:38.563", 951.171875),
    ]

    others = {(r[0], r[2], r[3]): r[4] for r in pipeline.dump() if r[0] not in ("hr", "rr")}
    assert others[("activity", "2025-11-26T00:00:00+00:00", "steps")] == 104
    assert others[("activity", "2025-11-26T00:00:00+00:00", "speed_mps")] == 1.25
    assert ("activity", "2025-11-26T00:00:00+00:00", "counts") not in others  # null: absent
    assert others[("device_status", "2025-11-26T00:01:36+00:00", "battery_pct")] == 83
    assert others[("device_status", "2025-11-26T00:01:30+00:00", "detail")] == "link lost"
    assert others[("gateway_health", "2025-11-26T00:03:20+00:00", "uptime_s")] == 86400.5
    assert others[("gateway_sensor", "2025-11-26T00:03:20+00:00", "battery_pct")] == 83
    assert others[("gateway_state", "2025-11-25T23:58:20+00:00", "state")] == "online"
    # A gateway's features (data minimisation) become a tagged hrv_window point.
    assert others[("hrv_window", "2025-11-25T23:55:00+00:00", "rmssd_ms")] == 32.75
    assert ("hrv_window", "2025-11-25T23:55:00+00:00", "dfa_alpha1") not in others  # null
    (window_tags,) = {r[1] for r in pipeline.dump() if r[0] == "hrv_window"}
    assert dict(window_tags)["source"] == "gateway" and dict(window_tags)["window"] == "300s"
    # Self-reports (questionnaires, EMA) become self_report points of floats.
    assert others[("self_report", "2025-11-26T07:30:00+00:00", "sleep_hours")] == 7.5
    assert others[("self_report", "2025-11-26T08:00:00+00:00", "q3")] == 2.0
    assert others[("self_report", "2025-11-26T08:00:00+00:00", "energy")] == 4.5
    report_tags = {r[1] for r in pipeline.dump() if r[0] == "self_report"}
    assert {dict(t)["instrument"] for t in report_tags} == {"sleep_diary", "phq9", "mood"}
    assert {tuple(k for k, _ in t) for t in report_tags} == {("instrument", "participant", "study")}
    status_events = {r[1] for r in pipeline.dump() if r[0] == "device_status"}
    assert {dict(t)["event"] for t in status_events} == {"disconnected", "connected", "battery"}
    assert pipeline.stop(service) == 0


def test_duplicates_are_acked_not_rewritten_and_gaps_counted(pipeline: Pipeline) -> None:
    msgs = hr_messages(study=pipeline.study, participant="p-1", device="d-1", n_messages=6)
    sent = [msgs[0], msgs[1], msgs[1], msgs[2], msgs[4], msgs[5], msgs[0]]  # 3 is lost
    service = pipeline.start(features={"enabled": False})
    publish_messages(pipeline.broker, sent)
    wait_until(lambda: service.metrics.received == 7, 20, "all messages received")
    wait_until(lambda: service.metrics.messages_written == 5, 20, "five written")
    assert service.metrics.duplicates == 2
    assert (service.metrics.gaps, service.metrics.missing_seq) == (1, 1)
    counts = pipeline.seq_counts()
    assert counts == Counter({("d-1", seq): 5 for seq in (0, 1, 2, 4, 5)})
    # The counters are data too: a wellsense_self point per stats interval.
    wait_until(lambda: pipeline.count("wellsense_self", "duplicates") > 0, 10, "self-metrics")
    rows = pipeline.flux(
        '|> filter(fn: (r) => r._measurement == "wellsense_self" and r._field == "duplicates")'
    )
    assert rows[-1]["_value"] == 2 and rows[-1]["worker"] == "w1"
    pipeline.stop(service)


def _valid_but_samples(payload: bytes, topic: str) -> bool:
    try:
        wire.decode_lenient(payload, topic=topic)
    except wire.WireError:
        return False
    return True


def _malformed(study: str, n: int) -> list[tuple[str, bytes, str]]:
    """``n`` bad (topic, payload, expected reason) triples of every kind."""
    rng = random.Random(7)
    good = hr_messages(study=study, participant="p-1", device="d-1", n_messages=1)[0]
    topic = good.topic
    body = json.loads(wire.encode(good))
    error_reason = {
        "MalformedJsonError": "bad_json",
        "FieldTypeError": "wrong_type",
        "UnknownSchemaError": "unknown_schema",
        "MissingFieldError": "missing_field",
        "UnknownFieldError": "unknown_field",
        "FieldValueError": "bad_value",
        "TopicError": "bad_topic",
    }
    golden = []
    for case in invalid_cases():
        payload = case["payload"].replace('"study":"pilot"', f'"study":"{study}"')
        case_topic = case.get("topic", "wellsense/v1/pilot/p-7f3a9c/hr").replace("pilot", study)
        golden.append((case_topic, payload.encode(), error_reason[case["error"]]))

    def variant(k: int) -> tuple[str, bytes, str]:
        kind = k % 8
        if kind == 0:
            return topic, wire.encode(good)[: rng.randrange(1, 200)], "bad_json"
        if kind == 1:
            b = json.loads(json.dumps(body))
            b["samples"][0]["hr_bpm"] = rng.choice(["70", 70.5, None, [70], True])
            return topic, json.dumps(b).encode(), "wrong_type"
        if kind == 2:
            b = dict(body, schema=f"wellsense.v{rng.randrange(2, 99)}")
            return topic, json.dumps(b).encode(), "unknown_schema"
        if kind == 3:
            return (
                topic,
                json.dumps(body)
                .replace("800.0", "NaN", 1)
                .replace("795.0", "Infinity", 1)
                .encode()
                .replace(b'"rr_ms": [', b'"rr_ms": [NaN, '),
                "bad_value",
            )
        if kind == 4:
            other = f"wellsense/v1/{study}/p-{rng.randrange(2, 999)}/hr"
            return other, wire.encode(good), "bad_topic"
        if kind == 5 and k % 80 == 5:  # a few oversized ones (each 300 kB)
            return topic, b"{" + b" " * (wire.MAX_MESSAGE_BYTES + 10) + b"}", "too_large"
        if kind == 6:
            return topic, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))), "bad_json"
        return golden[k % len(golden)]

    return [variant(k) for k in range(n)]


def test_1000_malformed_messages_are_dead_lettered_and_the_service_stays_up(
    pipeline: Pipeline,
) -> None:
    bad = _malformed(pipeline.study, 1000)
    # A wrong value inside one sample of an otherwise valid message drops only
    # that sample (per-sample validation): those messages are stored, not lost.
    partial = [(t, p, r) for t, p, r in bad if _valid_but_samples(p, t)]
    bad = [b for b in bad if b not in partial]
    assert len(bad) > 500 and len(partial) > 100
    deadletters = Collector(pipeline.broker, f"wellsense/v1/{pipeline.study}/_deadletter")
    service = pipeline.start(features={"enabled": False})
    try:
        publish_all(pipeline.broker, [(t, p) for t, p, _ in bad + partial])
        good = hr_messages(study=pipeline.study, participant="p-1", device="d-1", n_messages=1)
        publish_messages(pipeline.broker, good)
        wait_until(lambda: service.metrics.received == 1001, 60, "all messages received")
        wait_until(lambda: deadletters.payloads.qsize() >= len(bad), 30, "the dead letters")
        records = deadletters.records()
    finally:
        deadletters.close()
    assert len(records) == len(bad)
    assert Counter(r["reason"] for r in records) == Counter(reason for _, _, reason in bad)
    assert sum(service.metrics.dead_lettered.values()) == len(bad)
    # The partial messages share a few (device, seq): the first of each drops its
    # bad samples, the repeats are duplicates (nothing new to store or keep).
    assert set(service.metrics.samples_dropped) == {reason for _, _, reason in partial}
    for r in records:
        assert r["topic"].startswith(f"wellsense/v1/{pipeline.study}/")
        assert r["error"] and "payload_b64" in r
        assert r["payload_bytes"] <= wire.MAX_MESSAGE_BYTES or r["payload_truncated"]
    wait_until(lambda: service.metrics.messages_written >= 1, 20, "the valid message written")
    assert pipeline.stop(service) == 0
    # What is stored: the valid samples of the first message of each
    # (device, epoch, seq), in publishing order (repeats are duplicates).
    first: dict[tuple[str, str | None, int], wire.Message] = {}
    for t, p, _ in partial:
        m, _ = wire.decode_lenient(p, topic=t)
        first.setdefault((m.device, m.epoch, m.seq), m)
    for m in good:
        first.setdefault((m.device, m.epoch, m.seq), m)
    points = {
        (m.participant, m.device, s.ts_ns)
        for m in first.values()
        if m.stream == "hr"
        for s in m.samples
    }
    assert pipeline.count("hr", "hr_bpm") == len(points)
