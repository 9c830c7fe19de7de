"""Helpers for the processing integration tests: real broker, real database, real service.

Import the fixtures into a test module (``from tests.integration.processing_fixture
import pipeline``). Each test gets its own study id (so its own topics and
MQTT session) and its own InfluxDB bucket, so tests never see each other's
data. Nothing is mocked: messages go through the suite's Mosquitto into the
suite's InfluxDB, published by a synthetic gateway that speaks wire contract v1.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from influxdb_client import InfluxDBClient
from paho.mqtt.enums import CallbackAPIVersion

from collector import wire
from processing import config as pconfig
from processing.service import Service
from wellsense_cli import localservices as ls

REPO = Path(__file__).resolve().parents[2]
T0_NS = 1_764_115_200_000_000_000  # 2025-11-26T00:00:00Z, a fixed data time


def wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# --------------------------------------------------------------------------- synthetic data


def hr_messages(
    *,
    study: str,
    participant: str,
    device: str,
    n_messages: int,
    samples_per_message: int = 5,
    start_ns: int = T0_NS,
    first_seq: int = 0,
    period_ns: int = 1_000_000_000,
) -> list[wire.Message]:
    """HR messages with one sample per ``period_ns`` and 1-2 RR intervals per sample."""
    out = []
    t = start_ns
    for k in range(n_messages):
        samples = []
        for i in range(samples_per_message):
            n = k * samples_per_message + i
            rr = (
                (800.0 + 40.0 * ((n * 7919) % 11) / 10, 810.0 + (n % 5))
                if n % 3 == 0
                else (795.0 + (n % 13),)
            )
            samples.append(
                wire.HrSample(ts_ns=t, hr_bpm=70 + n % 9, contact=True, energy_kj=None, rr_ms=rr)
            )
            t += period_ns
        out.append(
            wire.Message(
                stream="hr",
                study=study,
                participant=participant,
                device=device,
                gateway="gw-test",
                seq=first_seq + k,
                sent_ns=t,
                clock=wire.ClockQuality(True, "sim", 5.0),
                samples=tuple(samples),
            )
        )
    return out


def mqtt_client(broker: ls.Mosquitto, client_id: str = "") -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.username_pw_set(broker.username, broker.password)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    return client


def publish_all(
    broker: ls.Mosquitto, items: list[tuple[str, bytes]], timeout_s: float = 60
) -> None:
    """Publish (topic, payload) pairs at QoS 1 and wait for every PUBACK."""
    client = mqtt_client(broker)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in items]
        deadline = time.monotonic() + timeout_s
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "broker did not acknowledge a test message"
    finally:
        client.disconnect()
        client.loop_stop()


def publish_messages(broker: ls.Mosquitto, messages: list[wire.Message]) -> None:
    publish_all(broker, [(m.topic, wire.encode(m)) for m in messages])


class Collector:
    """Subscribes to a topic and keeps every payload (dead letters, for instance)."""

    def __init__(self, broker: ls.Mosquitto, topic: str) -> None:
        self.payloads: queue.Queue[bytes] = queue.Queue()
        self._subscribed = threading.Event()
        self.client = mqtt_client(broker)
        self.client.on_message = lambda c, u, msg: self.payloads.put(bytes(msg.payload))
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def records(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(json.loads(self.payloads.get_nowait()))
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------- the pipeline


@dataclass
class Pipeline:
    """One test's study, bucket, config files and running workers."""

    broker: ls.Mosquitto
    influx: ls.Influxd
    directory: Path
    study: str
    bucket: str
    buckets: list[str] = field(default_factory=list)
    _threads: list[tuple[Service, threading.Thread, list[int]]] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self) -> InfluxDBClient:
        return InfluxDBClient(url=self.influx.url, token=self.influx.token, org=self.influx.org)

    def write_config(self, worker: str = "w1", **sections: dict[str, Any]) -> Path:
        secret_dir = self.directory / "secrets"
        secret_dir.mkdir(exist_ok=True)
        password, token = secret_dir / "mqtt-password", secret_dir / "influx-token"
        for path, value in ((password, self.broker.password), (token, self.influx.token)):
            path.write_text(value)
            path.chmod(0o600)
        merged: dict[str, dict[str, Any]] = {
            "service": {
                "study": self.study,
                "worker": worker,
                "stats_interval_s": 2,
                "batch_max_wait_ms": 100,
            },
            "mqtt": {
                "url": self.broker.url,
                "username": self.broker.username,
                "password_file": str(password),
                "ca_file": str(self.broker.ca_file),
                "session_expiry_s": 600,
            },
            "influx": {
                "url": self.influx.url,
                "org": self.influx.org,
                "bucket": self.bucket,
                "token_file": str(token),
                "retry_max_s": 2,
            },
            "features": {"settle_s": 0, "idle_s": 1.5},
            "deadletter": {"path": str(self.directory / f"deadletter-{worker}.sqlite")},
        }
        for name, values in sections.items():
            merged.setdefault(name, {}).update(values)
        path = self.directory / f"processing-{worker}.toml"
        path.write_text("\n".join(_toml_table(name, values) for name, values in merged.items()))
        return path

    # -- in-process workers (fast) ------------------------------------------------------

    def start(self, worker: str = "w1", **sections: dict[str, Any]) -> Service:
        config = pconfig.load(self.write_config(worker, **sections))
        service = Service(config)
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(service.run()), daemon=True)
        thread.start()
        self._threads.append((service, thread, result))
        assert service.connected.wait(15), "processing did not connect to the broker"
        time.sleep(0.3)  # the SUBACK follows the CONNACK
        return service

    def stop(self, service: Service, timeout_s: float = 60) -> int:
        for s, thread, result in self._threads:
            if s is service:
                s.stop.set()
                thread.join(timeout_s)
                assert not thread.is_alive(), "processing did not stop"
                return result[0]
        raise KeyError(service)

    # -- real processes (fault tests) ---------------------------------------------------

    def spawn(
        self,
        worker: str = "w1",
        extra_env: dict[str, str] | None = None,
        **sections: dict[str, Any],
    ) -> subprocess.Popen[bytes]:
        cfg = self.write_config(worker, **sections)
        log_path = self.directory / f"processing-{worker}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")}
        env["PYTHONPATH"] = str(REPO)
        env.update(extra_env or {})
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "wellsense_cli.main", "process", "--config", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        self._procs.append(proc)
        wait_until(
            lambda: (
                "connected to broker" in log_path.read_text(errors="replace")
                or proc.poll() is not None
            ),
            30,
            "the processing process to connect",
        )
        time.sleep(0.3)
        return proc

    def log_text(self, worker: str = "w1") -> str:
        return (self.directory / f"processing-{worker}.log").read_text(errors="replace")

    def close(self) -> None:
        for s, thread, _ in self._threads:
            s.stop.set()
            thread.join(30)
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    # -- queries ----------------------------------------------------------------------

    def flux(self, body: str, bucket: str | None = None) -> list[dict[str, Any]]:
        query = (
            f'from(bucket: "{bucket or self.bucket}") |> range(start: 2000-01-01T00:00:00Z) {body}'
        )
        with self.client() as client:
            tables = client.query_api().query(query)
        return [record.values for table in tables for record in table.records]

    def count(self, measurement: str, field_name: str, bucket: str | None = None) -> int:
        rows = self.flux(
            f'|> filter(fn: (r) => r._measurement == "{measurement}"'
            f' and r._field == "{field_name}") |> group() |> count()',
            bucket,
        )
        return int(rows[0]["_value"]) if rows else 0

    def seq_counts(self, measurement: str = "hr") -> Counter[tuple[str, int]]:
        """How many points of ``measurement`` each (device, seq) has."""
        rows = self.flux(
            f'|> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "seq")'
        )
        return Counter((r["device"], int(r["_value"])) for r in rows)

    def dump(
        self, bucket: str | None = None, exclude: tuple[str, ...] = ("wellsense_self",)
    ) -> list[tuple[Any, ...]]:
        """Every stored value, sorted: for comparing two runs."""
        rows = self.flux("", bucket)
        skip = {"result", "table", "_start", "_stop"}
        out = []
        for r in rows:
            if r["_measurement"] in exclude:
                continue
            tags = tuple(
                sorted((k, v) for k, v in r.items() if k not in skip and not k.startswith("_"))
            )
            out.append((r["_measurement"], tags, r["_time"].isoformat(), r["_field"], r["_value"]))
        return sorted(out, key=repr)

    def new_bucket(self, name: str) -> str:
        with self.client() as client:
            client.buckets_api().create_bucket(bucket_name=name, org=self.influx.org)
        self.buckets.append(name)
        return name


def _toml_table(name: str, values: dict[str, Any]) -> str:
    lines = [f"[{name}]"]
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            text = json.dumps(str(value))
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def pipeline(mosquitto: ls.Mosquitto, influxd: ls.Influxd, tmp_path: Path) -> Iterator[Pipeline]:
    run = uuid.uuid4().hex[:8]
    p = Pipeline(mosquitto, influxd, tmp_path, study=f"t{run}", bucket=f"test-{run}")
    p.new_bucket(p.bucket)
    try:
        yield p
    finally:
        p.close()
        with contextlib.suppress(Exception), p.client() as client:
            for name in p.buckets:
                bucket = client.buckets_api().find_bucket_by_name(name)
                if bucket is not None:
                    client.buckets_api().delete_bucket(bucket)
