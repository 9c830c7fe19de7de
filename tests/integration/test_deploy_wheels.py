"""Installability on a Raspberry Pi, shown without one.

pip resolves every dependency of the ``gateway`` extra as binary wheels for
64-bit Arm Linux and CPython 3.11 (Raspberry Pi OS 12's Python), with
``--only-binary=:all:``: nothing needs a compiler on the Pi. Downloads from
the package index (or pip's cache), so it is marked slow.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ARM64 = (
    "manylinux2014_aarch64",
    "manylinux_2_17_aarch64",
    "manylinux_2_28_aarch64",
    "linux_aarch64",
)


def test_gateway_extra_resolves_to_binary_wheels_for_arm64_cpython311(tmp_path: Path) -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    requirements = extras["gateway"]
    platforms = [arg for tag in ARM64 for arg in ("--platform", tag)]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            *platforms,
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--abi",
            "abi3",
            "--abi",
            "none",
            "-d",
            str(tmp_path),
            *requirements,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(name.endswith(".whl") for name in files), files
    for name in files:
        tags = name[:-4].split("-")[-3:]  # python, abi, platform
        assert tags[2] == "any" or "aarch64" in tags[2], name
        assert tags[0] in ("py3", "py2.py3", "cp311") or tags[0].startswith("cp3"), name
    names = {name.split("-")[0].lower().replace("_", "-") for name in files}
    assert {"bleak", "paho-mqtt", "dbus-fast"} <= names, names
