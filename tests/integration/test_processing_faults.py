"""Fault tests with real processes: InfluxDB outage, SIGKILL, bad token, rejected data.

The service runs as ``python -m wellsense_cli.main process`` in its own
process. "0 lost, 0 duplicates" is checked the way a researcher would: every
(device, seq) sent has exactly as many ``hr`` points as the message had samples.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from collections import Counter

import psutil
import pytest

from collector import wire
from processing.writer import InfluxWriter
from tests.integration.processing_fixture import (
    T0_NS,
    Collector,
    Pipeline,
    hr_messages,
    mqtt_client,
    pipeline,
    publish_messages,
    wait_until,
)
from wellsense_cli import localservices as ls

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
SAMPLES = 5


def _stream(p: Pipeline, participants: int, per_participant: int) -> list[wire.Message]:
    """Interleaved messages of several participants, as several gateways would send them."""
    streams = [
        hr_messages(
            study=p.study,
            participant=f"p-{i}",
            device=f"d-{i}",
            n_messages=per_participant,
            samples_per_message=SAMPLES,
        )
        for i in range(participants)
    ]
    return [m for group in zip(*streams, strict=True) for m in group]


def _expected(messages: list[wire.Message]) -> Counter[tuple[str, int]]:
    return Counter({(m.device, m.seq): len(m.samples) for m in messages})


class PacedPublisher(threading.Thread):
    """Publishes messages at a steady rate (QoS 1) from its own thread."""

    def __init__(self, broker: ls.Mosquitto, messages: list[wire.Message], per_s: float) -> None:
        super().__init__(daemon=True)
        self.broker, self.messages, self.per_s = broker, messages, per_s
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        client = mqtt_client(self.broker)
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        try:
            infos = []
            start = time.monotonic()
            for i, m in enumerate(self.messages):
                delay = start + i / self.per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                infos.append(client.publish(m.topic, wire.encode(m), qos=1))
                self.sent += 1
            for info in infos:
                info.wait_for_publish(60)
                assert info.is_published()
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            client.disconnect()
            client.loop_stop()


def _stats(p: Pipeline, worker: str = "w1") -> list[dict[str, object]]:
    out = []
    for text in p.log_text(worker).splitlines():
        if '"msg": "stats"' in text:
            out.append(json.loads(text))
    return out


@pytest.mark.slow
def test_influxdb_down_for_60_s_loses_nothing_and_memory_stays_bounded(
    pipeline: Pipeline, influxd: ls.Influxd
) -> None:
    messages = _stream(pipeline, participants=4, per_participant=250)  # 1000 msgs, 5000 samples
    proc = pipeline.spawn(
        service={"max_inflight": 50, "batch_max_points": 500}, features={"enabled": False}
    )
    publisher = PacedPublisher(pipeline.broker, messages, per_s=12)  # ~83 s of traffic
    publisher.start()
    wait_until(lambda: publisher.sent >= 100, 30, "traffic before the outage")
    wait_until(lambda: pipeline.count("hr", "seq") > 0, 30, "first points written")
    rss_before = psutil.Process(proc.pid).memory_info().rss
    influxd.stop()
    try:
        outage_started = time.monotonic()
        time.sleep(60)
        assert proc.poll() is None, "processing died during the outage"
        rss_during = psutil.Process(proc.pid).memory_info().rss
        sent_during = publisher.sent
    finally:
        influxd.start()
    publisher.join(120)
    assert publisher.error is None
    assert sent_during >= 700, "the outage did not happen mid-stream"
    expected = _expected(messages)
    wait_until(lambda: pipeline.seq_counts() == expected, 120, "every sample stored exactly once")
    assert proc.poll() is None
    # Back-pressure: the broker held the backlog; the worker never held more than max_inflight.
    during = [s for s in _stats(pipeline) if s["inflight"] is not None]
    assert max(int(s["inflight"]) for s in during) <= 50  # type: ignore[call-overload]
    assert rss_during - rss_before < 50 * 2**20
    assert "retrying without acknowledging" in pipeline.log_text()
    # Not silent: a stats line every interval (2 s here) while the write retried.
    pending = [float(s["write_pending_s"]) for s in _stats(pipeline)]  # type: ignore[arg-type]
    assert max(pending) >= 50, "no stats line late in the outage"
    assert sum(1 for p in pending if p > 0) >= 20
    assert time.monotonic() - outage_started >= 60
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def test_sigkill_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(
    pipeline: Pipeline,
) -> None:
    messages = _stream(pipeline, participants=5, per_participant=120)  # 600 msgs, 3000 samples
    proc = pipeline.spawn(service={"batch_max_wait_ms": 300}, features={"enabled": False})
    publisher = PacedPublisher(pipeline.broker, messages, per_s=100)
    publisher.start()
    wait_until(lambda: pipeline.count("hr", "seq") >= 500, 30, "data flowing")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = publisher.sent
    time.sleep(1)
    restarted = pipeline.spawn(service={"batch_max_wait_ms": 300}, features={"enabled": False})
    publisher.join(60)
    assert publisher.error is None and 0 < killed_at < len(messages)
    expected = _expected(messages)
    wait_until(lambda: pipeline.seq_counts() == expected, 60, "every sample stored exactly once")
    # Exactly once as a query: no (device, seq) has more points than samples sent.
    counts = pipeline.seq_counts()
    assert counts == expected and max(counts.values()) == SAMPLES
    assert pipeline.count("rr", "rr_ms") == sum(
        len(s.rr_ms)  # type: ignore[union-attr]
        for m in messages
        for s in m.samples
    )
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(60) == 0


def test_bad_influx_token_stops_loudly_with_exit_4_and_acks_nothing(
    pipeline: Pipeline,
) -> None:
    messages = _stream(pipeline, participants=1, per_participant=3)
    good_token = pipeline.influx.token
    pipeline.influx.token = "not-the-token"
    try:
        proc = pipeline.spawn(features={"enabled": False})
    finally:
        pipeline.influx.token = good_token
    publish_messages(pipeline.broker, messages)
    assert proc.wait(30) == 4  # EXIT_REFUSED, not restarted by systemd
    log = pipeline.log_text()
    assert "InfluxDB refused to store data" in log and '"status": 401' in log
    assert "not-the-token" not in log and good_token not in log
    assert pipeline.count("hr", "seq") == 0
    # Nothing was acknowledged: the same worker, fixed, gets every message again.
    fixed = pipeline.spawn(features={"enabled": False})
    wait_until(
        lambda: pipeline.seq_counts() == _expected(messages), 30, "redelivered messages stored"
    )
    fixed.send_signal(signal.SIGTERM)
    assert fixed.wait(60) == 0


def test_data_influxdb_rejects_is_isolated_and_dead_lettered(pipeline: Pipeline) -> None:
    # energy_kj stored as a float in the same shard: an int energy_kj conflicts (HTTP 422).
    InfluxWriter(
        url=pipeline.influx.url,
        org=pipeline.influx.org,
        bucket=pipeline.bucket,
        token=pipeline.influx.token,
    ).write([f"hr,study={pipeline.study},participant=p-0,device=d-old energy_kj=1.5 {T0_NS}"])
    good = hr_messages(study=pipeline.study, participant="p-1", device="d-1", n_messages=3)
    bad = hr_messages(study=pipeline.study, participant="p-2", device="d-2", n_messages=1)
    sample = bad[0].samples[0]
    assert isinstance(sample, wire.HrSample)
    with_energy = dataclasses.replace(sample, energy_kj=12)
    bad = [dataclasses.replace(bad[0], samples=(with_energy, *bad[0].samples[1:]))]
    deadletters = Collector(pipeline.broker, f"wellsense/v1/{pipeline.study}/_deadletter")
    service = pipeline.start(features={"enabled": False}, service={"batch_max_wait_ms": 500})
    try:
        publish_messages(pipeline.broker, [good[0], bad[0], good[1], good[2]])
        wait_until(lambda: service.metrics.received == 4, 20, "all received")
        wait_until(lambda: deadletters.payloads.qsize() == 1, 20, "one dead letter")
        records = deadletters.records()
    finally:
        deadletters.close()
    assert records[0]["reason"] == "influx_rejected"
    assert "field type conflict" in records[0]["error"]
    assert records[0]["topic"] == bad[0].topic
    counts = pipeline.seq_counts()
    assert {k: v for k, v in counts.items() if k[0] == "d-1"} == _expected(good)
    assert pipeline.stop(service) == 0
