"""Packaging: pins for every extra, the shipped deploy/ and rules/, no Bluetooth in processing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import wellsense_resources
from processing.admin.broker import deploy_dir

REPO = Path(__file__).resolve().parents[2]


def _extras() -> dict[str, list[str]]:
    extras: dict[str, list[str]] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    return extras


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and name == canonicalize_name(name), f"not 'name==version': {line!r}"
        assert name not in pins, f"pinned twice: {name}"
        pins[name] = Version(version)
    return pins


def test_every_dependency_of_every_extra_is_pinned_to_a_version_it_accepts() -> None:
    pins = _pins()
    missing, rejected = [], []
    for extra, requirements in _extras().items():
        for text in requirements:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            if name == "wellsense":
                continue
            if name not in pins:
                missing.append(f"{extra}: {name}")
            elif not req.specifier.contains(pins[name], prereleases=True):
                rejected.append(f"{extra}: {req} vs pin {pins[name]}")
    hint = "run `make constraints` after changing the extras"
    assert not missing, f"no pin in constraints.txt for {missing}; {hint}"
    assert not rejected, f"pins outside the extras' ranges: {rejected}; {hint}"


def test_dev_installs_every_other_extra() -> None:
    # `make constraints` pins what `.[dev]` installs, so dev must take in every extra.
    extras = _extras()
    included: set[str] = set()
    for text in extras["dev"]:
        req = Requirement(text)
        if canonicalize_name(req.name) == "wellsense":
            included |= req.extras
    assert included == set(extras) - {"dev"}


def test_the_constraints_file_is_sorted_and_only_exact_pins() -> None:
    names = list(_pins())
    assert names == sorted(names)
    assert "wellsense" not in names  # the project itself is never pinned


def test_the_research_and_server_extras_carry_no_bluetooth_stack() -> None:
    extras = _extras()
    for extra in ("research", "server"):
        names = {canonicalize_name(Requirement(r).name) for r in extras[extra]}
        assert not names & {"bleak", "dbus-fast", "wellsense"}, (extra, names)
    assert "paho-mqtt" not in {canonicalize_name(Requirement(r).name) for r in extras["research"]}


def test_the_shipped_folders_are_the_checkouts_top_level_ones() -> None:
    assert wellsense_resources.deploy_dir().resolve() == REPO / "deploy"
    assert wellsense_resources.rules_dir().resolve() == REPO / "rules"
    assert (deploy_dir() / "server" / "mosquitto" / "wellsense.conf.in").is_file()
    assert sorted(wellsense_resources.rules_dir().glob("*.toml"))


def test_the_deploy_override_must_be_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WELLSENSE_DEPLOY_DIR", str(tmp_path))
    assert wellsense_resources.deploy_dir() == tmp_path
    monkeypatch.setenv("WELLSENSE_DEPLOY_DIR", str(tmp_path / "nope"))
    with pytest.raises(wellsense_resources.ResourceError, match="not a directory"):
        wellsense_resources.deploy_dir()


# Every processing module, imported in a fresh interpreter in which the
# Bluetooth stack cannot be imported (None in sys.modules makes import fail).
_IMPORT_ALL = """
import importlib, pkgutil, sys
for blocked in ("bleak", "dbus_fast"):
    sys.modules[blocked] = None
import processing
names = [m.name for m in pkgutil.walk_packages(processing.__path__, "processing.")]
for name in names:
    importlib.import_module(name)
assert "processing.service" in names
print(len(names))
"""


def test_every_processing_module_imports_without_bleak() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.strip()) > 10
