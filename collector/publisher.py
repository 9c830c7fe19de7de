"""Publish the outbox to the broker with paho-mqtt 2.x (MQTT v5, QoS 1, TLS).

The outbox is the only queue: a message is published from it, and deleted
from it only when the broker's PUBACK arrives. One pump thread owns the
outbox reads, the paho publish calls and the in-flight table, so paho's
network thread never touches our state; its callbacks only enqueue.

Ordering: messages are published in outbox order over one connection, so a
QoS 1 broker delivers them in order per device. After a reconnect paho
re-sends what was in flight; a message whose PUBACK is still missing after
``ack_timeout_s`` while connected is published again (the subscriber
de-duplicates by device and sequence number).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector import wire
from collector.mqtt import new_client
from collector.outbox import Outbox
from collector.tomlconfig import MqttSettings

log = logging.getLogger(__name__)


@dataclass
class PublisherCounters:
    published: int = 0
    acked: int = 0
    republished: int = 0
    refused: int = 0
    connects: int = 0
    disconnects: int = 0


@dataclass
class _InFlight:
    outbox_id: int
    sent_monotonic: float


@dataclass
class Publisher:
    """Drains an :class:`Outbox` to the broker; call :meth:`wake` after appends.

    Args:
        settings: broker address, TLS files and credentials.
        outbox: the durable queue to drain.
        study, gateway: ids for the gateway's ``state`` topic and client id.
        max_inflight: unacknowledged messages allowed at once.
        ack_timeout_s: republish a message whose PUBACK has not come by then.
        command_handler: called (on the pump thread) with each command payload.
    """

    settings: MqttSettings
    outbox: Outbox
    study: str
    gateway: str
    max_inflight: int = 20
    ack_timeout_s: float = 30.0
    command_handler: Callable[[bytes], None] | None = None
    counters: PublisherCounters = field(default_factory=PublisherCounters)

    def __post_init__(self) -> None:
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._inflight: dict[int, _InFlight] = {}  # paho mid -> outbox row
        self._last_sent_id = 0
        self._connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="wellsense-publisher", daemon=True)
        self._state_topic = wire.gateway_topic(self.study, self.gateway, "state")
        self._cmd_topic = wire.gateway_topic(self.study, self.gateway, "cmd")
        # Extra keys of the retained state message (a command acknowledgement).
        self._state_extra: dict[str, Any] = {}
        self._client = self._make_client()

    # -- set-up ------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = new_client(s, f"wellsense-gw-{self.gateway}")
        client.will_set(self._state_topic, self._state_payload("offline"), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        # Our outbox bounds what is queued; paho must never drop on its own.
        client.max_inflight_messages_set(self.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _state_payload(self, state: str) -> bytes:
        body = {**self._state_extra, "state": state, "ts_ns": time.time_ns()}
        return json.dumps(body).encode()

    def acknowledge(self, ack: dict[str, Any]) -> None:
        """Publish ``ack`` in the retained ``online`` state (call on the pump thread).

        Only from the command handler, which runs on the pump thread, so no
        other thread touches the client's publish path.
        """
        self._state_extra = {"ack": ack}
        if self._connected:
            self._client.publish(
                self._state_topic, self._state_payload("online"), qos=1, retain=True
            )

    # -- paho callbacks (network thread): enqueue only ---------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, properties: Any = None
    ) -> None:
        self._events.put(("connect", rc))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, properties: Any = None
    ) -> None:
        self._events.put(("disconnect", rc))

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, properties: Any = None
    ) -> None:
        self._events.put(("ack", (mid, rc)))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._events.put(("command", message.payload))

    # -- public ------------------------------------------------------------------

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=True,
            properties=props,
        )
        self._client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        """Tell the pump that the outbox has new messages."""
        self._events.put(("wake", None))

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def drain(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.stats().depth == 0:
                return True
            time.sleep(0.05)
        return self.outbox.stats().depth == 0

    def stop(self) -> None:
        """Publish the retained ``offline`` state, disconnect and stop the pump."""
        self._stop.set()
        self._events.put(("wake", None))
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._connected:
            info = self._client.publish(
                self._state_topic, self._state_payload("offline"), qos=1, retain=True
            )
            # Already disconnected: the last will says offline for us.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    # -- pump thread -------------------------------------------------------------

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                kind, value = self._events.get(timeout=1.0)
            except queue.Empty:
                kind, value = "tick", None
            self._handle(kind, value)
            # Drain whatever else arrived before publishing more.
            while True:
                try:
                    kind, value = self._events.get_nowait()
                except queue.Empty:
                    break
                self._handle(kind, value)
            if self._connected:
                self._republish_stale()
                self._fill()

    def _handle(self, kind: str, value: Any) -> None:
        if kind == "connect":
            if value.is_failure:
                log.error("broker refused the connection: %s", value)
                return
            self._connected = True
            self.counters.connects += 1
            log.info("connected to broker %s:%d", self.settings.host, self.settings.port)
            self._client.publish(
                self._state_topic, self._state_payload("online"), qos=1, retain=True
            )
            self._client.subscribe(self._cmd_topic, qos=1)
        elif kind == "disconnect":
            if self._connected:
                self.counters.disconnects += 1
                log.warning("disconnected from broker: %s; messages stay in the outbox", value)
            self._connected = False
        elif kind == "ack":
            mid, rc = value
            entry = self._inflight.pop(mid, None)
            if entry is None:
                return
            if rc is not None and getattr(rc, "is_failure", False):
                # Refused (an ACL, say): keep it in the outbox; it is retried after
                # the next reconnect, and the outbox bound protects the disk.
                self.counters.refused += 1
                log.error("broker refused outbox message %d: %s", entry.outbox_id, rc)
                return
            self.outbox.delete(entry.outbox_id)
            self.counters.acked += 1
        elif kind == "command" and self.command_handler is not None:
            try:
                self.command_handler(value)
            except Exception:
                log.exception("gateway command failed")

    def _fill(self) -> None:
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for message in self.outbox.peek(room, after_id=self._last_sent_id):
            info = self._client.publish(message.topic, message.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                log.warning(
                    "publish of outbox message %d failed: %s",
                    message.id,
                    mqtt.error_string(info.rc),
                )
                return
            self._inflight[info.mid] = _InFlight(message.id, time.monotonic())
            self._last_sent_id = message.id
            self.counters.published += 1

    def _republish_stale(self) -> None:
        now = time.monotonic()
        stale = [
            (mid, e)
            for mid, e in self._inflight.items()
            if now - e.sent_monotonic > self.ack_timeout_s
        ]
        for mid, entry in stale:
            del self._inflight[mid]
            rows = [
                m
                for m in self.outbox.peek(1, after_id=entry.outbox_id - 1)
                if m.id == entry.outbox_id
            ]
            if not rows:
                continue  # evicted meanwhile
            info = self._client.publish(rows[0].topic, rows[0].payload, qos=1)
            self._inflight[info.mid] = _InFlight(entry.outbox_id, now)
            self.counters.republished += 1
