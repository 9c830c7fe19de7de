"""The shipped Mosquitto configuration, against a real Mosquitto.

TLS only, no anonymous access, per-gateway passwords and ACLs: a gateway
publishes only its own participants' streams and its own status topics and
subscribes only to its own command topic; processing reads everything and
publishes only dead letters and alerts.
"""

from __future__ import annotations

import dataclasses
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector import wire
from processing.admin import broker as broker_admin
from tests.integration.harness import wait_until
from tests.integration.processing_fixture import Pipeline, hr_messages
from tests.integration.security_stack import SECRETS, STUDY, Client, ShippedBroker, scratch
from wellsense_cli import localservices as ls

pytestmark = pytest.mark.integration

ROOT = f"wellsense/v1/{STUDY}"
GATEWAYS = {"gw-a": ["p-aaaa0001"], "gw-b": ["p-bbbb0001"]}


@pytest.fixture(scope="module")
def broker() -> Iterator[tuple[ShippedBroker, dict[str, str]]]:
    server = ShippedBroker(scratch("shipped-broker")).start()
    config = server.config()
    passwords = Passwords()
    for gateway, participants in GATEWAYS.items():
        passwords[gateway] = secrets.token_urlsafe(18)
        SECRETS.add(passwords[gateway])
        broker_admin.set_password(config.broker.password_file, gateway, passwords[gateway])
        broker_admin.set_gateway_acl(config.broker.acl_file, STUDY, gateway, participants)
    server.reload()
    try:
        yield server, passwords
    finally:
        server.stop()


class Passwords(dict[str, str]):
    """Gateway passwords that never show in an assertion message."""

    def __repr__(self) -> str:
        return f"Passwords({sorted(self)})"


def _ok(rc: object) -> bool:
    """A PUBACK that is not a refusal (0x10 'no matching subscribers' is fine)."""
    return rc is not None and rc.value < 0x80  # type: ignore[attr-defined]


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def _client(
    made: list[Client], server: ShippedBroker, user: str | None, pw: str | None, **kw: object
) -> Client:
    c = Client(server, user, pw, **kw)  # type: ignore[arg-type]
    made.append(c)
    return c


def test_the_rendered_config_has_one_tls_listener_and_no_anonymous_access(
    broker: tuple[ShippedBroker, dict[str, str]],
) -> None:
    server, _ = broker
    text = (server.directory / "conf.d" / "wellsense.conf").read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert [ln for ln in lines if ln.startswith("listener ")] == [
        f"listener {server.port} 127.0.0.1"
    ]
    assert "allow_anonymous false" in lines
    assert {"cafile", "certfile", "keyfile", "tls_version"} <= {ln.split()[0] for ln in lines}


def test_anonymous_and_wrong_password_clients_are_refused(
    broker: tuple[ShippedBroker, dict[str, str]], clients: list[Client]
) -> None:
    server, passwords = broker
    assert not _client(clients, server, None, None).connect()
    assert not _client(clients, server, "gw-a", "not-the-password").connect()
    assert not _client(clients, server, "gw-a", passwords["gw-b"]).connect()
    assert _client(clients, server, "gw-a", passwords["gw-a"]).connect()


def test_plain_tcp_clients_are_refused(
    broker: tuple[ShippedBroker, dict[str, str]], clients: list[Client]
) -> None:
    server, passwords = broker
    plain = _client(clients, server, "gw-a", passwords["gw-a"], tls=False)
    assert not plain.connect(timeout_s=3)
    assert plain.connack is None, "a plain-TCP client got a CONNACK"
    # Nothing listens in plain text on the usual MQTT port on our behalf either:
    # the rendered config has exactly one listener (checked above), and a raw
    # MQTT CONNECT on the TLS port gets no MQTT answer.
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as raw:
        raw.sendall(bytes.fromhex("101000044d5154540502003c000000") + b"")
        raw.settimeout(3)
        try:
            answer = raw.recv(16)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    assert not answer.startswith(b"\x20"), "the TLS port answered a plain CONNECT with CONNACK"


