"""The enrolment registry: pseudonyms, their gateways and their status. Never identities.

A JSON file (mode 0600) on the server::

    {"study": "pilot", "participants": {"p-3f9c2a7e": {"gateway": "gw-5d2e81",
     "enrolled": "2025-01-01T10:00:00Z", "status": "active", "changed": "..."}}}

The key between a pseudonym and a person is kept by the study team outside
WellSense; nothing here could link one to the other.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from processing.admin.broker import write_private

STATUSES = ("active", "withdrawn", "erased")


@dataclass
class Entry:
    gateway: str
    enrolled: str
    status: str = "active"
    changed: str = ""
    sensor: str = ""  # the collector.toml line that finds the strap, if pinned
    #: the strap's key in collector.toml and its device id: fixed at enrolment,
    #: never renumbered or reused (so a device id never moves to another person)
    sensor_key: str = ""
    device: str = ""


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Registry:
    def __init__(self, path: Path, study: str) -> None:
        self.path = path
        self.study = study
        self.participants: dict[str, Entry] = {}
        if path.exists():
            raw = json.loads(path.read_text())
            if raw.get("study") != study:
                raise ValueError(f"{path} belongs to study {raw.get('study')!r}, not {study!r}")
            self.participants = {p: Entry(**e) for p, e in raw["participants"].items()}

    def save(self) -> None:
        body = {
            "study": self.study,
            "participants": {p: asdict(e) for p, e in sorted(self.participants.items())},
        }
        write_private(self.path, json.dumps(body, indent=1) + "\n", mode=0o600)

    def gateways(self) -> set[str]:
        return {e.gateway for e in self.participants.values()}

    def of_gateway(self, gateway: str, *statuses: str) -> list[str]:
        wanted = statuses or STATUSES
        return sorted(
            p for p, e in self.participants.items() if e.gateway == gateway and e.status in wanted
        )

    def new_pseudonym(self) -> str:
        """Random, so it carries nothing about the person: 'p-' + 8 hex digits."""
        while True:
            candidate = f"p-{secrets.token_hex(4)}"
            if candidate not in self.participants:
                return candidate

    def new_gateway_id(self) -> str:
        while True:
            candidate = f"gw-{secrets.token_hex(3)}"
            if candidate not in self.gateways():
                return candidate

    def add(self, participant: str, gateway: str, sensor: str = "") -> None:
        self.fix_sensor_keys(gateway)
        n = self._next_sensor_number(gateway)
        self.participants[participant] = Entry(
            gateway, now_iso(), "active", now_iso(), sensor, f"s{n}", f"{gateway}-s{n}"
        )

    def fix_sensor_keys(self, gateway: str) -> None:
        """Store the keys that registries before stable keys implied, as they are now.

        Those gave the active participants of a gateway ``s1``, ``s2``, ... in
        pseudonym order at every enrolment (and device ids ``<gateway>-s<n>``);
        they are kept as they were last written, and never renumbered again.
        """
        for i, p in enumerate(self.of_gateway(gateway, "active"), 1):
            entry = self.participants[p]
            if not entry.sensor_key:
                entry.sensor_key, entry.device = f"s{i}", f"{gateway}-s{i}"

    def _next_sensor_number(self, gateway: str) -> int:
        """Above every number this gateway ever had (erased participants stay listed)."""
        entries = [e for e in self.participants.values() if e.gateway == gateway]
        used = [int(e.sensor_key[1:]) for e in entries if e.sensor_key[1:].isdigit()]
        return max([len(entries), *used]) + 1

    def set_status(self, participant: str, status: str) -> None:
        assert status in STATUSES
        entry = self.participants[participant]
        entry.status, entry.changed = status, now_iso()
