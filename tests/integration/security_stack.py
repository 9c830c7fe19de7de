"""A broker started from the SHIPPED configuration, and MQTT client helpers.

``ShippedBroker`` renders ``deploy/server/mosquitto/`` with ``wellsense
broker init`` exactly as on a server (test certificates, a free port, files
in a scratch folder) and includes it from a main file shaped like Debian's
``/etc/mosquitto/mosquitto.conf``. Every password and token made here is
recorded in :data:`SECRETS` so the log scan can look for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from processing.admin import broker as broker_admin
from processing.admin import settings
from wellsense_cli import localservices as ls

#: Every secret the security tests create (passwords, tokens): none may reach a log.
SECRETS: set[str] = set()
#: Scratch folders removed at the end of the session (after the log scan).
SCRATCH: list[Path] = []
#: What a study team's own key file would hold: it must never reach WellSense.
IDENTITY_CANARIES = ("Ada Lovelace", "ada.lovelace@example.net", "+44 20 7946 0000")
STUDY = "sec"


def scratch(prefix: str) -> Path:
    """A 0755 folder under /tmp (a broker that drops root can read it), removed at the end."""
    path = Path(tempfile.mkdtemp(prefix=f"wellsense-{prefix}-"))
    path.chmod(0o755)
    SCRATCH.append(path)
    return path


def write_admin_toml(
    directory: Path,
    *,
    port: int,
    influx_url: str = "http://127.0.0.1:1",
    org: str = "wellsense",
    bucket: str = "wellsense",
    token_file: Path | None = None,
) -> Path:
    pki = directory / "pki"
    token = f'token_file = "{token_file}"\n' if token_file else ""
    path = directory / "admin.toml"
    path.write_text(
        f'[study]\nid = "{STUDY}"\nname = "Security test study"\n'
        'team_contact = "the study team: wellsense-study@example.org"\n'
        f'[broker]\npublic_url = "mqtts://127.0.0.1:{port}"\nca_file = "{pki}/ca.crt"\n'
        f'cert_file = "{pki}/server.crt"\nkey_file = "{pki}/server.key"\n'
        f'port = {port}\nbind_address = "127.0.0.1"\n'
        f'password_file = "{directory}/mosquitto/passwd"\nacl_file = "{directory}/mosquitto/acl"\n'
        f'[admin_mqtt]\nurl = "mqtts://127.0.0.1:{port}"\nusername = "wellsense-admin"\n'
        f'password_file = "{directory}/secrets/admin-mqtt-password"\nca_file = "{pki}/ca.crt"\n'
        f'[influx]\nurl = "{influx_url}"\norg = "{org}"\nbucket = "{bucket}"\n'
        f'downsampled_bucket = "{bucket}_1h"\nretention_days = 30\n{token}'
        f'[enrolment]\nregistry = "{directory}/registry.json"\n'
        f'bundles_dir = "{directory}/bundles"\n'
        f'[erasure]\ntombstones_file = "{directory}/erased.txt"\n'
        f'notify_database = "{directory}/notify/notify.sqlite"\n'
        f'exports_registry = "{directory}/exports.jsonl"\n'
    )
    return path


@dataclass
class ShippedBroker:
    directory: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    exe: str = "mosquitto"

    @property
    def admin_toml(self) -> Path:
        return self.directory / "admin.toml"

    @property
    def ca_file(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    @property
    def log_file(self) -> Path:
        return self.directory / "mosquitto.log"

    def secret(self, name: str) -> str:
        return (self.directory / "secrets" / f"{name}-mqtt-password").read_text().strip()

    def config(self) -> settings.AdminConfig:
        return settings.load(self.admin_toml)

    def start(self, **admin_kwargs: Any) -> ShippedBroker:
        d = self.directory
        self.port = self.port or ls.free_port()
        ls.make_test_pki(d / "pki")
        write_admin_toml(d, port=self.port, **admin_kwargs)
        (d / "secrets").mkdir(mode=0o700, exist_ok=True)
        (d / "conf.d").mkdir(exist_ok=True)
        broker_admin.init(self.config(), d / "conf.d", d / "secrets")
        SECRETS.update({self.secret(f"processing-{w}") for w in ("w1", "rules")})
        SECRETS.add(self.secret("admin"))
        (d / "data").mkdir(exist_ok=True)
        # Shaped like Debian's main mosquitto.conf; only paths differ. Run as
        # root here, the test broker keeps root instead of dropping to
        # 'mosquitto' (which owns these files on a real server).
        main = [
            f"pid_file {d / 'mosquitto.pid'}",
            "persistence true",
            f"persistence_location {d / 'data'}/",
            f"log_dest file {self.log_file}",
            f"include_dir {d / 'conf.d'}",
        ]
        if os.geteuid() == 0:
            main.insert(0, "user root")
        (d / "mosquitto.conf").write_text("\n".join(main) + "\n")
        self.exe = ls.shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(d / "mosquitto.conf")],
            stdout=(d / "mosquitto.stdout.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_file.read_text(errors="replace")[-2000:]
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            time.sleep(0.05)
        raise AssertionError("the shipped broker did not start")

    def reload(self) -> None:
        """What 'systemctl reload mosquitto' does: SIGHUP re-reads passwords and ACLs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            ls.stop_pid(self.proc.pid, self.exe)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            self.proc = None


@dataclass
class Client:
    """A paho MQTT v5 client that records CONNACK, SUBACK, PUBACK codes and messages."""

    broker: ShippedBroker
    username: str | None
    password: str | None
    tls: bool = True
    client_id: str = ""
    connack: Any = None
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    subacks: list[list[Any]] = field(default_factory=list)
    pubacks: dict[int, Any] = field(default_factory=dict)
    error: str = ""

    def __post_init__(self) -> None:
        self._connected = threading.Event()
        self._lock = threading.Lock()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if self.tls:
            c.tls_set(ca_certs=str(self.broker.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = lambda _c, _u, mid, codes, _p: self.subacks.append(list(codes))
        c.on_publish = lambda _c, _u, mid, rc, _p: self.pubacks.__setitem__(mid, rc)
        self.client = c

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self.connack = rc
        self._connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def connect(self, timeout_s: float = 5.0) -> bool:
        """True if the broker accepted us (CONNACK success) within the timeout."""
        try:
            self.client.connect("127.0.0.1", self.broker.port, keepalive=10)
        except (OSError, ssl.SSLError) as exc:
            self.error = repr(exc)
            return False
        self.client.loop_start()
        self._connected.wait(timeout_s)
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> list[Any]:
        before = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        deadline = time.monotonic() + 5
        while len(self.subacks) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.subacks[-1] if len(self.subacks) > before else []

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> Any:
        """Publish at QoS 1 and return the PUBACK reason code (None if none came)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + 5
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.pubacks.get(info.mid)

    def topics(self) -> set[str]:
        with self._lock:
            return {t for t, _p, _r in self.messages}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