def test_gateway_publishes_only_its_own_participants_and_status(
    broker: tuple[ShippedBroker, dict[str, str]], clients: list[Client]
) -> None:
    server, passwords = broker
    processing = _client(clients, server, "wellsense-processing-w1", server.secret("processing-w1"))
    assert processing.connect()
    assert processing.subscribe(f"{ROOT}/#")[0].value < 0x80
    gw_a = _client(clients, server, "gw-a", passwords["gw-a"], client_id="wellsense-gw-gw-a")
    assert gw_a.connect()

    allowed = [
        f"{ROOT}/p-aaaa0001/hr",
        f"{ROOT}/p-aaaa0001/activity",
        f"{ROOT}/p-aaaa0001/status",
        f"{ROOT}/p-aaaa0001/features",  # data minimisation mode
        f"{ROOT}/p-aaaa0001/selfreport",  # the study app on (or through) the gateway
        f"{ROOT}/_gateways/gw-a/state",
        f"{ROOT}/_gateways/gw-a/health",
    ]
    denied = [
        f"{ROOT}/p-bbbb0001/hr",
        f"{ROOT}/p-bbbb0001/features",
        f"{ROOT}/p-bbbb0001/selfreport",
        f"{ROOT}/_gateways/gw-b/health",
        f"{ROOT}/_gateways/gw-b/state",
        f"{ROOT}/_gateways/gw-a/cmd",
        f"{ROOT}/_gateways/gw-b/cmd",
        f"{ROOT}/_alerts",
        f"{ROOT}/_deadletter",
        f"{ROOT}/p-aaaa0001/other",
        "wellsense/v1/otherstudy/p-aaaa0001/hr",
        "elsewhere",
    ]
    for topic in allowed:
        assert _ok(gw_a.publish(topic)), topic
    for topic in denied:
        rc = gw_a.publish(topic)
        assert rc is not None and rc.value == 0x87, f"{topic}: {rc}"  # Not authorized
    wait_until(lambda: set(allowed) <= processing.topics(), 10, "gateway A's messages")
    time.sleep(0.3)
    assert processing.topics() == set(allowed)


def test_gateway_subscribes_only_to_its_own_command_topic(
    broker: tuple[ShippedBroker, dict[str, str]], clients: list[Client]
) -> None:
    server, passwords = broker
    gw_a = _client(clients, server, "gw-a", passwords["gw-a"])
    assert gw_a.connect()
    assert gw_a.subscribe(f"{ROOT}/_gateways/gw-a/cmd")[0].value < 0x80
    for topic in (
        "#",
        f"{ROOT}/#",
        f"{ROOT}/_gateways/gw-b/cmd",
        f"{ROOT}/p-bbbb0001/hr",
        f"{ROOT}/p-aaaa0001/hr",
        f"{ROOT}/_gateways/+/cmd",
    ):
        gw_a.subscribe(topic)  # refused (0x87), or granted but never delivered
    admin = _client(clients, server, "wellsense-admin", server.secret("admin"))
    assert admin.connect()
    gw_b = _client(clients, server, "gw-b", passwords["gw-b"])
    assert gw_b.connect()
    admin.publish(f"{ROOT}/_gateways/gw-b/cmd", b'{"to": "b"}')
    gw_b.publish(f"{ROOT}/p-bbbb0001/hr")
    admin.publish(f"{ROOT}/p-aaaa0001/status")
    admin.publish(f"{ROOT}/_gateways/gw-a/cmd", b'{"to": "a"}')
    wait_until(lambda: gw_a.topics(), 10, "gateway A's own command")
    time.sleep(0.5)
    assert gw_a.topics() == {f"{ROOT}/_gateways/gw-a/cmd"}


