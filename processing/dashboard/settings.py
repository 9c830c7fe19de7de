"""The dashboard's configuration file.

.. code-block:: toml

    [dashboard]
    study = "pilot-1"
    listen = "127.0.0.1:8787"            # behind a TLS reverse proxy in production
    state_dir = "/var/lib/wellsense/dashboard"   # accounts.sqlite: users, audit log, acks
    timezone = "Europe/Oslo"
    secure_cookies = true                # cookies only over HTTPS (set false for plain local use)
    # registry = "/var/lib/wellsense/registry.json"   # wellsense enroll's registry: each
    #                                 # participant's gateway, and who is active or withdrawn

    [influx]
    url = "http://127.0.0.1:8086"
    org = "wellsense"
    bucket = "wellsense"
    token_file = "/etc/wellsense/dashboard-read.token"   # a READ-ONLY token, 0600

The token may also come from ``$WELLSENSE_INFLUX_TOKEN``; it is never printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector import wire
from collector.tomlconfig import ConfigError, Section, load_toml, read_secret
from processing.research.settings import Connection

__all__ = ["ConfigError", "DashboardConfig", "load"]


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    path: Path
    study: str
    host: str
    port: int
    state_dir: Path
    timezone: str
    secure_cookies: bool
    registry: Path | None
    connection: Connection

    @property
    def accounts_path(self) -> Path:
        return self.state_dir / "accounts.sqlite"


def load(path: Path) -> DashboardConfig:
    root = Section(path, "", load_toml(path))
    sec = root.table("dashboard")
    study = sec.str("study", ...)
    try:
        wire.check_id(study, "study")
    except wire.WireError as exc:
        raise sec.error("study", str(exc)) from None
    listen = sec.str("listen", "127.0.0.1:8787")
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise sec.error("listen", f"expected HOST:PORT such as 127.0.0.1:8787, got {listen!r}")
    state_dir = sec.path_value("state_dir", ...)
    assert state_dir is not None
    tz = sec.str("timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise sec.error("timezone", f"unknown IANA time zone {tz!r}") from None
    secure = sec.bool("secure_cookies", True)
    registry = sec.path_value("registry")
    if registry is not None and not registry.is_file():
        raise sec.error("registry", f"{registry} does not exist (wellsense enroll writes it)")
    sec.reject_unknown()

    ix = root.table("influx")
    url = ix.str("url", os.environ.get("WELLSENSE_INFLUX_URL", ...))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ix.error("url", f"expected http(s)://HOST:PORT, got {url!r}")
    org = ix.str("org", os.environ.get("WELLSENSE_INFLUX_ORG", ...))
    bucket = ix.str("bucket", os.environ.get("WELLSENSE_INFLUX_BUCKET", ...))
    timeout_s = ix.float("timeout_s", 30.0, lo=0.1, hi=600)
    token = read_secret(ix, "token", "WELLSENSE_INFLUX_TOKEN")
    if token is None:
        raise ix.error(
            "token_file", "no token: set token_file (a read-only token) or $WELLSENSE_INFLUX_TOKEN"
        )
    ix.reject_unknown()
    root.reject_unknown()
    connection = Connection(url.rstrip("/"), org, bucket, token, study, tz, timeout_s)
    return DashboardConfig(
        path, study, host.strip("[]"), int(port_text), state_dir, tz, secure, registry, connection
    )
