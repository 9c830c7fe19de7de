"""End-to-end acknowledgement through the real broker, processing and InfluxDB.

The gateway side is the collector's own outbox, batcher and publisher (in
process, without BLE); processing is the real service. A message leaves the
outbox only when processing confirms it is stored, so losses at the broker
(no subscriber, an expired session) are repaired by re-sending, and a
replaced outbox (new epoch, sequence numbers from 0) is stored in full.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from collector import stored, wire
from collector.batcher import Batcher, Route
from collector.outbox import Outbox
from collector.publisher import Publisher
from collector.tomlconfig import MqttSettings
from tests.integration.processing_fixture import (
    T0_NS,
    Pipeline,
    pipeline,
    publish_all,
    wait_until,
)
from wellsense_cli import localservices as ls

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration

SAMPLES = 5
ROUTE = Route("p-1", "dev-1")


class Gateway:
    """Outbox + batcher + publisher of one gateway, on a real broker."""

    def __init__(
        self, broker: ls.Mosquitto, study: str, path: Path, max_unconfirmed: int = 1000
    ) -> None:
        self.broker, self.study, self.max_unconfirmed = broker, study, max_unconfirmed
        self.outbox = Outbox(path, synchronous="NORMAL")
        self.publisher = self._publisher()
        self.batcher = Batcher(
            self.outbox,
            study,
            "gw-test",
            lambda: wire.ClockQuality(True, "sim", 5.0),
            on_commit=lambda: self.publisher.wake(),
        )
        self.next_ts = T0_NS

    def _publisher(self) -> Publisher:
        settings = MqttSettings(
            host="127.0.0.1",
            port=self.broker.port,
            tls=True,
            username=self.broker.username,
            ca_file=self.broker.ca_file,
            client_cert_file=None,
            client_key_file=None,
            keepalive_s=30,
            password=self.broker.password,
        )
        return Publisher(
            settings,
            self.outbox,
            self.study,
            "gw-test",
            confirm_timeout_s=1.0,
            confirm_timeout_max_s=4.0,
            max_unconfirmed=self.max_unconfirmed,
        )

    def start(self) -> Gateway:
        self.publisher.start()
        wait_until(lambda: self.publisher.connected, 15, "the gateway to connect")
        return self

    def send(self, n_messages: int) -> None:
        for _ in range(n_messages):
            samples = []
            for _ in range(SAMPLES):
                samples.append(wire.HrSample(self.next_ts, 70, True, None, (850.0,)))
                self.next_ts += 10**9
            self.batcher.send(ROUTE, "hr", tuple(samples))

    def wait_empty(self, timeout_s: float) -> None:
        wait_until(lambda: self.outbox.stats().depth == 0, timeout_s, "every message confirmed")

    def close(self) -> None:
        self.publisher.stop()
        self.outbox.close()


def _points_per_message(p: Pipeline) -> Counter[int]:
    """How many (device, seq) pairs have 1, 2, ... hr points."""
    return Counter(p.seq_counts().values())


def _hr_points(p: Pipeline) -> int:
    return p.count("hr", "hr_bpm")


@pytest.mark.slow
def test_no_subscriber_for_2_min_loses_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    gw = Gateway(pipeline.broker, pipeline.study, tmp_path / "outbox.sqlite3").start()
    try:
        # Nobody subscribes: the broker acks with 0x10 and drops each message.
        for _ in range(120):
            gw.send(1)
            time.sleep(1)
        wait_until(lambda: gw.outbox.stats().sent == 120, 30, "every message sent")
        assert gw.outbox.stats().depth == 120, "a PUBACK alone deleted a message"
        pipeline.start()
        gw.wait_empty(120)
        assert gw.publisher.counters.resent >= 120
        assert _hr_points(pipeline) == 120 * SAMPLES
        assert _points_per_message(pipeline) == Counter({SAMPLES: 120})
    finally:
        gw.close()


@pytest.mark.slow
def test_processing_session_expired_loses_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    gw = Gateway(pipeline.broker, pipeline.study, tmp_path / "outbox.sqlite3").start()
    try:
        service = pipeline.start(mqtt={"session_expiry_s": 60})
        gw.send(10)
        gw.wait_empty(60)
        pipeline.stop(service)
        # Queued for processing's session, then dropped with it when it expires.
        for _ in range(75):
            gw.send(1)
            time.sleep(1)
        assert gw.outbox.stats().depth == 75
        pipeline.start(mqtt={"session_expiry_s": 60})
        gw.wait_empty(120)
        assert gw.publisher.counters.resent > 0  # what the expired session dropped
        assert _hr_points(pipeline) == 85 * SAMPLES
        assert _points_per_message(pipeline) == Counter({SAMPLES: 85})
    finally:
        gw.close()


def test_replaced_outbox_stores_every_new_message(pipeline: Pipeline, tmp_path: Path) -> None:
    service = pipeline.start()
    first = Gateway(pipeline.broker, pipeline.study, tmp_path / "outbox.sqlite3").start()
    first.send(300)
    first.wait_empty(120)
    old_epoch, next_ts = first.outbox.epoch, first.next_ts
    first.close()
    # The file is moved aside (as for a corrupt outbox): a new one, seq from 0 again.
    (tmp_path / "outbox.sqlite3").rename(tmp_path / "outbox.sqlite3.corrupt")
    second = Gateway(pipeline.broker, pipeline.study, tmp_path / "outbox.sqlite3")
    second.next_ts = next_ts
    second.start()
    try:
        assert second.outbox.epoch != old_epoch
        second.send(300)
        second.wait_empty(120)
        assert service.metrics.duplicates == 0
        assert _hr_points(pipeline) == 600 * SAMPLES
        # Both outboxes used seq 0..299: each (device, seq) has two messages' points.
        assert _points_per_message(pipeline) == Counter({2 * SAMPLES: 300})
    finally:
        second.close()


def test_lost_confirmations_and_dead_letters_are_confirmed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    service = pipeline.start()
    pipeline.stop(service)  # its session queues what comes next
    gw = Gateway(pipeline.broker, pipeline.study, tmp_path / "outbox.sqlite3").start()
    try:
        gw.send(20)
        # A message that fails validation (participant differs from its topic).
        topic = wire.participant_topic(pipeline.study, "p-1", "hr")
        body = json.loads(gw.outbox.peek(1)[0].payload)
        body.update(seq=20, participant="p-2")
        gw.outbox.append(topic, json.dumps(body).encode(), ROUTE.device, 20)
        gw.publisher.wake()
        wait_until(lambda: gw.outbox.stats().sent == 21, 30, "every message sent")
        # The gateway goes away: processing's confirmations find nobody.
        gw.publisher.stop()
        service = pipeline.start()
        wait_until(lambda: _hr_points(pipeline) == 20 * SAMPLES, 60, "the messages stored")
        time.sleep(1)
        assert gw.outbox.stats().depth == 21
        # Back: everything is sent again; repeats and the dead letter are confirmed.
        gw.publisher = gw._publisher()
        gw.start()
        gw.wait_empty(60)
        assert service.metrics.duplicates >= 20
        assert gw.publisher.counters.confirmed_dead == 1
        assert gw.outbox.stats().confirmed_dead == 1
        assert _points_per_message(pipeline) == Counter({SAMPLES: 20})
    finally:
        gw.close()


def test_backlog_waits_in_the_outbox_not_at_the_broker(pipeline: Pipeline, tmp_path: Path) -> None:
    gw = Gateway(pipeline.broker, pipeline.study, tmp_path / "outbox.sqlite3", max_unconfirmed=5)
    gw.start()
    try:
        gw.send(40)
        wait_until(lambda: gw.outbox.stats().sent == 5, 30, "the first 5 sent")
        time.sleep(3)  # re-sends happen meanwhile; nothing new goes out
        stats = gw.outbox.stats()
        assert (stats.depth, stats.sent, gw.publisher.counters.published) == (40, 5, 5)
        pipeline.start()
        gw.wait_empty(120)
        assert gw.publisher.counters.published == 40
        assert _points_per_message(pipeline) == Counter({SAMPLES: 40})
    finally:
        gw.close()


def test_bad_confirmations_are_ignored_and_delete_nothing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    gw = Gateway(pipeline.broker, pipeline.study, tmp_path / "outbox.sqlite3").start()
    try:
        gw.send(3)
        wait_until(lambda: gw.outbox.stats().sent == 3, 30, "every message sent")
        topic = wire.gateway_topic(pipeline.study, "gw-test", "stored")
        forged_epoch = stored.encode([stored.StoredEntry("f" * 32, ROUTE.device, ((0, 2),))])
        publish_all(
            pipeline.broker,
            [
                (topic, b"[" * 100_000),
                (topic, b'{"schema": "wellsense.stored.v1", "entries": [{"device": 1}]}'),
                (topic, b"\xff" * 1000),
                (topic, forged_epoch),  # valid, but for another outbox: matches nothing
            ],
        )
        wait_until(lambda: gw.publisher.counters.bad_confirmations == 3, 10, "3 refused")
        time.sleep(0.5)
        assert gw.outbox.stats().depth == 3
        assert gw.publisher.healthy()
        # A good one still works.
        publish_all(
            pipeline.broker,
            [
                (
                    topic,
                    stored.encode([stored.StoredEntry(gw.outbox.epoch, ROUTE.device, ((0, 2),))]),
                )
            ],
        )
        gw.wait_empty(10)
    finally:
        gw.close()