def test_processing_reads_all_and_publishes_only_alerts_and_dead_letters(
    broker: tuple[ShippedBroker, dict[str, str]], clients: list[Client]
) -> None:
    server, passwords = broker
    processing = _client(clients, server, "wellsense-processing-w1", server.secret("processing-w1"))
    assert processing.connect()
    processing.subscribe(f"{ROOT}/+/+")
    processing.subscribe(f"{ROOT}/_gateways/+/health")
    for gateway, (participant,) in GATEWAYS.items():
        gw = _client(clients, server, gateway, passwords[gateway])
        assert gw.connect()
        gw.publish(f"{ROOT}/{participant}/hr")
        gw.publish(f"{ROOT}/_gateways/{gateway}/health")
    expected = {
        f"{ROOT}/p-aaaa0001/hr",
        f"{ROOT}/p-bbbb0001/hr",
        f"{ROOT}/_gateways/gw-a/health",
        f"{ROOT}/_gateways/gw-b/health",
    }
    wait_until(lambda: expected <= processing.topics(), 10, "every gateway's data")
    assert _ok(processing.publish(f"{ROOT}/_deadletter"))
    assert _ok(processing.publish(f"{ROOT}/_alerts"))
    assert _ok(processing.publish(f"{ROOT}/_alerts/p-aaaa0001/state", retain=True))
    assert processing.publish(f"{ROOT}/p-aaaa0001/hr").value == 0x87, "processing forged data"
    assert processing.publish(f"{ROOT}/_gateways/gw-a/cmd").value == 0x87


def test_only_processing_confirms_storage_and_only_that_gateway_reads_it(
    broker: tuple[ShippedBroker, dict[str, str]], clients: list[Client]
) -> None:
    server, passwords = broker
    processing = _client(clients, server, "wellsense-processing-w1", server.secret("processing-w1"))
    assert processing.connect()
    gw_a = _client(clients, server, "gw-a", passwords["gw-a"])
    gw_b = _client(clients, server, "gw-b", passwords["gw-b"])
    assert gw_a.connect() and gw_b.connect()
    assert gw_a.subscribe(f"{ROOT}/_gateways/gw-a/stored")[0].value < 0x80
    for topic in (f"{ROOT}/_gateways/gw-a/stored", f"{ROOT}/_gateways/+/stored"):
        gw_b.subscribe(topic)  # refused (0x87), or granted but never delivered
    # A confirmation deletes data from an outbox: no gateway may forge one.
    for gw, target in ((gw_a, "gw-a"), (gw_b, "gw-a"), (gw_b, "gw-b")):
        rc = gw.publish(f"{ROOT}/_gateways/{target}/stored")
        assert rc is not None and rc.value == 0x87, f"{target}: {rc}"
    assert _ok(processing.publish(f"{ROOT}/_gateways/gw-a/stored"))
    wait_until(lambda: gw_a.topics(), 10, "gateway A's confirmation")
    time.sleep(0.5)
    assert gw_a.topics() == {f"{ROOT}/_gateways/gw-a/stored"}
    assert gw_b.topics() == set()


def test_broker_log_names_users_but_holds_no_password(
    broker: tuple[ShippedBroker, dict[str, str]],
) -> None:
    server, passwords = broker
    text = server.log_file.read_text(errors="replace")
    assert "gw-a" in text  # connections are logged, by username
    for secret in [*passwords.values(), server.secret("processing-w1"), server.secret("admin")]:
        assert secret not in text


def test_a_broker_file_is_not_world_readable(
    broker: tuple[ShippedBroker, dict[str, str]],
) -> None:
    server, _ = broker
    for path in (
        Path(server.config().broker.password_file),
        server.config().broker.acl_file,
        server.directory / "secrets" / "admin-mqtt-password",
    ):
        assert path.stat().st_mode & 0o007 == 0, path


# --------------------------------------------------------------------------- client ids


def test_use_username_as_clientid_is_inside_the_listener_section(
    broker: tuple[ShippedBroker, dict[str, str]],
) -> None:
    server, _ = broker
    text = (server.directory / "conf.d" / "wellsense.conf").read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    listener = next(i for i, ln in enumerate(lines) if ln.startswith("listener "))
    assert lines.index("use_username_as_clientid true") > listener


@dataclass
class _Login:
    """What processing_fixture.Pipeline needs of a broker: where and who."""

    url: str
    username: str
    password: str
    ca_file: Path


