"""Installability on a Raspberry Pi, shown without one.

pip resolves every dependency of the ``gateway`` and ``minimise`` extras, at
the versions pinned in constraints.txt, as binary wheels for 64-bit Arm Linux
and CPython 3.11 (Raspberry Pi OS 12) and 3.13 (Raspberry Pi OS 13), with
``--only-binary=:all:``: nothing needs a compiler on the Pi. Downloads from
the package index (or pip's cache), so it is marked slow. ``make test-arm64``
goes further and installs the wheel in an emulated arm64 Debian root.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ARM64 = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64",
         "linux_aarch64")  # fmt: skip


def _pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return dict(ln.split("==") for ln in lines if "==" in ln and not ln.startswith("#"))


@pytest.mark.parametrize("extra", ["gateway", "minimise"])
@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_extra_resolves_to_pinned_binary_wheels_for_arm64(
    extra: str, python: str, tmp_path: Path
) -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]  # fmt: skip
    requirements = extras[extra]
    abi = "cp" + python.replace(".", "")
    platforms = [arg for tag in ARM64 for arg in ("--platform", tag)]
    run = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
         "--only-binary=:all:", *platforms, "--python-version", python,
         "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
         "-c", str(REPO / "constraints.txt"), "-d", str(tmp_path), *requirements],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(name.endswith(".whl") for name in files), files
    pins = _pins()
    versions = {}
    for name in files:
        project, version, _, tags = parse_wheel_filename(name)
        versions[project] = str(version)
        for tag in tags:
            assert tag.platform == "any" or "aarch64" in tag.platform, name
            assert tag.interpreter in ("py3", "py2", abi) or tag.abi == "abi3", name
        # Every wheel is the pinned version: the Pi computes what the tests computed.
        assert pins.get(project) == str(version), (name, pins.get(project))
    expected = {canonicalize_name(n) for n in ("bleak", "paho-mqtt", "dbus-fast")}
    if extra == "minimise":
        expected |= {"numpy", "scipy"}
    assert expected <= set(versions), versions
