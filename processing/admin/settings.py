"""The study administration config (``admin.toml``), validated once into frozen objects.

Read by ``wellsense broker``, ``enroll``, ``participant``, ``notice`` and
``influx setup``, so that the broker, the database, the gateway bundles and
the participant notice all follow one file. The commented sample is
``deploy/server/admin.sample.toml``. Standard library only: the admin tools
talk to InfluxDB over its HTTP API and never need NumPy.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from collector import wire
from collector.tomlconfig import (
    MqttSettings,
    Section,
    load_toml,
    mqtt_settings,
    read_secret,
)

ENV_ADMIN_MQTT_PASSWORD = "WELLSENSE_ADMIN_MQTT_PASSWORD"
ENV_INFLUX_ADMIN_TOKEN = "WELLSENSE_INFLUX_ADMIN_TOKEN"


@dataclass(frozen=True, slots=True)
class StudySettings:
    id: str
    name: str
    team_contact: str
    withdraw_instructions: str


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """The server's Mosquitto: its files, and how gateways reach it."""

    public_url: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    port: int
    bind_address: str
    password_file: Path
    acl_file: Path
    processing_user: str
    admin_user: str
    #: One broker account per processing worker, ``<processing_user>-<worker>``,
    #: plus ``<processing_user>-rules`` for the alert publisher: the broker binds
    #: each client id to its account, so no two clients may share one.
    processing_workers: tuple[str, ...] = ("w1",)

    def processing_accounts(self) -> dict[str, str]:
        """worker (or ``rules``) -> broker username."""
        return {w: f"{self.processing_user}-{w}" for w in (*self.processing_workers, "rules")}


@dataclass(frozen=True, slots=True)
class InfluxSettings:
    """InfluxDB: where data lives and for how long. ``token`` is never printed."""

    url: str
    org: str
    bucket: str
    retention_days: int
    downsampled_bucket: str
    downsampled_retention_days: int
    downsample_every: str
    token: str | None
    #: where the erasure token lives; it may not exist yet (influx-setup creates it)
    token_file: Path | None = None

    def __repr__(self) -> str:
        return f"InfluxSettings(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r})"

    @property
    def buckets(self) -> tuple[str, ...]:
        """Every bucket that can hold participant data (erasure covers all)."""
        return (self.bucket, self.downsampled_bucket)


@dataclass(frozen=True, slots=True)
class ErasureSettings:
    """The server-side stores ``participant erase`` covers besides InfluxDB and MQTT."""

    tombstones_file: Path  # processing's [service] erased_file
    notify_database: Path  # processing's [notify] state_dir / notify.sqlite
    exports_registry: Path  # written by `wellsense export`
    deadletter_database: Path = Path("/var/lib/wellsense/deadletter.sqlite")  # [deadletter] path


@dataclass(frozen=True, slots=True)
class AdminConfig:
    path: Path
    study: StudySettings
    broker: BrokerSettings
    admin_mqtt_section: Section
    influx: InfluxSettings
    registry: Path
    bundles_dir: Path
    erasure: ErasureSettings = ErasureSettings(
        Path("/var/lib/wellsense/erased.txt"),
        Path("/var/lib/wellsense/notify/notify.sqlite"),
        Path("/var/lib/wellsense/exports.jsonl"),
    )

    def admin_mqtt(self) -> MqttSettings:
        """The admin tools' broker connection (``[admin_mqtt]``), read when needed.

        Its password comes from ``password_file`` or $WELLSENSE_ADMIN_MQTT_PASSWORD,
        never from the gateway/processing variable, so one shell cannot mix them up.
        """
        section = self.admin_mqtt_section
        saved = os.environ.pop("WELLSENSE_MQTT_PASSWORD", None)
        try:
            settings = mqtt_settings(section)
        finally:
            if saved is not None:
                os.environ["WELLSENSE_MQTT_PASSWORD"] = saved
        section.reject_unknown()
        if settings.password is None and os.environ.get(ENV_ADMIN_MQTT_PASSWORD):
            settings = replace(settings, password=os.environ[ENV_ADMIN_MQTT_PASSWORD])
        return settings


def _id(section: Section, key: str, default: object = ...) -> str:
    value = section.str(key, default)
    try:
        return wire.check_id(value, key)
    except wire.WireError as exc:
        raise section.error(key, str(exc).split(": ", 1)[-1]) from None


def _path(section: Section, key: str, default: object = ...) -> Path:
    value = section.path_value(key, default)
    assert value is not None
    return value


