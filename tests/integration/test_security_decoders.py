"""Nothing in a message can stop processing: hostile payloads through the real broker.

A retained gateway ``state`` of ``[`` x 100,000 once escaped ``run()``
(RecursionError), was never acknowledged and came back at every restart.
Here it, and a few hundred other hostile payloads on every topic processing
subscribes to, are dead-lettered while valid data published after them is
stored, and a restarted worker does not see them again.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from collector import wire
from tests.integration.processing_fixture import (
    Collector,
    Pipeline,
    hr_messages,
    mqtt_client,
    pipeline,
    publish_all,
    publish_messages,
    wait_until,
)

pytestmark = pytest.mark.integration
__all__ = ["pipeline"]


def _publish_retained(pipeline: Pipeline, topic: str, payload: bytes) -> None:
    client = mqtt_client(pipeline.broker)
    client.connect("127.0.0.1", pipeline.broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(30)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_deeply_nested_retained_state_is_dead_lettered_and_ingestion_continues(
    pipeline: Pipeline,
) -> None:
    study = pipeline.study
    state_topic = wire.gateway_topic(study, "gw-evil", "state")
    _publish_retained(pipeline, state_topic, b"[" * 100_000)
    deadletters = Collector(pipeline.broker, f"wellsense/v1/{study}/_deadletter")
    service = pipeline.start(features={"enabled": False})
    try:
        good = hr_messages(study=study, participant="p-1", device="d-1", n_messages=4)
        publish_messages(pipeline.broker, good)
        wait_until(lambda: service.metrics.messages_written >= 4, 60, "valid data stored")
        wait_until(lambda: deadletters.payloads.qsize() >= 1, 30, "the dead letter")
        assert pipeline.stop(service) == 0
        # A restart gets the retained message again (it is retained, not queued)
        # and dead-letters it again: it never stops the worker.
        again = pipeline.start(features={"enabled": False})
        later = hr_messages(
            study=study,
            participant="p-1",
            device="d-1",
            n_messages=2,
            first_seq=4,
            start_ns=good[-1].samples[-1].ts_ns + 10**9,
        )
        publish_messages(pipeline.broker, later)
        wait_until(lambda: again.metrics.messages_written >= 2, 60, "data after the restart")
        assert pipeline.stop(again) == 0
        records = deadletters.records()
    finally:
        deadletters.close()
    assert records and {r["topic"] for r in records} == {state_topic}
    assert {r["reason"] for r in records} == {"bad_json"}
    assert pipeline.count("hr", "hr_bpm") == 6 * 5


def _hostile(study: str, n: int) -> list[tuple[str, bytes]]:
    rng = random.Random(12)
    topics = [wire.participant_topic(study, "p-h", s) for s in sorted(wire.PARTICIPANT_STREAMS)]
    topics += [
        wire.gateway_topic(study, "gw-h", "health"),
        wire.gateway_topic(study, "gw-h", "state"),
    ]
    bodies = [
        b"[" * 100_000,
        b"{" * 50_000,
        b'{"a":' * 40_000,
        b'{"schema": "wellsense.v1", "seq": ' + b"9" * 5000 + b"}",
        b'{"state": "online", "ts_ns": ' + b"7" * 5000 + b"}",
        b'{"state": "online", "ts_ns": 1e999}',
        b'{"state": "online", "ts_ns": NaN}',
        b'{"state": ["online"], "ts_ns": {}}',
        b"\xff\xfe\xfd",
        b'"\\ud800\\udfff\\u0000"',
        b"null",
        b"[]",
        b"1" * 100,
    ]
    out = []
    for k in range(n):
        body = bodies[k % len(bodies)]
        if k % 5 == 4:
            body = body[: rng.randrange(1, len(body) + 1)] + bytes(
                rng.randrange(256) for _ in range(8)
            )
        out.append((topics[k % len(topics)], body))
    return out


def test_hundreds_of_hostile_payloads_on_every_topic_are_dead_lettered(
    pipeline: Pipeline,
) -> None:
    study = pipeline.study
    hostile = _hostile(study, 300)
    deadletters = Collector(pipeline.broker, f"wellsense/v1/{study}/_deadletter")
    service = pipeline.start(features={"enabled": False})
    try:
        publish_all(pipeline.broker, hostile)
        good = hr_messages(study=study, participant="p-1", device="d-1", n_messages=3)
        publish_messages(pipeline.broker, good)
        wait_until(lambda: service.metrics.received >= 303, 120, "every message received")
        wait_until(lambda: deadletters.payloads.qsize() >= 300, 60, "300 dead letters")
        wait_until(lambda: service.metrics.messages_written >= 3, 30, "the valid data stored")
        records = deadletters.records()
        assert pipeline.stop(service) == 0
    finally:
        deadletters.close()
    assert len(records) == 300
    reasons = Counter(r["reason"] for r in records)
    assert "decoder_failed" not in reasons, reasons  # every failure has a named reason
    assert {r["topic"] for r in records} == {t for t, _ in hostile}
    assert all(json.loads(json.dumps(r)) == r for r in records)
    assert pipeline.count("hr", "hr_bpm") == 3 * 5


def test_a_decoder_bug_dead_letters_the_message_instead_of_stopping_ingestion(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The net under the decoders: an unexpected exception is a ``decoder_failed`` letter."""
    real_decode = wire.decode_lenient

    def buggy(
        payload: bytes, topic: str | None = None
    ) -> tuple[wire.Message, tuple[wire.DroppedSample, ...]]:
        if b"BUG" in payload:
            raise ZeroDivisionError("a decoder bug")
        return real_decode(payload, topic=topic)

    monkeypatch.setattr(wire, "decode_lenient", buggy)
    study = pipeline.study
    deadletters = Collector(pipeline.broker, f"wellsense/v1/{study}/_deadletter")
    service = pipeline.start(features={"enabled": False})
    try:
        publish_all(pipeline.broker, [(wire.participant_topic(study, "p-1", "hr"), b'"BUG"')])
        good = hr_messages(study=study, participant="p-1", device="d-1", n_messages=2)
        publish_messages(pipeline.broker, good)
        wait_until(lambda: service.metrics.messages_written >= 2, 60, "valid data stored")
        wait_until(lambda: deadletters.payloads.qsize() >= 1, 30, "the dead letter")
        records = deadletters.records()
        assert pipeline.stop(service) == 0
    finally:
        deadletters.close()
    assert [(r["reason"], r["error"]) for r in records] == [("decoder_failed", "ZeroDivisionError")]
