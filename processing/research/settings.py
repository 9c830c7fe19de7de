"""Where the data is: InfluxDB connection, study and time zone, from flags, env or TOML.

Precedence: command-line flag > environment > ``--config`` file. The config
file may be the processing service's own TOML (``[service] study``,
``[influx] url/org/bucket/token_file``, ``[features] timezone`` are read;
everything else in it is ignored), so a researcher on the server needs no
second file. The token comes from ``$WELLSENSE_INFLUX_TOKEN`` or a
``token_file`` readable by its owner only; it is never printed.

Environment: ``WELLSENSE_INFLUX_URL``, ``WELLSENSE_INFLUX_ORG``,
``WELLSENSE_INFLUX_BUCKET``, ``WELLSENSE_INFLUX_TOKEN``, ``WELLSENSE_STUDY``,
``WELLSENSE_TIMEZONE``. A read-only token on the bucket is enough for
everything except ``wellsense selfreport import`` (which writes).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector import wire
from collector.tomlconfig import ConfigError, Section, load_toml, read_secret

__all__ = ["ConfigError", "Connection", "add_connection_args", "connection_from_args"]


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything a query needs. ``token`` stays out of ``repr``."""

    url: str
    org: str
    bucket: str
    token: str
    study: str
    timezone: str = "UTC"
    timeout_s: float = 60.0

    def __repr__(self) -> str:
        return (
            f"Connection(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r}, "
            f"study={self.study!r}, timezone={self.timezone!r}, token=***)"
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """The shared ``--config/--url/--org/--bucket/--token-file/--study/--timezone`` options."""
    g = parser.add_argument_group("where the data is (flags > environment > --config)")
    g.add_argument("--config", type=Path, help="TOML file, e.g. the processing service's")
    g.add_argument("--url", help="InfluxDB URL ($WELLSENSE_INFLUX_URL)")
    g.add_argument("--org", help="InfluxDB organisation ($WELLSENSE_INFLUX_ORG)")
    g.add_argument("--bucket", help="InfluxDB bucket ($WELLSENSE_INFLUX_BUCKET)")
    g.add_argument(
        "--token-file",
        type=Path,
        help="file holding the token, chmod 600 ($WELLSENSE_INFLUX_TOKEN)",
    )
    g.add_argument("--study", help="study id ($WELLSENSE_STUDY)")
    g.add_argument("--timezone", help="IANA zone for days and dates ($WELLSENSE_TIMEZONE)")


def connection_from_args(args: argparse.Namespace) -> Connection:
    """Resolve the options above into a :class:`Connection`; :class:`ConfigError` names what
    is missing or wrong."""
    file_values: dict[str, Any] = {}
    token: str | None = None
    if args.config is not None:
        root = Section(args.config, "", load_toml(args.config))
        svc, influx, feats = root.table("service"), root.table("influx"), root.table("features")
        file_values = {
            "study": svc.str("study", None),
            "url": influx.str("url", None),
            "org": influx.str("org", None),
            "bucket": influx.str("bucket", None),
            "timezone": feats.str("timezone", None),
        }
        token = read_secret(influx, "token", "WELLSENSE_INFLUX_TOKEN")
    if args.token_file is not None:
        token = _read_token_file(args.token_file)
    elif token is None:
        token = os.environ.get("WELLSENSE_INFLUX_TOKEN")

    def pick(name: str, env: str, default: str | None = None) -> str | None:
        flag = getattr(args, name, None)
        return flag or os.environ.get(env) or file_values.get(name) or default

    values = {
        "url": pick("url", "WELLSENSE_INFLUX_URL"),
        "org": pick("org", "WELLSENSE_INFLUX_ORG"),
        "bucket": pick("bucket", "WELLSENSE_INFLUX_BUCKET"),
        "study": pick("study", "WELLSENSE_STUDY"),
        "timezone": pick("timezone", "WELLSENSE_TIMEZONE", "UTC"),
    }
    for name, value in values.items():
        if not value:
            env = "WELLSENSE_STUDY" if name == "study" else f"WELLSENSE_INFLUX_{name.upper()}"
            raise ConfigError(f"no {name}: pass --{name}, set ${env} or use --config")
    if not token:
        raise ConfigError("no InfluxDB token: set $WELLSENSE_INFLUX_TOKEN or pass --token-file")
    try:
        wire.check_id(str(values["study"]), "study")
    except wire.WireError as exc:
        raise ConfigError(f"--study: {exc}") from None
    try:
        ZoneInfo(str(values["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone: unknown IANA time zone {values['timezone']!r}") from None
    return Connection(
        url=str(values["url"]).rstrip("/"),
        org=str(values["org"]),
        bucket=str(values["bucket"]),
        token=token,
        study=str(values["study"]),
        timezone=str(values["timezone"]),
    )


def _read_token_file(path: Path) -> str:
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"--token-file: {path} is readable by others; run: chmod 600 {path}")
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"--token-file: {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"--token-file: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise ConfigError(f"--token-file: {path} is empty")
    return token