def _duration(section: Section, key: str, default: str) -> str:
    value: str = section.str(key, default)
    if not value[:-1].isdigit() or value[-1] not in "mhd":
        raise section.error(key, f"{value!r} is not a duration like 1h, 30m or 1d")
    return value


def _workers(section: Section) -> tuple[str, ...]:
    workers = section._get("processing_workers", list, ["w1"])
    if not workers or len(workers) > 64:
        raise section.error("processing_workers", 'list 1 to 64 worker ids, e.g. ["w1"]')
    for worker in workers:
        if not isinstance(worker, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", worker):
            raise section.error("processing_workers", f"{str(worker)[:40]!r} is not a worker id")
    if len(set(workers)) != len(workers) or "rules" in workers:
        raise section.error("processing_workers", "ids must be distinct and not 'rules'")
    return tuple(workers)


def _erasure_token(section: Section) -> str | None:
    """The erasure token, or None while its file does not exist yet.

    ``influx-setup`` itself creates that file, and ``broker init`` and
    ``enroll`` never need it: on a fresh server the sample configuration must
    load before the token exists. ``participant erase`` says what to run
    when it is missing. A file that exists is checked as every secret is.
    """
    path = section.path_value("token_file")
    if path is not None and not path.exists() and not os.environ.get(ENV_INFLUX_ADMIN_TOKEN):
        return None
    return read_secret(section, "token", ENV_INFLUX_ADMIN_TOKEN)


def load(path: Path) -> AdminConfig:
    """Read and validate ``path``; raise ``ConfigError`` naming the option."""
    root = Section(path, "", load_toml(path))
    st = root.table("study")
    study = StudySettings(
        id=_id(st, "id"),
        name=st.str("name", ...),
        team_contact=st.str("team_contact", ...),
        withdraw_instructions=st.str(
            "withdraw_instructions",
            "Tell the study team. You do not have to give a reason.",
        ),
    )
    st.reject_unknown()

    br = root.table("broker")
    broker = BrokerSettings(
        public_url=br.str("public_url", ...),
        ca_file=_path(br, "ca_file"),
        cert_file=_path(br, "cert_file"),
        key_file=_path(br, "key_file"),
        port=br.int("port", 8883, lo=1, hi=65535),
        bind_address=br.str("bind_address", "0.0.0.0"),
        password_file=_path(br, "password_file", "/etc/mosquitto/wellsense/passwd"),
        acl_file=_path(br, "acl_file", "/etc/mosquitto/wellsense/acl"),
        processing_user=br.str("processing_user", "wellsense-processing"),
        admin_user=br.str("admin_user", "wellsense-admin"),
        processing_workers=_workers(br),
    )
    if not broker.public_url.startswith("mqtts://"):
        raise br.error("public_url", "gateways must use TLS: expected mqtts://HOST:PORT")
    br.reject_unknown()

    # Parsed on first use: `broker init` runs before the admin password exists.
    admin_mqtt = root.table("admin_mqtt")

    ix = root.table("influx")
    influx = InfluxSettings(
        url=ix.str("url", os.environ.get("WELLSENSE_INFLUX_URL", ...)),
        org=ix.str("org", "wellsense"),
        bucket=ix.str("bucket", "wellsense"),
        retention_days=ix.int("retention_days", 730, lo=0, hi=36500),
        downsampled_bucket=ix.str("downsampled_bucket", "wellsense_1h"),
        downsampled_retention_days=ix.int("downsampled_retention_days", 3650, lo=0, hi=36500),
        downsample_every=_duration(ix, "downsample_every", "1h"),
        token=_erasure_token(ix),
        token_file=ix.path_value("token_file"),
    )
    ix.reject_unknown()

    en = root.table("enrolment")
    registry = _path(en, "registry", "/var/lib/wellsense/registry.json")
    bundles_dir = _path(en, "bundles_dir", "/var/lib/wellsense/bundles")
    en.reject_unknown()

    er = root.table("erasure")
    erasure = ErasureSettings(
        tombstones_file=_path(er, "tombstones_file", "/var/lib/wellsense/erased.txt"),
        notify_database=_path(er, "notify_database", "/var/lib/wellsense/notify/notify.sqlite"),
        exports_registry=_path(er, "exports_registry", "/var/lib/wellsense/exports.jsonl"),
        deadletter_database=_path(
            er, "deadletter_database", "/var/lib/wellsense/deadletter.sqlite"
        ),
    )
    er.reject_unknown()
    root.reject_unknown()
    return AdminConfig(path, study, broker, admin_mqtt, influx, registry, bundles_dir, erasure)
