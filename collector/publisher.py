"""Publish the outbox to the broker with paho-mqtt 2.x (MQTT v5, QoS 1, TLS).

The outbox is the only queue. A message is published from it; the broker's
PUBACK (any reason code that is not a failure, 0x10 "no matching
subscribers" included) only marks it *sent*; it is deleted when processing
confirms it is stored on the gateway's ``stored`` topic
(:mod:`collector.stored`). One pump thread owns the outbox calls, the paho
publish calls and the in-flight tables, so paho's network thread never
touches our state; its callbacks only enqueue.

Re-sending: a sent message without a confirmation after ``confirm_timeout_s``
is published again, then after twice that, and so on up to
``confirm_timeout_max_s`` between attempts (processing acknowledges and
confirms a repeat it already stored, and writes are idempotent). At most
``max_unconfirmed`` messages are sent and unconfirmed at once: while
processing or InfluxDB is down the gateway keeps the backlog in its own
outbox instead of filling the broker's queues. After a restart every row is
sent again.

Ordering: messages are published in outbox order over one connection, so a
QoS 1 broker delivers their first copies in order per device. After a
reconnect paho re-sends what was in flight; a message whose PUBACK is still
missing after ``ack_timeout_s`` while connected is published again.

Supervision: if the pump fails (an SQLite error such as a full disk), the
error is kept in :attr:`Publisher.failure` and ``on_failure`` is called; the
collector then stops with a non-zero exit and stops pinging the systemd
watchdog (:meth:`Publisher.healthy`).
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

from collector import stored, wire
from collector.mqtt import describe_disconnect, new_client
from collector.outbox import Outbox
from collector.tomlconfig import MqttSettings

log = logging.getLogger(__name__)


@dataclass
class PublisherCounters:
    published: int = 0
    acked: int = 0  # PUBACKs: the broker has the message
    confirmed: int = 0  # rows deleted on a storage confirmation
    confirmed_dead: int = 0  # of which processing dead-lettered
    resent: int = 0  # sent again after no confirmation came
    republished: int = 0  # sent again after no PUBACK came
    refused: int = 0
    bad_confirmations: int = 0
    connects: int = 0
    disconnects: int = 0


@dataclass
class _InFlight:
    outbox_id: int
    sent_monotonic: float


@dataclass
class _Unconfirmed:
    due_monotonic: float  # send again at this time
    attempts: int


@dataclass
class Publisher:
    """Drains an :class:`Outbox` to the broker; call :meth:`wake` after appends.

    Args:
        settings: broker address, TLS files and credentials.
        outbox: the durable queue to drain.
        study, gateway: ids for the gateway's ``state`` topic and client id.
        max_inflight: unacknowledged (no PUBACK yet) messages allowed at once.
        ack_timeout_s: republish a message whose PUBACK has not come by then.
        max_unconfirmed: sent but unconfirmed messages allowed at once.
        confirm_timeout_s, confirm_timeout_max_s: first and longest wait for a
            storage confirmation before a message is sent again.
        command_handler: called (on the pump thread) with each command payload.
        on_failure: called (on the pump thread) if the pump dies.
    """

    settings: MqttSettings
    outbox: Outbox
    study: str
    gateway: str
    max_inflight: int = 20
    ack_timeout_s: float = 30.0
    max_unconfirmed: int = 1000
    confirm_timeout_s: float = 30.0
    confirm_timeout_max_s: float = 900.0
    command_handler: Callable[[bytes], None] | None = None
    on_failure: Callable[[BaseException], None] | None = None
    counters: PublisherCounters = field(default_factory=PublisherCounters)
    failure: BaseException | None = None

    def __post_init__(self) -> None:
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._inflight: dict[int, _InFlight] = {}  # paho mid -> outbox row
        self._unconfirmed: dict[int, _Unconfirmed] = {}  # outbox id -> resend schedule
        self._last_sent_id = 0
        self._connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._supervised, name="wellsense-publisher", daemon=True
        )
        self.heartbeat = time.monotonic()
        self._state_topic = wire.gateway_topic(self.study, self.gateway, "state")
        self._cmd_topic = wire.gateway_topic(self.study, self.gateway, "cmd")
        self._stored_topic = wire.gateway_topic(self.study, self.gateway, "stored")
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
        self._events.put(("disconnect", describe_disconnect(flags, rc)))

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, properties: Any = None
    ) -> None:
        self._events.put(("ack", (mid, rc)))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        kind = "stored" if message.topic == self._stored_topic else "command"
        self._events.put((kind, message.payload))

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

    def healthy(self, stalled_after_s: float = 30.0) -> bool:
        """The pump is alive, has not failed and turned within ``stalled_after_s``."""
        return (
            self.failure is None
            and self._thread.is_alive()
            and time.monotonic() - self.heartbeat < stalled_after_s
        )

    def drain(self, timeout_s: float, confirm_grace_s: float = 2.0) -> bool:
        """Wait until the outbox is empty (True) or ``timeout_s`` passes (False).

        Once everything is sent, waits at most ``confirm_grace_s`` more for
        the confirmations; unconfirmed rows are sent again after a restart.
        """
        deadline = time.monotonic() + timeout_s
        all_sent_at: float | None = None
        while time.monotonic() < deadline and self.failure is None:
            stats = self.outbox.stats()
            if stats.depth == 0:
                return True
            if stats.sent == stats.depth:
                all_sent_at = all_sent_at or time.monotonic()
                if time.monotonic() - all_sent_at >= confirm_grace_s:
                    return False
            time.sleep(0.05)
        return False

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

    def _supervised(self) -> None:
        try:
            self._pump()
        except BaseException as exc:
            self.failure = exc
            log.critical("publisher failed; the collector stops: %s: %s", type(exc).__name__, exc)
            if self.on_failure is not None:
                self.on_failure(exc)

    def _pump(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                kind, value = self._events.get(timeout=1.0)
            except queue.Empty:
                kind, value = "tick", None
            acked: list[int] = []
            self._handle(kind, value, acked)
            # Drain whatever else arrived before publishing more.
            while True:
                try:
                    kind, value = self._events.get_nowait()
                except queue.Empty:
                    break
                self._handle(kind, value, acked)
            self._mark_sent(acked)
            if self._connected:
                self._republish_stale()
                self._resend_unconfirmed()
                self._fill()

    def _mark_sent(self, acked: list[int]) -> None:
        """One transaction for the PUBACKs of this turn; schedule their re-send."""
        if not acked:
            return
        due = time.monotonic() + self.confirm_timeout_s
        for outbox_id in self.outbox.mark_sent(acked):
            self._unconfirmed.setdefault(outbox_id, _Unconfirmed(due, 1))

    def _handle(self, kind: str, value: Any, acked: list[int]) -> None:
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
            self._client.subscribe([(self._cmd_topic, 1), (self._stored_topic, 1)])
        elif kind == "disconnect":
            if self._connected:
                self.counters.disconnects += 1
                log.warning("%s; messages stay in the outbox", value)
            self._connected = False
        elif kind == "ack":
            mid, rc = value
            entry = self._inflight.pop(mid, None)
            if entry is None:
                return
            if rc is not None and getattr(rc, "is_failure", False):
                # Refused (an ACL, say): not sent; tried again like an unconfirmed
                # message, with backoff; the outbox bound protects the disk.
                self.counters.refused += 1
                log.error("broker refused outbox message %d: %s", entry.outbox_id, rc)
                due = time.monotonic() + self.confirm_timeout_s
                self._unconfirmed.setdefault(entry.outbox_id, _Unconfirmed(due, 1))
                return
            # Any other reason code (0x10 "no matching subscribers" too) only
            # means the broker has it: the row stays until processing confirms.
            acked.append(entry.outbox_id)
            self.counters.acked += 1
        elif kind == "stored":
            self._confirmed(value)
        elif kind == "command" and self.command_handler is not None:
            try:
                self.command_handler(value)
            except Exception:
                log.exception("gateway command failed")

    def _confirmed(self, payload: bytes) -> None:
        """Delete what a storage confirmation covers; a bad one is logged and ignored."""
        try:
            entries = stored.decode(payload)
        except stored.StoredError as exc:
            self.counters.bad_confirmations += 1
            log.warning("ignored an invalid storage confirmation: %s", str(exc)[:200])
            return
        for entry in entries:
            deleted = self.outbox.confirm(entry.epoch, entry.device, entry.stored, entry.dead)
            for outbox_id in deleted:
                self._unconfirmed.pop(outbox_id, None)
            self.counters.confirmed += len(deleted)
            if entry.dead and deleted:
                n_dead = sum(hi - lo + 1 for lo, hi in entry.dead)
                self.counters.confirmed_dead += n_dead
                log.warning(
                    "processing dead-lettered %d message(s) of device %s: %s",
                    n_dead,
                    entry.device,
                    list(entry.dead)[:5],
                )

    def _room(self) -> int:
        return min(
            self.max_inflight - len(self._inflight),
            self.max_unconfirmed - len(self._inflight) - len(self._unconfirmed),
        )

    def _publish(self, message_id: int, topic: str, payload: bytes) -> bool:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning(
                "publish of outbox message %d failed: %s", message_id, mqtt.error_string(info.rc)
            )
            return False
        self._inflight[info.mid] = _InFlight(message_id, time.monotonic())
        return True

    def _resend_unconfirmed(self) -> None:
        """Send again, oldest first, what stayed unconfirmed past its due time."""
        now = time.monotonic()
        due = sorted(i for i, u in self._unconfirmed.items() if u.due_monotonic <= now)
        room = self.max_inflight - len(self._inflight)
        if not due or room <= 0:
            return
        wanted = due[:room]
        present = {m.id: m for m in self.outbox.get(wanted)}
        for outbox_id in wanted:
            entry = self._unconfirmed[outbox_id]
            message = present.get(outbox_id)
            if message is None:
                del self._unconfirmed[outbox_id]  # confirmed, evicted or purged meanwhile
                continue
            if not self._publish(outbox_id, message.topic, message.payload):
                return
            wait = min(self.confirm_timeout_max_s, self.confirm_timeout_s * 2**entry.attempts)
            entry.attempts += 1
            entry.due_monotonic = now + wait
            self.counters.resent += 1

    def _fill(self) -> None:
        room = self._room()
        if room <= 0:
            return
        for message in self.outbox.peek(room, after_id=self._last_sent_id):
            if message.id in self._unconfirmed:
                self._last_sent_id = message.id
                continue
            if not self._publish(message.id, message.topic, message.payload):
                return
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
            if self._publish(entry.outbox_id, rows[0].topic, rows[0].payload):
                self.counters.republished += 1
