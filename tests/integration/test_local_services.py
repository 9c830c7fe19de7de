"""The suite's own Mosquitto and InfluxDB 2.x are real and locked down."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
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


# --------------------------------------------------------------------------- lifecycle


def _processes_under(directory: Path) -> list[int]:
    """Pids of live processes whose command line names ``directory``."""
    needle = str(directory).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _influx_points(env: dict[str, str], run: str) -> list[float]:
    with InfluxDBClient(
        url=env["WELLSENSE_INFLUX_URL"],
        token=env["WELLSENSE_INFLUX_TOKEN"],
        org=env["WELLSENSE_INFLUX_ORG"],
    ) as client:
        tables = client.query_api().query(
            f'from(bucket: "{env["WELLSENSE_INFLUX_BUCKET"]}") |> range(start: -1h) '
            f'|> filter(fn: (r) => r._measurement == "smoke" and r.run == "{run}")'
        )
    return [record.get_value() for table in tables for record in table.records]


def _mqtt_accepts(env: dict[str, str]) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=env["WELLSENSE_MQTT_CA"], tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.username_pw_set(env["WELLSENSE_MQTT_USERNAME"], env["WELLSENSE_MQTT_PASSWORD"])
    events: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: events.put(rc)
    client.connect("127.0.0.1", int(env["WELLSENSE_MQTT_URL"].rsplit(":", 1)[1]))
    client.loop_start()
    try:
        rc = events.get(timeout=10)
        return isinstance(rc, ReasonCode) and not rc.is_failure
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def svc_dir() -> Iterator[Path]:
    from tests.conftest import scratch_dir

    directory = scratch_dir("svc") / "services"
    try:
        yield directory
    finally:
        ls.stop_recorded(directory)
        shutil.rmtree(directory.parent, ignore_errors=True)


def test_up_down_up_reuses_the_data_folder_and_its_token(svc_dir: Path) -> None:
    """`make demo`, `make services-down`, `make demo`: the second start must not
    onboard InfluxDB again (HTTP 422) and must find the data written before."""
    services, started = ls.ensure_services(svc_dir)
    assert started == ["mosquitto", "influxd"]
    first = services.env()
    run = uuid.uuid4().hex[:8]
    with InfluxDBClient(url=services.influxd.url, token=services.influxd.token) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            services.influxd.bucket,
            services.influxd.org,
            Point("smoke").tag("run", run).field("v", 1.0).time(time.time_ns(), "ns"),
        )
    assert ls.stop_recorded(svc_dir) == ["mosquitto", "influxd"]
    assert _processes_under(svc_dir) == []
    assert (svc_dir / "influxdb" / "influxd.bolt").exists()  # data survives `down`

    again, started = ls.ensure_services(svc_dir)
    assert started == ["mosquitto", "influxd"]
    assert again.env() == first  # same ports, password and token
    assert _influx_points(again.env(), run) == [1.0]
    assert _mqtt_accepts(again.env())
    assert (svc_dir / ls.STATE_FILE).stat().st_mode & 0o777 == 0o600

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "wellsense_cli.main", "services"]
    purge = [*cli, "down", "--purge", "--dir", str(svc_dir)]
    subprocess.run(purge, env=env, timeout=60, check=True, capture_output=True)
    assert not svc_dir.exists() and _processes_under(svc_dir) == []


def test_up_after_only_mosquitto_died_keeps_influxd(svc_dir: Path) -> None:
    services, _ = ls.ensure_services(svc_dir)
    before = services.env()
    influxd_pid = services.influxd.pid
    assert services.mosquitto.pid is not None
    os.kill(services.mosquitto.pid, signal.SIGKILL)
    state = ls.load_state(svc_dir)
    assert state is not None
    ls.stop_pid(services.mosquitto.pid, services.mosquitto.exe)  # reap our child
    assert ls.running(state) == {"mosquitto": False, "influxd": True}

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    up = subprocess.run(
        [sys.executable, "-m", "wellsense_cli.main", "services", "up", "--dir", str(svc_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    assert "mosquitto pid" in up.stderr and "influxd pid" not in up.stderr
    # The stop hint names this directory, not `make services-down`.
    assert f"wellsense services down --dir {svc_dir}" in up.stderr
    state = ls.load_state(svc_dir)
    assert state is not None
    assert state["influxd"]["pid"] == influxd_pid
    assert state["env"] == before
    assert ls.running(state) == {"mosquitto": True, "influxd": True}
    assert _mqtt_accepts(state["env"])

    restarted, started = ls.ensure_services(svc_dir, restart=("mosquitto",))
    assert started == ["mosquitto"] and restarted.influxd.pid == influxd_pid
    assert restarted.env() == before
    ls.stop_recorded(svc_dir)
    assert _processes_under(svc_dir) == []


def test_a_failed_start_leaves_no_process_behind(svc_dir: Path) -> None:
    """InfluxDB cannot start (its recorded port is taken): the Mosquitto started
    by the same call is stopped too, and the settings are kept for a retry."""
    services, _ = ls.ensure_services(svc_dir)
    token, port = services.influxd.token, services.influxd.port
    ls.stop_recorded(svc_dir)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ls.ServiceError):
            ls.ensure_services(svc_dir)
        assert _processes_under(svc_dir) == []
        state = ls.load_state(svc_dir)
        assert state is not None and ls.running(state) == {"mosquitto": False, "influxd": False}
    again, started = ls.ensure_services(svc_dir)
    assert started == ["mosquitto", "influxd"] and again.influxd.token == token


def test_an_influxdb_folder_without_its_token_is_refused_before_starting(svc_dir: Path) -> None:
    ls.ensure_services(svc_dir)
    ls.stop_recorded(svc_dir)
    (svc_dir / ls.STATE_FILE).unlink()  # the token is lost, the data folder is not
    with pytest.raises(ls.ServiceError, match="token"):
        ls.ensure_services(svc_dir)
    assert _processes_under(svc_dir) == []


def test_readiness_probe_closes_tls_cleanly() -> None:
    """The launcher's probe completes the handshake and sends close_notify, so
    Mosquitto logs no OpenSSL "unexpected eof"; a bare TCP close does (control)."""
    from tests.conftest import scratch_dir

    broker = ls.Mosquitto(scratch_dir("probe")).start()
    log_path = broker.directory / "mosquitto.log"
    env = broker.env()
    try:
        for _ in range(5):
            assert broker._tls_ready()
        assert _mqtt_accepts(env)  # a full round trip: the probes were handled before it
        assert "unexpected eof" not in log_path.read_text()

        ctx = ssl.create_default_context(cafile=str(broker.ca_file))
        for _ in range(5):
            with (
                socket.create_connection(("127.0.0.1", broker.port), timeout=2) as raw,
                ctx.wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                pass  # handshake, then a TCP close without close_notify
        assert _mqtt_accepts(env)
        # Mosquitto logs the bare close when it notices it; give a loaded machine time.
        deadline = time.monotonic() + 15
        while "unexpected eof" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "unexpected eof" in log_path.read_text()
    finally:
        broker.stop()
        shutil.rmtree(broker.directory, ignore_errors=True)
