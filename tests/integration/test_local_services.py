"""The suite's own Mosquitto and InfluxDB 2.x are real and locked down."""

from __future__ import annotations

import os
import queue
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from wellsense_cli import localservices as ls

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_influx_write_then_flux_query(influxd: ls.Influxd) -> None:
    run = uuid.uuid4().hex[:8]
    ts = time.time_ns() - 10**9
    with InfluxDBClient(url=influxd.url, token=influxd.token, org=influxd.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            influxd.bucket,
            record=[
                Point("smoke")
                .tag("run", run)
                .field("hr_bpm", 61.0 + i)
                .time(ts + i, WritePrecision.NS)
                for i in range(3)
            ],
        )
        tables = client.query_api().query(
            f'from(bucket: "{influxd.bucket}") |> range(start: -1h) '
            f'|> filter(fn: (r) => r._measurement == "smoke" and r.run == "{run}")'
        )
    values = [record.get_value() for table in tables for record in table.records]
    assert values == [61.0, 62.0, 63.0]


def test_influx_is_version_2(influxd: ls.Influxd) -> None:
    with InfluxDBClient(url=influxd.url, token=influxd.token, org=influxd.org) as client:
        assert client.version().startswith("2.")


def _client(
    broker: ls.Mosquitto, username: str | None, password: str | None, *, tls: bool = True
) -> tuple[mqtt.Client, queue.Queue[object]]:
    events: queue.Queue[object] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if tls:
        client.tls_set(ca_certs=str(broker.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p: events.put(("connect", rc))
    client.on_message = lambda c, u, msg: events.put(("message", msg.topic, msg.payload))
    client.on_subscribe = lambda c, u, mid, rcs, p: events.put(("subscribed", rcs))
    return client, events


def _connect_result(broker: ls.Mosquitto, username: str | None, password: str | None) -> object:
    client, events = _client(broker, username, password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        _, rc = events.get(timeout=10)  # type: ignore[misc]
        return rc
    finally:
        client.disconnect()
        client.loop_stop()


def test_mqtt_publish_and_receive_over_tls_with_password(mosquitto: ls.Mosquitto) -> None:
    sub, events = _client(mosquitto, mosquitto.username, mosquitto.password)
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        assert events.get(timeout=10) == ("connect", ReasonCode(mqtt.CONNACK >> 4, "Success"))
        sub.subscribe("wellsense/v1/smoke/#", qos=1)
        assert events.get(timeout=10)[0] == "subscribed"  # type: ignore[index]
        pub, _ = _client(mosquitto, mosquitto.username, mosquitto.password)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        pub.publish("wellsense/v1/smoke/p-1/hr", b"hello", qos=1).wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        assert events.get(timeout=10) == ("message", "wellsense/v1/smoke/p-1/hr", b"hello")
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_mqtt_refuses_anonymous_and_wrong_password(mosquitto: ls.Mosquitto) -> None:
    anonymous = _connect_result(mosquitto, None, None)
    wrong = _connect_result(mosquitto, mosquitto.username, "not-the-password")
    right = _connect_result(mosquitto, mosquitto.username, mosquitto.password)
    assert isinstance(anonymous, ReasonCode) and anonymous.is_failure
    assert isinstance(wrong, ReasonCode) and wrong.is_failure
    assert isinstance(right, ReasonCode) and not right.is_failure


def test_mqtt_refuses_plain_tcp(mosquitto: ls.Mosquitto) -> None:
    client, _ = _client(mosquitto, mosquitto.username, mosquitto.password, tls=False)
    client.connect("127.0.0.1", mosquitto.port)
    # The TLS listener drops a plaintext CONNECT: no CONNACK ever arrives.
    rc = client.loop(timeout=3)
    assert not client.is_connected()
    assert rc != mqtt.MQTT_ERR_SUCCESS or not client.is_connected()
    client.disconnect()


def test_services_up_prints_settings_that_work_and_down_leaves_nothing(tmp_path: Path) -> None:
    directory = Path(tmp_path / "svc")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "wellsense_cli.main", "services"]
    up = subprocess.run(
        [*cli, "up", "--dir", str(directory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    settings = dict(
        line.removeprefix("export ").split("=", 1)
        for line in up.stdout.splitlines()
        if line.startswith("export ")
    )
    state = ls.load_state(directory)
    assert state is not None
    try:
        assert list(settings) == list(ls.ENV_NAMES)
        assert settings["WELLSENSE_MQTT_URL"].startswith("mqtts://127.0.0.1:")
        # The README's example: those settings work from Python.
        example = (REPO / "docs" / "services_example.py").read_text()
        check = subprocess.run(
            [sys.executable, "-c", example],
            capture_output=True,
            text=True,
            env={**env, **{k: v.strip("'") for k, v in settings.items()}},
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        assert "influx ok" in check.stdout and "mqtt ok" in check.stdout
    finally:
        down = subprocess.run(
            [*cli, "down", "--dir", str(directory)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert down.returncode == 0
    # A stopped daemon may linger as a zombie until init reaps it; it runs no more.
    assert ls.running(state) == {"mosquitto": False, "influxd": False}
