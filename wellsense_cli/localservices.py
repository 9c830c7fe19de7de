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


class _Server:
    """A server process this module started: stopped by its pid, never by name."""

    pid: int | None
    exe: str

    def start(self) -> _Server:
        raise NotImplementedError

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid, self.exe)
            self.pid = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Mosquitto(_Server):
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
        try:
            _wait_for(self._tls_ready, "mosquitto", proc, log_path)
        except BaseException:
            self.stop()  # a failed start leaves no process behind
            raise
        return self

    def _tls_ready(self) -> bool:
        """A full TLS handshake, then a clean TLS close (close_notify) and a wait
        for the broker's side: a bare TCP close after the handshake makes
        Mosquitto log an OpenSSL "unexpected eof while reading" at every start."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            with contextlib.suppress(OSError):
                tls.unwrap()  # sends close_notify; the broker answers with its own
            return True

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
class Influxd(_Server):
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
        if self.token and not (d / "influxd.bolt").exists():
            self.token = ""  # the data folder is gone: onboard a new one
        if not self.token and (d / "influxd.bolt").exists():
            # Onboarding works once per data folder; without its token the
            # folder is unusable, and starting a server on it would only fail.
            raise ServiceError(
                f"{d} holds an InfluxDB that was set up earlier, but its operator token "
                "is not recorded: remove that folder (or run 'wellsense services down "
                "--purge --dir ...') to start afresh"
            )
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
        try:
            _wait_for(self._healthy, "influxd", proc, log_path)
            if not self.token:
                self._onboard()
        except BaseException:
            self.stop()  # a failed start leaves no process behind
            raise
        return self

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
            return bool(json.load(resp).get("status") == "pass")

    def _onboard(self) -> None:
        token = secrets.token_urlsafe(32)
        body = json.dumps(
            {
                "username": "wellsense-admin",
                "password": secrets.token_urlsafe(18),
                "org": self.org,
                "bucket": self.bucket,
                "token": token,
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
        self.token = token

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


SERVICES = ("mosquitto", "influxd")
STATE_FILE = "services.json"


def start_services(directory: Path) -> LocalServices:
    """Start both services afresh in ``directory`` (new ports and secrets)."""
    services, _ = ensure_services(directory, fresh=True)
    return services


def ensure_services(
    directory: Path, *, restart: tuple[str, ...] = (), fresh: bool = False
) -> tuple[LocalServices, list[str]]:
    """Both services running under ``directory``; returns them and the names started now.

    A service whose recorded process still runs is kept (unless named in
    ``restart``); one that is down is started again on its recorded port, with
    its recorded password or token, so settings printed earlier stay valid and
    InfluxDB is not onboarded twice. The state file is rewritten after each
    start. If a start fails, the services started by this call are stopped and
    the error is raised: nothing is left running unrecorded.
    """
    unknown = set(restart) - set(SERVICES)
    if unknown:
        raise ValueError(f"unknown service(s) {sorted(unknown)}: one of {SERVICES}")
    directory.mkdir(parents=True, exist_ok=True)
    state = {} if fresh else (load_state(directory) or {})
    env: dict[str, str] = state.get("env", {})
    alive = running(state) if state else dict.fromkeys(SERVICES, False)
    services = LocalServices(
        Mosquitto(
            directory / "mosquitto",
            port=int(state.get("mosquitto", {}).get("port") or 0),
            password=env.get("WELLSENSE_MQTT_PASSWORD", ""),
        ),
        Influxd(
            directory / "influxdb",
            port=int(state.get("influxd", {}).get("port") or 0),
            token=env.get("WELLSENSE_INFLUX_TOKEN", ""),
        ),
    )
    started: list[str] = []
    try:
        for name in SERVICES:
            service: Mosquitto | Influxd = getattr(services, name)
            entry = state.get(name, {})
            if alive[name]:
                service.pid, service.exe = int(entry["pid"]), str(entry["exe"])
                if name not in restart:
                    continue
                service.stop()
            service.start()
            started.append(name)
            save_state(directory, services)
    except BaseException:
        for name in started:
            getattr(services, name).stop()
        if state or started:
            save_state(directory, services)
        raise
    save_state(directory, services)
    return services, started


def stop_recorded(directory: Path) -> list[str]:
    """Stop the processes recorded in ``directory`` (by pid); keep their settings.

    The ports, password and token stay in the state file so that the next
    ``ensure_services`` reuses the data folder instead of onboarding it again.
    Returns the names of the services that were running.
    """
    state = load_state(directory)
    if state is None:
        return []
    stopped = [n for n, up in running(state).items() if up]
    for name in SERVICES:
        entry = state.get(name, {})
        if entry.get("pid"):
            stop_pid(int(entry["pid"]), str(entry["exe"]))
        entry["pid"] = None
    _write_state(directory, state)
    return stopped


def save_state(directory: Path, services: LocalServices) -> None:
    """Record pids, ports and the settings (passwords, token) in a 0600 file."""
    state = {
        name: {
            "pid": getattr(services, name).pid,
            "exe": getattr(services, name).exe,
            "port": getattr(services, name).port,
        }
        for name in SERVICES
    }
    _write_state(directory, {**state, "env": services.env(), "started": time.time()})


def _write_state(directory: Path, state: dict[str, Any]) -> None:
    path = directory / STATE_FILE
    tmp = path.with_suffix(".tmp")
    # Created 0600 before anything is written: it holds the passwords and the token.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(state, indent=2, default=str))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_state(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data


def running(state: dict[str, Any]) -> dict[str, bool]:
    out = {}
    for name in SERVICES:
        entry = state.get(name) or {}
        pid = entry.get("pid")
        if not pid:
            out[name] = False
            continue
        try:
            exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            out[name] = Path(exe).name == Path(entry["exe"]).name and not _is_zombie(pid)
        except OSError:
            out[name] = False
    return out
