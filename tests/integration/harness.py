"""Real processes for end-to-end tests: the emulated BlueZ, the collector, a subscriber.

Everything runs as it would in production: the emulator as its own process
on a private D-Bus, the collector as ``wellsense collect`` (bleak's real
BlueZ backend), Mosquitto from the suite's fixture, and a paho subscriber
with a persistent session that decodes every message with the wire contract.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector import wire
from wellsense_cli.localservices import Mosquitto

REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class Emulator:
    """``python -m wellsense_sim run`` in its own process, with its own private bus."""

    directory: Path
    participants: int = 2
    time_scale: float = 1.0
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Emulator:
        env_file = self.directory / "sim.env"
        env_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wellsense_sim",
                "run",
                "--participants",
                str(self.participants),
                "--time-scale",
                str(self.time_scale),
                "--env-file",
                str(env_file),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "sim.log").open("wb"),
            cwd=REPO,
        )
        wait_until(env_file.exists, 30, "the emulator's bus address")
        time.sleep(0.2)
        self.env = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        return self

    @property
    def bus(self) -> str:
        return self.env["DBUS_SYSTEM_BUS_ADDRESS"]

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "wellsense_sim", "ctl", "--bus", self.bus, *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            check=True,
        )
        return out.stdout

    def stats(self) -> list[dict[str, object]]:
        stats: list[dict[str, object]] = json.loads(self.ctl("stats"))
        return stats

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_collector_config(
    path: Path,
    broker: Mosquitto,
    *,
    study: str,
    participants: int,
    data_dir: Path,
    batch_interval_s: float = 1.0,
) -> Path:
    sensors = "".join(
        f'\n[[sensor]]\nkey = "s{i}"\nparticipant = "p-{i:04d}"\n'
        f'address = "C0:FF:EE:00:00:{i:02X}"\n'
        for i in range(1, participants + 1)
    )
    path.write_text(
        f'[gateway]\nstudy = "{study}"\nid = "gw-test"\ndata_dir = "{data_dir}"\n'
        f'[mqtt]\nurl = "{broker.url}"\nusername = "{broker.username}"\n'
        f'ca_file = "{broker.ca_file}"\n'
        f"[batch]\nmax_interval_s = {batch_interval_s}\nmax_samples = 50\n"
        f"[ble]\nreconnect_min_s = 0.2\nreconnect_max_s = 2\nscan_timeout_s = 5\n"
        f"[health]\ninterval_s = 5\n{sensors}"
    )
    return path


@dataclass
class Collector:
    """``wellsense collect --config FILE`` as a real subprocess."""

    config: Path
    broker: Mosquitto
    emulator: Emulator
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Collector:
        env = {
            **os.environ,
            **self.emulator.env,
            "WELLSENSE_MQTT_PASSWORD": self.broker.password,
            "PYTHONPATH": str(REPO),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wellsense_cli.main", "collect", "--config", str(self.config)],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@dataclass
class Received:
    """What the subscriber saw of one device: messages by sequence number."""

    by_seq: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    order: list[int] = field(default_factory=list)


class Subscriber:
    """A persistent-session QoS 1 subscriber that decodes every wire message."""

    def __init__(self, broker: Mosquitto, topic: str, client_id: str) -> None:
        self.devices: dict[str, Received] = defaultdict(Received)
        self.messages: list[wire.Message] = []
        self.invalid: list[str] = []
        self.lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.tls_set(ca_certs=str(broker.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.username_pw_set(broker.username, broker.password)
        client.reconnect_delay_set(0.2, 2)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # queued for us while we are away
        client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        client.loop_start()
        self.client = client

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if "/_gateways/" in msg.topic and msg.topic.endswith(("/state", "/stored")):
            return  # not wire messages: gateway state, processing's storage confirmations
        try:
            message = wire.decode(msg.payload, topic=msg.topic)
        except wire.WireError as exc:
            self.invalid.append(str(exc))
            return
        with self.lock:
            self.messages.append(message)
            received = self.devices[message.device]
            received.by_seq[message.seq].append(msg.payload)
            received.order.append(message.seq)

    def samples(self, stream: str) -> int:
        """Distinct samples of ``stream`` (each sequence number counted once)."""
        with self.lock:
            seen: dict[tuple[str, int], int] = {}
            for m in self.messages:
                if m.stream == stream:
                    seen[(m.device, m.seq)] = len(m.samples)
            return sum(seen.values())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def assert_complete_and_ordered(sub: Subscriber) -> None:
    """Every sequence number from 0 arrived, repeats are identical, first arrivals in order."""
    with sub.lock:
        assert sub.devices, "nothing received"
        for device, received in sub.devices.items():
            seqs = sorted(received.by_seq)
            assert seqs == list(range(len(seqs))), f"{device}: missing sequence numbers"
            for seq, payloads in received.by_seq.items():
                assert len(set(payloads)) == 1, f"{device} seq {seq}: a repeat differs"
            first_seen = list(dict.fromkeys(received.order))
            assert first_seen == sorted(first_seen), f"{device}: out of order"
    assert not sub.invalid, sub.invalid[:3]
