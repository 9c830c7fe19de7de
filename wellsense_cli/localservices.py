"""Real local Mosquitto and InfluxDB 2.x instances for the demo and the tests.

Each instance lives in its own scratch directory, listens on a free loopback
port and is stopped by the pid it was started with, never by name. Mosquitto
gets a throwaway CA, a TLS-only listener, a password file, no anonymous access
and an ACL; InfluxDB is onboarded through its HTTP setup endpoint.

Nothing here is a fake: these are the same server binaries a deployment runs.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INFLUXD_VERSION = "v2.7.12"
MQTT_USERNAME = "wellsense-dev"
INFLUX_ORG = "wellsense"
INFLUX_BUCKET = "wellsense"
START_TIMEOUT_S = 60.0


class ServiceError(RuntimeError):
    """A local service could not be started or reached; the message says what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: Any, what: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise ServiceError(f"{what} exited with code {proc.returncode} while starting:\n{tail}")
        with contextlib.suppress(OSError, urllib.error.URLError, ssl.SSLError, ConnectionError):
            if check():
                return
        time.sleep(0.1)
    raise ServiceError(
        f"{what} did not become ready within {START_TIMEOUT_S:.0f} s (log: {log_path})"
    )


def _start(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as out:
        # A new session: the service outlives `wellsense services up` and is not
        # hit by the terminal's Ctrl-C; it is stopped by pid instead.
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_pid(pid: int, expected_exe: str, timeout_s: float = 15.0) -> bool:
    """Stop process ``pid`` if it still runs ``expected_exe``; True if it was ours."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    if Path(cmdline).name != Path(expected_exe).name:
        # The pid was reused by something else: leave it alone.
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            _reap(pid)
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# --------------------------------------------------------------------------- TLS


def make_test_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost (openssl CLI)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    if crt.exists() and ca_crt.exists() and key.exists():
        return ca_crt, crt, key
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    run = ["openssl"]
    quiet = {"check": True, "capture_output": True}
    subprocess.run(
        [
            *run,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=WellSense throwaway test CA",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
        ],
        **quiet,
    )  # type: ignore[call-overload]
    subprocess.run(
        [
            *run,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        **quiet,
    )  # type: ignore[call-overload]
    subprocess.run(
        [
            *run,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ],
        **quiet,
    )  # type: ignore[call-overload]
    for p in (ca_key, key):
        p.chmod(0o600)
    return ca_crt, crt, key


# --------------------------------------------------------------------------- Mosquitto


@dataclass
class Mosquitto:
    """A Mosquitto broker with TLS, a password file and an ACL, on a loopback port."""

    directory: Path
    port: int = 0
    username: str = MQTT_USERNAME
    password: str = ""
    # Extra users (name -> password) and raw ACL text, for the security tests.
    extra_users: dict[str, str] = field(default_factory=dict)
    acl_text: str = ""
    pid: int | None = None
    exe: str = "mosquitto"

    @property
    def ca_file(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        ca, crt, key = make_test_pki(d / "pki")
        if not self.password:
            self.password = secrets.token_urlsafe(18)
        passwd = d / "passwd"
        passwd.write_text("")
        users = {self.username: self.password, **self.extra_users}
        for name, pw in users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwd), name, pw], check=True, capture_output=True
            )
        acl = d / "acl"
        acl.write_text(self.acl_text or f"user {self.username}\ntopic readwrite wellsense/#\n")
        (d / "data").mkdir(exist_ok=True)
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl}",
            "persistence true",
            f"persistence_location {d / 'data'}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            f"listener {self.port} 127.0.0.1",
            f"cafile {ca}",
            f"certfile {crt}",
            f"keyfile {key}",
            "tls_version tlsv1.2",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to its own user, which must then read
            # these files; where it cannot even reach the folder (a checkout under
            # /root, say) it keeps root rather than fail: a loopback throwaway broker.
            if _reachable_by_others(d) and _chown_tree(d, "mosquitto"):
                lines.insert(0, "user mosquitto")
            else:
                lines.insert(0, "user root")
        conf = d / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> Mosquitto:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise ServiceError("mosquitto is not installed (Debian package 'mosquitto')")
        self.exe = exe
        if not self.port:
            self.port = free_port()
        conf = self._write_config()
        log_path = self.directory / "mosquitto.log"
        proc = _start([exe, "-c", str(conf)], log_path)
        self.pid = proc.pid
        _wait_for(self._tls_ready, "mosquitto", proc, log_path)
        return self

    def _tls_ready(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            return True

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid, self.exe)
            self.pid = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def env(self) -> dict[str, str]:
        return {
            "WELLSENSE_MQTT_URL": self.url,
            "WELLSENSE_MQTT_USERNAME": self.username,
            "WELLSENSE_MQTT_PASSWORD": self.password,
            "WELLSENSE_MQTT_CA": str(self.ca_file),
        }


def _reachable_by_others(directory: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in directory.resolve().parents)


def _chown_tree(directory: Path, user: str) -> bool:
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(directory, entry.pw_uid, entry.pw_gid)
    return True


# --------------------------------------------------------------------------- InfluxDB


def find_influxd() -> str:
    """The influxd 2.x binary: $WELLSENSE_INFLUXD, PATH, or the cached build."""
    candidates = [os.environ.get("WELLSENSE_INFLUXD", ""), shutil.which("influxd") or ""]
    cache = Path(os.environ.get("WELLSENSE_CACHE", Path.home() / ".cache" / "wellsense"))
    candidates += sorted(glob.glob(str(cache / "influxd-v2.*" / "influxd")), reverse=True)
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run(
                [candidate, "version"], capture_output=True, text=True, timeout=20
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.startswith(("InfluxDB v2.", "InfluxDB 2.")):
            return candidate
    raise ServiceError(
        "no InfluxDB 2.x server found: run 'deploy/influxdb/ensure-influxd.sh' "
        "(builds and caches it once) or set WELLSENSE_INFLUXD"
    )


@dataclass
class Influxd:
    """An InfluxDB 2.x server on a loopback port, onboarded with an operator token."""

    directory: Path
    port: int = 0
    org: str = INFLUX_ORG
    bucket: str = INFLUX_BUCKET
    token: str = ""
    pid: int | None = None
    exe: str = "influxd"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Influxd:
        self.exe = find_influxd()
        if not self.port:
            self.port = free_port()
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        log_path = d / "influxd.log"
        argv = [
            self.exe,
            f"--bolt-path={d / 'influxd.bolt'}",
            f"--engine-path={d / 'engine'}",
            f"--sqlite-path={d / 'influxd.sqlite'}",
            f"--http-bind-address=127.0.0.1:{self.port}",
            "--reporting-disabled",
            "--log-level=warn",
            # Small caches: several instances may run on a 2-core test machine.
            "--storage-cache-max-memory-size=268435456",
            "--query-concurrency=8",
            "--query-queue-size=64",
        ]
        proc = _start(argv, log_path)
        self.pid = proc.pid
        _wait_for(self._healthy, "influxd", proc, log_path)
        if not self.token:
            self._onboard()
        return self

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
            return bool(json.load(resp).get("status") == "pass")

    def _onboard(self) -> None:
        self.token = secrets.token_urlsafe(32)
        body = json.dumps(
            {
                "username": "wellsense-admin",
                "password": secrets.token_urlsafe(18),
                "org": self.org,
                "bucket": self.bucket,
                "token": self.token,
                "retentionPeriodSeconds": 0,
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.url}/api/v2/setup",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            raise ServiceError(
                f"InfluxDB onboarding failed: HTTP {exc.code} {exc.read()[:300]!r}"
            ) from None

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid, self.exe)
            self.pid = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def env(self) -> dict[str, str]:
        return {
            "WELLSENSE_INFLUX_URL": self.url,
            "WELLSENSE_INFLUX_TOKEN": self.token,
            "WELLSENSE_INFLUX_ORG": self.org,
            "WELLSENSE_INFLUX_BUCKET": self.bucket,
        }


# --------------------------------------------------------------------------- both


ENV_NAMES = (
    "WELLSENSE_MQTT_URL",
    "WELLSENSE_MQTT_USERNAME",
    "WELLSENSE_MQTT_PASSWORD",
    "WELLSENSE_MQTT_CA",
    "WELLSENSE_INFLUX_URL",
    "WELLSENSE_INFLUX_TOKEN",
    "WELLSENSE_INFLUX_ORG",
    "WELLSENSE_INFLUX_BUCKET",
)


@dataclass
class LocalServices:
    mosquitto: Mosquitto
    influxd: Influxd

    def env(self) -> dict[str, str]:
        merged = {**self.mosquitto.env(), **self.influxd.env()}
        return {name: merged[name] for name in ENV_NAMES}

    def stop(self) -> None:
        self.mosquitto.stop()
        self.influxd.stop()


def start_services(directory: Path) -> LocalServices:
    directory.mkdir(parents=True, exist_ok=True)
    mosquitto = Mosquitto(directory / "mosquitto").start()
    try:
        influxd = Influxd(directory / "influxdb").start()
    except BaseException:
        mosquitto.stop()
        raise
    return LocalServices(mosquitto, influxd)


STATE_FILE = "services.json"


def save_state(directory: Path, services: LocalServices) -> None:
    state = {
        "mosquitto": {"pid": services.mosquitto.pid, "exe": services.mosquitto.exe},
        "influxd": {"pid": services.influxd.pid, "exe": services.influxd.exe},
        "env": services.env(),
        "started": time.time(),
    }
    path = directory / STATE_FILE
    path.write_text(json.dumps(state, indent=2, default=str))
    path.chmod(0o600)  # it holds the passwords and the token


def load_state(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data


def running(state: dict[str, Any]) -> dict[str, bool]:
    out = {}
    for name in ("mosquitto", "influxd"):
        pid = state[name]["pid"]
        try:
            exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            out[name] = Path(exe).name == Path(state[name]["exe"]).name and not _is_zombie(pid)
        except OSError:
            out[name] = False
    return out
