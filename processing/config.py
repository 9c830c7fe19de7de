"""Configuration of the processing service: TOML, validated once into frozen objects.

See ``deploy/server/processing.sample.toml`` for every option with its default.
Secrets (the MQTT password, the InfluxDB token) come from the environment or
from files readable by their owner only, never from the TOML itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector import wire
from collector.tomlconfig import (
    ConfigError,
    MqttSettings,
    Section,
    load_toml,
    mqtt_settings,
    read_secret,
)
from processing import tombstones
from processing.notify.settings import NotifyConfig
from processing.notify.settings import parse as parse_notify

__all__ = ["ConfigError", "FeatureConfig", "InfluxConfig", "ProcessingConfig", "load"]

DEFAULT_MAX_INFLIGHT = 1000
DEFAULT_BATCH_MAX_POINTS = 5000
DEFAULT_BATCH_MAX_WAIT_MS = 200
DEFAULT_STATS_INTERVAL_S = 30.0
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
DEFAULT_HRV_WINDOW_S = 300
DEFAULT_SETTLE_S = 30.0
DEFAULT_IDLE_S = 60.0
DEFAULT_CATCHUP_H = 3.0
# MQTT shared-subscription group names end up in a topic filter.
_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    """Where points go. ``token`` is never printed (see ``__repr__``)."""

    url: str
    org: str
    bucket: str
    token: str
    timeout_s: float
    retry_max_s: float

    def __repr__(self) -> str:
        return (
            f"InfluxConfig(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r}, token=***)"
        )


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """The feature hook: which windows and when they are (re)computed."""

    enabled: bool
    hrv_window_s: int
    settle_s: float
    idle_s: float
    timezone: str
    catchup_h: float = DEFAULT_CATCHUP_H  # at start, recompute units of this many hours (0 = off)


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """The alert rules, evaluated inside this worker (enable on one worker only)."""

    enabled: bool
    directory: Path | None
    interval_s: float
    lookback_s: float
    #: The alert publisher's own broker account (the shipped broker binds client
    #: ids to accounts, so it cannot share the worker's); None: the worker's.
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeadLetterConfig:
    """The durable dead-letter store (:mod:`processing.deadletterstore`)."""

    path: Path
    max_rows: int
    max_bytes: int


def default_deadletter_path() -> Path:
    """``$STATE_DIRECTORY`` (systemd's StateDirectory) or ``~/.local/state/wellsense``."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    base = Path(state) if state else Path.home() / ".local" / "state" / "wellsense"
    return base / "deadletter.sqlite"


@dataclass(frozen=True, slots=True)
class ProcessingConfig:
    path: Path
    study: str
    worker: str
    shared_group: str | None
    max_inflight: int
    batch_max_points: int
    batch_max_wait_ms: int
    stats_interval_s: float
    mqtt: MqttSettings
    client_id: str
    session_expiry_s: int
    influx: InfluxConfig
    features: FeatureConfig
    rules: RulesConfig = RulesConfig(False, None, 60.0, 35 * 86400.0)
    notify: NotifyConfig | None = None  # alert delivery (processing.notify.settings)
    deadletter: DeadLetterConfig = field(
        default_factory=lambda: DeadLetterConfig(default_deadletter_path(), 100_000, 1024**3)
    )
    erased_file: Path = tombstones.DEFAULT_PATH

    def topic_filters(self) -> list[str]:
        """What to subscribe to: participant streams and gateway health/state."""
        root = f"{wire.TOPIC_ROOT}/{self.study}"
        filters = [f"{root}/+/+", f"{root}/_gateways/+/health", f"{root}/_gateways/+/state"]
        if self.shared_group:
            return [f"$share/{self.shared_group}/{f}" for f in filters]
        return filters


def load(path: Path) -> ProcessingConfig:
    """Read and validate ``path``; raise :class:`ConfigError` naming the option."""
    root = Section(path, "", load_toml(path))
    svc = root.table("service")
    study = svc.str("study", ...)
    try:
        wire.check_id(study, "study")
    except wire.WireError as exc:
        raise svc.error("study", str(exc)) from None
    worker = svc.str("worker", "w1")
    try:
        wire.check_id(worker, "worker")
    except wire.WireError as exc:
        raise svc.error("worker", str(exc)) from None
    group = svc.str("shared_group", None)
    if group is not None and not _GROUP_PATTERN.match(group):
        raise svc.error("shared_group", "letters, digits, '-' and '_' only (max 64)")
    max_inflight = svc.int("max_inflight", DEFAULT_MAX_INFLIGHT, lo=1, hi=65535)
    batch_max_points = svc.int("batch_max_points", DEFAULT_BATCH_MAX_POINTS, lo=1, hi=1_000_000)
    batch_max_wait_ms = svc.int("batch_max_wait_ms", DEFAULT_BATCH_MAX_WAIT_MS, lo=1, hi=60_000)
    stats_interval_s = svc.float("stats_interval_s", DEFAULT_STATS_INTERVAL_S, lo=0.1, hi=86400)
    # Hashed pseudonyms of erased participants (processing/tombstones.py); the
    # same file as admin.toml's [erasure] tombstones_file.
    erased_file = svc.path_value("erased_file", str(tombstones.DEFAULT_PATH))
    assert erased_file is not None
    svc.reject_unknown()

    mq = root.table("mqtt")
    client_id = mq.str("client_id", f"wellsense-proc-{study}-{worker}")
    if not 1 <= len(client_id) <= 128:
        raise mq.error("client_id", "must be 1..128 characters")
    session_expiry_s = mq.int("session_expiry_s", DEFAULT_SESSION_EXPIRY_S, lo=60, hi=2**32 - 1)
    mqtt = mqtt_settings(mq)
    mq.reject_unknown()

    influx = _influx(root.table("influx"))
    features = _features(root.table("features"))
    rules = _rules(root.table("rules"))
    notify = parse_notify(root.table("notify"))
    deadletter = _deadletter(root.table("deadletter"))
    root.reject_unknown()
    return ProcessingConfig(
        path=path,
        study=study,
        worker=worker,
        shared_group=group,
        max_inflight=max_inflight,
        batch_max_points=batch_max_points,
        batch_max_wait_ms=batch_max_wait_ms,
        stats_interval_s=stats_interval_s,
        mqtt=mqtt,
        client_id=client_id,
        session_expiry_s=session_expiry_s,
        influx=influx,
        features=features,
        rules=rules,
        notify=notify,
        deadletter=deadletter,
        erased_file=erased_file,
    )


def _deadletter(sec: Section) -> DeadLetterConfig:
    path = sec.path_value("path") or default_deadletter_path()
    max_rows = sec.int("max_rows", 100_000, lo=1, hi=10**9)
    max_mb = sec.int("max_mb", 1024, lo=1, hi=10**6)
    sec.reject_unknown()
    return DeadLetterConfig(path, max_rows, max_mb * 1024 * 1024)


def _influx(sec: Section) -> InfluxConfig:
    url = sec.str("url", os.environ.get("WELLSENSE_INFLUX_URL", ...))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise sec.error("url", f"expected http(s)://HOST:PORT, got {url!r}")
    if parts.username or parts.password:
        raise sec.error("url", "must not carry credentials; use token_file")
    org = sec.str("org", os.environ.get("WELLSENSE_INFLUX_ORG", ...))
    bucket = sec.str("bucket", os.environ.get("WELLSENSE_INFLUX_BUCKET", ...))
    timeout_s = sec.float("timeout_s", 10.0, lo=0.1, hi=600)
    retry_max_s = sec.float("retry_max_s", 30.0, lo=0.1, hi=3600)
    token = read_secret(sec, "token", "WELLSENSE_INFLUX_TOKEN")
    if token is None:
        raise sec.error("token_file", "no token: set $WELLSENSE_INFLUX_TOKEN or token_file")
    sec.reject_unknown()
    return InfluxConfig(url.rstrip("/"), org, bucket, token, timeout_s, retry_max_s)


def _features(sec: Section) -> FeatureConfig:
    enabled = sec.bool("enabled", True)
    window = sec.int("hrv_window_s", DEFAULT_HRV_WINDOW_S, lo=10, hi=86400)
    if 86400 % window:
        raise sec.error("hrv_window_s", "must divide a day (86400 s) so windows align to days")
    settle = sec.float("settle_s", DEFAULT_SETTLE_S, lo=0.0, hi=86400)
    idle = sec.float("idle_s", DEFAULT_IDLE_S, lo=0.1, hi=86400)
    tz = sec.str("timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise sec.error("timezone", f"unknown IANA time zone {tz!r}") from None
    catchup_h = sec.float("catchup_h", DEFAULT_CATCHUP_H, lo=0.0, hi=168.0)
    sec.reject_unknown()
    return FeatureConfig(enabled, window, settle, idle, tz, catchup_h)


def _rules(sec: Section) -> RulesConfig:
    enabled = sec.bool("enabled", False)
    directory = sec.path_value("directory")
    if enabled and directory is None:
        raise sec.error(
            "directory", "required when the rules are enabled (e.g. /etc/wellsense/rules)"
        )
    if directory is not None and not directory.is_dir():
        raise sec.error("directory", f"{directory} is not a directory")
    interval_s = sec.float("interval_s", 60.0, lo=1.0, hi=86400)
    lookback_days = sec.int("lookback_days", 35, lo=1, hi=3650)
    username = sec.str("mqtt_username", None)
    password = read_secret(sec, "mqtt_password", "WELLSENSE_RULES_MQTT_PASSWORD")
    if (username is None) != (password is None):
        raise sec.error(
            "mqtt_username", "set both mqtt_username and mqtt_password_file, or neither"
        )
    sec.reject_unknown()
    return RulesConfig(enabled, directory, interval_s, lookback_days * 86400.0, username, password)