def _session_client(
    server: ShippedBroker, user: str, password: str, client_id: str, *, clean: bool
) -> tuple[mqtt.Client, list[str], threading.Event]:
    received: list[str] = []
    connected = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(server.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.username_pw_set(user, password)
    c.on_connect = lambda *_a: connected.set()
    c.on_message = lambda _c, _u, msg: received.append(msg.topic)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    c.connect("127.0.0.1", server.port, clean_start=clean, properties=props)
    c.loop_start()
    return c, received, connected


def test_a_gateway_cannot_take_over_or_destroy_processings_session(
    broker: tuple[ShippedBroker, dict[str, str]], influxd: ls.Influxd, tmp_path: Path
) -> None:
    """The issue's reproduction: gateway credentials with processing's client id."""
    server, passwords = broker
    login = _Login(
        f"mqtts://127.0.0.1:{server.port}",
        "wellsense-processing-w1",
        server.secret("processing-w1"),
        server.ca_file,
    )
    pipe = Pipeline(login, influxd, tmp_path, study=STUDY, bucket=f"ids-{secrets.token_hex(4)}")  # type: ignore[arg-type]
    pipe.new_bucket(pipe.bucket)
    try:
        service = pipe.start(features={"enabled": False})
        client_id = service.config.client_id
        assert pipe.stop(service) == 0  # offline; its session (and subscription) stays
        gw = _client([], server, "gw-a", passwords["gw-a"])
        assert gw.connect()
        messages = hr_messages(study=STUDY, participant="p-aaaa0001", device="d-1", n_messages=5)
        messages = [dataclasses.replace(m, gateway="gw-a") for m in messages]
        for m in messages:
            assert gw.publish(m.topic, wire.encode(m)).value == 0  # queued for processing
        gw.close()
        # The attack: gateway credentials, processing's client ids, clean start
        # off (take the session) and on (destroy it).
        for attempt_id, clean in (
            (client_id, False),
            (client_id, True),
            ("wellsense-processing-w1", False),
            ("wellsense-processing-w1", True),
        ):
            c, received, connected = _session_client(
                server, "gw-a", passwords["gw-a"], attempt_id, clean=clean
            )
            assert connected.wait(10)
            time.sleep(0.5)
            c.disconnect()
            c.loop_stop()
            assert received == [], "the gateway got processing's queued messages"
        again = pipe.start(features={"enabled": False})
        wait_until(lambda: pipe.count("hr", "hr_bpm") == 25, 30, "all 5 queued messages stored")
        assert again.metrics.messages_written == 5
        assert pipe.stop(again) == 0
    finally:
        pipe.close()
        with pipe.client() as client:
            bucket = client.buckets_api().find_bucket_by_name(pipe.bucket)
            if bucket is not None:
                client.buckets_api().delete_bucket(bucket)


def test_the_alert_publisher_has_its_own_account_beside_the_worker(
    broker: tuple[ShippedBroker, dict[str, str]], influxd: ls.Influxd, tmp_path: Path
) -> None:
    """One session per account: worker and alert publisher connect side by side."""
    from processing.rules.runner import MqttAlertSink

    server, _ = broker
    rules_password = tmp_path / "rules-password"
    rules_password.write_text(server.secret("processing-rules"))
    rules_password.chmod(0o600)
    login = _Login(
        f"mqtts://127.0.0.1:{server.port}",
        "wellsense-processing-w1",
        server.secret("processing-w1"),
        server.ca_file,
    )
    bucket = f"rules-{secrets.token_hex(4)}"
    pipe = Pipeline(login, influxd, tmp_path, study=STUDY, bucket=bucket)  # type: ignore[arg-type]
    pipe.new_bucket(bucket)
    rules = {
        "mqtt_username": "wellsense-processing-rules",
        "mqtt_password_file": str(rules_password),
    }
    service = pipe.start(features={"enabled": False}, rules=rules)
    sink = MqttAlertSink(service.config, client_id=f"{service.config.client_id}-rules")
    try:
        assert sink.connected.wait(10)
        time.sleep(2)  # a takeover would disconnect one of them by now
        assert sink.connected.is_set() and service.connected.is_set()
        log = server.log_file.read_text(errors="replace")
        for account in ("wellsense-processing-w1", "wellsense-processing-rules"):
            assert f"Client {account} already connected" not in log
    finally:
        sink.close(1)
        assert pipe.stop(service) == 0
        pipe.close()
        with pipe.client() as client:
            found = client.buckets_api().find_bucket_by_name(bucket)
            if found is not None:
                client.buckets_api().delete_bucket(found)
