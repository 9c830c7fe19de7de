"""Sensor keys and device ids are fixed at enrolment: never renumbered, never reused."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from processing.admin import settings
from processing.admin.enroll import collector_toml
from processing.admin.registry import Registry

REPO = Path(__file__).resolve().parents[2]
GW = "gw-abc123"


def _devices(registry: Registry) -> dict[str, tuple[str, str]]:
    config = settings.load(REPO / "deploy/server/admin.sample.toml")  # loads without tokens
    text = collector_toml(config, GW, registry, registry.of_gateway(GW, "active"))
    return {s["participant"]: (s["key"], s["device"]) for s in tomllib.loads(text)["sensor"]}


def test_enrolling_someone_else_never_moves_a_device_id(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.json", "pilot")
    registry.add("p-bbbbbbbb", GW)
    first = _devices(registry)["p-bbbbbbbb"]
    registry.add("p-aaaaaaaa", GW)  # sorts first: it used to take s1 from p-bbbbbbbb
    devices = _devices(registry)
    assert devices["p-bbbbbbbb"] == first == ("s1", f"{GW}-s1")
    assert devices["p-aaaaaaaa"] == ("s2", f"{GW}-s2")
    registry.set_status("p-bbbbbbbb", "erased")
    registry.add("p-cccccccc", GW)  # a number once used is never given again
    assert _devices(registry) == {
        "p-aaaaaaaa": ("s2", f"{GW}-s2"),
        "p-cccccccc": ("s3", f"{GW}-s3"),
    }
    registry.save()
    again = Registry(tmp_path / "registry.json", "pilot")
    assert again.participants["p-aaaaaaaa"].device == f"{GW}-s2"


def test_a_registry_from_before_keeps_the_keys_its_gateways_have(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    old = {"gateway": GW, "enrolled": "2026-01-01T00:00:00Z", "status": "active", "changed": ""}
    path.write_text(
        json.dumps({"study": "pilot", "participants": {"p-bbbbbbbb": old, "p-dddddddd": old}})
    )
    registry = Registry(path, "pilot")
    registry.add("p-aaaaaaaa", GW)
    # What the gateway was last given (s1, s2 in pseudonym order) stays; the new one is s3.
    assert _devices(registry) == {
        "p-bbbbbbbb": ("s1", f"{GW}-s1"),
        "p-dddddddd": ("s2", f"{GW}-s2"),
        "p-aaaaaaaa": ("s3", f"{GW}-s3"),
    }
