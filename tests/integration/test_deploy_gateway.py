"""The gateway installer, run for real against a scratch root.

What runs: deploy/gateway/install.sh as root with ``--root SCRATCH --no-apt``:
user and group creation (useradd/groupadd on the scratch root's /etc), the
virtualenv with the ``gateway`` extra at the versions of constraints.txt
(pip, from the package index or its cache), /etc/wellsense and
/var/lib/wellsense with their owners and modes, and the systemd unit, which
``systemd-analyze`` then verifies and scores.
What does not run here: apt-get, systemctl enable/start and the final
doctor (no systemd as PID 1 in a scratch root); docs/deploy.md says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from collector.config import load as load_collector_config
from wellsense_cli.localservices import make_test_pki

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "gateway" / "install.sh"


def _seed_root(root: Path) -> None:
    """The account files of a fresh Raspberry Pi OS, which has no 'bluetooth' group yet."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o640)
    shutil.copy("/etc/login.defs", etc / "login.defs")


def _bundle(directory: Path) -> Path:
    directory.mkdir()
    ca, _, _ = make_test_pki(directory / "pki")
    shutil.copy(ca, directory / "ca.crt")
    (directory / "mqtt-password").write_text("bundle-secret-not-real\n")
    (directory / "mqtt-password").chmod(0o600)
    (directory / "collector.toml").write_text(
        '[gateway]\nstudy = "pilot"\nid = "gw-abc123"\ndata_dir = "/var/lib/wellsense"\n'
        '[mqtt]\nurl = "mqtts://broker.example.org:8883"\nusername = "gw-abc123"\n'
        'password_file = "/etc/wellsense/mqtt-password"\nca_file = "/etc/wellsense/ca.crt"\n'
        '[[sensor]]\nkey = "s1"\nparticipant = "p-0a1b2c3d"\n'
        'service_uuid = "0000180d-0000-1000-8000-00805f9b34fb"\n'
    )
    return directory


@pytest.mark.skipif(os.geteuid() != 0, reason="the installer runs as root")
def test_installer_in_a_scratch_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _seed_root(root)
    bundle = _bundle(tmp_path / "bundle")
    run = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--no-apt", "--bundle", str(bundle)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "bundle-secret-not-real" not in run.stdout + run.stderr

    user = next(
        ln for ln in (root / "etc/passwd").read_text().splitlines() if ln.startswith("wellsense:")
    ).split(":")
    uid, gid, shell = int(user[2]), int(user[3]), user[6]
    assert uid < 1000 and shell == "/usr/sbin/nologin"  # a system user that cannot log in
    groups = (root / "etc/group").read_text()
    assert re.search(r"^bluetooth:x:\d+:wellsense$", groups, re.M)

    def mode(p: str) -> tuple[int, int, int]:
        st = (root / p).stat()
        return st.st_mode & 0o7777, st.st_uid, st.st_gid

    assert mode("etc/wellsense") == (0o750, 0, gid)
    assert mode("etc/wellsense/collector.toml") == (0o640, 0, gid)
    assert mode("etc/wellsense/mqtt-password") == (0o400, uid, gid)
    assert mode("var/lib/wellsense") == (0o700, uid, gid)

    venv = root / "opt/wellsense/venv"
    help_out = subprocess.run(
        [str(venv / "bin/wellsense"), "collect", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--config" in help_out
    leaked = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "import importlib.util as u; print([m for m in "
            "('numpy', 'scipy', 'influxdb_client') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert leaked == "[]"
    # ... and what it has is the versions pinned in constraints.txt.
    pins = dict(
        ln.split("==")
        for ln in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in ln and not ln.startswith("#")
    )
    installed = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "from importlib.metadata import version as v; "
            "print(v('bleak'), v('paho-mqtt'), v('dbus-fast'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert installed == [pins["bleak"], pins["paho-mqtt"], pins["dbus-fast"]]

    # The installed config is a valid collector config (paths mapped into the scratch root).
    text = (root / "etc/wellsense/collector.toml").read_text()
    (tmp_path / "mapped.toml").write_text(
        text.replace("/etc/wellsense", str(root / "etc/wellsense"))
    )
    config = load_collector_config(tmp_path / "mapped.toml")
    assert config.mqtt.password == "bundle-secret-not-real"

    # systemd accepts the unit and rates its sandbox (needs systemd's own units in the root).
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    verify = subprocess.run(
        ["systemd-analyze", f"--root={root}", "verify", "wellsense-collector.service"],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    assert "Unknown key" not in verify.stderr, verify.stderr  # every setting is in effect
    security = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--root={root}",
            "wellsense-collector.service",
        ],
        capture_output=True,
        text=True,
    )
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert score and float(score.group(1)) < 3.0, security.stdout[-500:]

    # Re-running is safe (an upgrade): same user, same modes.
    again = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--no-apt", "--bundle", str(bundle)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    accounts = (root / "etc/passwd").read_text().splitlines()
    assert [ln.split(":")[0] for ln in accounts].count("wellsense") == 1
    assert mode("etc/wellsense/mqtt-password") == (0o400, uid, gid)


def test_installer_refuses_an_incomplete_bundle(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    run = subprocess.run(
        [
            "bash",
            str(INSTALL),
            "--root",
            str(tmp_path / "r"),
            "--no-apt",
            "--bundle",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "copy the whole folder" in run.stderr or "run me as root" in run.stderr
