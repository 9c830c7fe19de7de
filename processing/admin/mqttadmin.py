"""The admin tools' MQTT session: gateway commands and retained-message clearing."""

from __future__ import annotations

import queue
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from collector import safejson
from collector.mqtt import new_client
from collector.tomlconfig import MqttSettings

#: A gateway's retained state with its acknowledgement (collector/commands.py).
MAX_STATE_BYTES = 64 * 1024


def parse_ack(payload: bytes) -> dict[str, Any] | None:
    """The ``ack`` object of a gateway state message, or None for anything else.

    The state topic is written by the gateway, so its bytes are untrusted: a
    hostile payload (``[`` x 100,000, huge numbers, bad UTF-8) is ignored like
    a state without an acknowledgement, and cannot stop an erasure half-way.
    """
    try:
        body = safejson.loads(payload, max_bytes=MAX_STATE_BYTES)
    except safejson.UnsafeJsonError:
        return None
    ack = body.get("ack") if isinstance(body, dict) else None
    return dict(ack) if isinstance(ack, dict) else None


class MqttAdminError(RuntimeError):
    """The admin connection failed; the message names the broker, never the password."""


class AdminSession:
    """A short-lived MQTT v5 connection as the study's admin user."""

    def __init__(self, settings: MqttSettings, *, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._connected = threading.Event()
        self._rc: Any = None
        self._lock = threading.Lock()
        self._retained: dict[str, bytes] = {}
        self._messages: queue.SimpleQueue[tuple[str, bytes, bool]] = queue.SimpleQueue()
        client = new_client(settings, f"wellsense-admin-{time.time_ns() % 10**9}")
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self._rc = rc
        self._connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._messages.put((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def __enter__(self) -> AdminSession:
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            self.client.connect(self.settings.host, self.settings.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise MqttAdminError(f"cannot reach the broker at {where}: {exc}") from None
        self.client.loop_start()
        if not self._connected.wait(self.timeout_s) or self._rc.is_failure:
            self.client.loop_stop()
            raise MqttAdminError(f"the broker at {where} refused the admin login: {self._rc}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(self.timeout_s)
        if not info.is_published():
            raise MqttAdminError(f"publish to {topic} was not acknowledged")

    def retained(self, filters: list[str], settle_s: float = 1.5) -> dict[str, bytes]:
        """Topics with a retained message under ``filters`` (the broker sends them first)."""
        for f in filters:
            self.client.subscribe(f, qos=1)
        found: dict[str, bytes] = {}
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            try:
                topic, payload, retain = self._messages.get(timeout=0.1)
            except queue.Empty:
                continue
            if retain and payload:
                found[topic] = payload
        for f in filters:
            self.client.unsubscribe(f)
        return found

    def wait_for_ack(
        self, state_topic: str, command_id: str, timeout_s: float
    ) -> dict[str, Any] | None:
        """The gateway's acknowledgement of ``command_id`` on its state topic, or None."""
        self.client.subscribe(state_topic, qos=1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                topic, payload, _retain = self._messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if topic != state_topic:
                continue
            ack = parse_ack(payload)
            if ack is not None and ack.get("id") == command_id:
                return ack
        return None
