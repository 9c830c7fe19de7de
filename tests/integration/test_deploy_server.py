"""Server set-up from the shipped sample configuration, against a scratch root, twice.

The steps of deploy/server/setup-server.sh that need no root or systemd run
as on a server (`broker init`, `influx-setup`, `enroll`, the guard started by
hand as docs/deploy.md shows), with every path of admin.sample.toml moved
under a scratch root, against the real InfluxDB.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from processing.admin import settings
from tests.integration.harness import wait_until
from wellsense_cli.localservices import Influxd, make_test_pki

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _sample_in(root: Path, influxd: Influxd, org: str) -> Path:
    text = (REPO / "deploy/server/admin.sample.toml").read_text()
    text = text.replace('"/etc/', f'"{root}/etc/').replace('"/var/lib/', f'"{root}/var/lib/')
    text = text.replace('url = "http://127.0.0.1:8086"', f'url = "{influxd.url}"')
    text = text.replace('org = "wellsense"', f'org = "{org}"')
    path = root / "etc/wellsense/admin.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def _wellsense(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "wellsense_cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HandRunGuard:
    """`wellsense influx-guard` started by hand, exactly as docs/deploy.md shows."""

    def __init__(self, influxd: Influxd, org: str, guard_dir: Path) -> None:
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSENSE_")}
        env["PYTHONPATH"] = str(REPO)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wellsense_cli.main",
                "influx-guard",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--influx-url",
                influxd.url,
                "--org",
                org,
                "--bucket",
                "wellsense",
                "--influx-token-file",
                str(guard_dir / "influx-processing-token"),
                "--client-token-file",
                str(guard_dir / "influx-guard-client-token"),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(up, 30, "the guard to listen")

    def write(self, token: str, org: str) -> int:
        line = f"hr,study=pilot,participant=p-x,device=d-x hr_bpm=60i {time.time_ns()}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/write?org={org}&bucket=wellsense&precision=ns",
            data=line.encode(),
            headers={"Authorization": f"Token {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "root"


def test_server_set_up_from_the_samples_on_a_fresh_server_and_on_re_runs(
    influxd: Influxd, root: Path
) -> None:
    org = f"deploy-{uuid.uuid4().hex[:8]}"
    admin = _sample_in(root, influxd, org)
    etc = root / "etc/wellsense"
    guard_dir = etc / "guard"
    guard_dir.mkdir(mode=0o750)
    # What the operator puts in place before set-up: the CA and the broker's certificate.
    ca, cert, key = make_test_pki(root / "pki")
    (etc / "ca.crt").write_bytes(ca.read_bytes())
    certs = root / "etc/mosquitto/certs"
    certs.mkdir(parents=True)
    (certs / "broker.crt").write_bytes(cert.read_bytes())
    (certs / "broker.key").write_bytes(key.read_bytes())
    operator = root / "operator-token"
    operator.write_text(influxd.token)
    operator.chmod(0o600)

    # A fresh server: the erasure token does not exist yet, and the config loads.
    assert settings.load(admin).influx.token is None
    init = _wellsense(
        "broker", "init", "--config", str(admin),
        "--conf-dir", str(root / "etc/mosquitto/conf.d"), "--secrets-dir", str(etc),
    )  # fmt: skip
    assert init.returncode == 0, init.stderr

    def influx_setup(*extra: str) -> subprocess.CompletedProcess[str]:
        return _wellsense(
            "influx-setup", "--config", str(admin), "--operator-token-file", str(operator),
            "--secrets-dir", str(etc),
            "--processing-token-file", str(guard_dir / "influx-processing-token"), *extra,
        )  # fmt: skip

    first = influx_setup()
    assert first.returncode == 0, first.stderr
    assert "erasure token" in first.stdout and "(new)" in first.stdout
    assert settings.load(admin).influx.token  # now it exists, and loads
    (guard_dir / "influx-guard-client-token").write_bytes(
        (etc / "influx-guard-client-token").read_bytes()
    )
    (guard_dir / "influx-guard-client-token").chmod(0o400)
    tokens = {p.name: p.read_bytes() for p in (*etc.glob("influx-*-token"), *guard_dir.iterdir())}

    enrol = _wellsense("enroll", "--config", str(admin), "--no-reload")
    assert enrol.returncode == 0, enrol.stderr

    guard = HandRunGuard(influxd, org, guard_dir)
    try:
        client = (etc / "influx-guard-client-token").read_text().strip()
        assert guard.write(client, org) == 204

        # A re-run keeps every token: the running guard (and processing) go on working.
        again = influx_setup()
        assert again.returncode == 0, again.stderr
        assert "(new)" not in again.stdout
        assert {
            p.name: p.read_bytes() for p in (*etc.glob("influx-*-token"), *guard_dir.iterdir())
        } == tokens
        assert guard.write(client, org) == 204
        assert _wellsense("enroll", "--config", str(admin), "--no-reload").returncode == 0

        # Rotation on request: the old tokens stop working at once, so the
        # guard must be restarted (setup-server.sh does when the files change).
        rotated = influx_setup("--rotate-tokens")
        assert rotated.returncode == 0, rotated.stderr
        assert (guard_dir / "influx-processing-token").read_bytes() != tokens[
            "influx-processing-token"
        ]
        assert guard.write(client, org) != 204  # the running guard holds a deleted token
    finally:
        guard.stop()
    (guard_dir / "influx-guard-client-token").chmod(0o600)
    (guard_dir / "influx-guard-client-token").write_bytes(
        (etc / "influx-guard-client-token").read_bytes()
    )
    restarted = HandRunGuard(influxd, org, guard_dir)
    try:
        new_client = (etc / "influx-guard-client-token").read_text().strip()
        assert restarted.write(new_client, org) == 204
    finally:
        restarted.stop()
