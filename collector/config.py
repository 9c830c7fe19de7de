"""Gateway collector configuration, validated once at start.

The commented sample is ``deploy/gateway/collector.sample.toml``; every option
there is read here, and an unknown option is an error naming the file, the
table and the option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from collector import wire
from collector.gatt_uuids import uuid128
from collector.profiles import AUTO, PROFILES
from collector.tomlconfig import ConfigError, MqttSettings, Section, load_toml, mqtt_settings

_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class SensorConfig:
    """One wearable: how to find it and whose data it carries."""

    key: str
    participant: str
    device: str
    address: str | None
    name_pattern: str | None
    service_uuid: str | None
    profile: str = "hrs"  # collector.profiles: hrs, polar_h10, polar_verity, pinetime, auto


@dataclass(frozen=True, slots=True)
class BatchConfig:
    max_interval_s: float
    max_samples: int


@dataclass(frozen=True, slots=True)
class BleConfig:
    adapter: str
    battery_interval_s: float
    scan_timeout_s: float
    reconnect_min_s: float
    reconnect_max_s: float


@dataclass(frozen=True, slots=True)
class MinimiseConfig:
    """Data minimisation: HRV windows computed on the gateway instead of raw uploads.

    When ``enabled``, raw ``hr``/``activity`` samples stay in a local store
    (``raw.sqlite3`` in ``data_dir``) for ``keep_raw_days`` days and only
    per-window features (every ``window_s`` seconds) are published.
    """

    enabled: bool = False
    window_s: int = 300
    keep_raw_days: int = 7


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """End-to-end delivery (``[outbox]``): re-sending and the batch journal."""

    confirm_timeout_s: float = 30.0  # first wait for processing's storage confirmation
    confirm_timeout_max_s: float = 900.0  # the wait doubles per attempt up to this
    max_unconfirmed: int = 1000  # sent but unconfirmed messages at once
    journal_sync_s: float = 1.0  # fsync of the batch journal (the power-cut bound)


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    path: Path
    study: str
    gateway: str
    data_dir: Path
    clock_source: str
    mqtt: MqttSettings
    max_inflight: int
    batch: BatchConfig
    outbox_max_bytes: int
    ble: BleConfig
    health_interval_s: float
    sensors: tuple[SensorConfig, ...]
    minimise: MinimiseConfig = MinimiseConfig()
    delivery: DeliveryConfig = DeliveryConfig()

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.sqlite3"

    @property
    def raw_store_path(self) -> Path:
        return self.data_dir / "raw.sqlite3"


def _id(section: Section, key: str, default: object = ...) -> str:
    value = section.str(key, default)
    try:
        return wire.check_id(value, key)
    except wire.WireError as exc:
        raise section.error(key, str(exc).split(": ", 1)[-1]) from None


def load(path: Path) -> CollectorConfig:
    root = Section(path, "", load_toml(path))
    gw = root.table("gateway")
    study = _id(gw, "study")
    gateway = _id(gw, "id")
    data_dir = gw.path_value("data_dir", "/var/lib/wellsense")
    assert data_dir is not None
    clock_source = gw.choice("clock_source", tuple(sorted(wire.CLOCK_SOURCES)), "ntp")
    gw.reject_unknown()

    mq = root.table("mqtt")
    mqtt = mqtt_settings(mq)
    max_inflight = mq.int("max_inflight", 20, lo=1, hi=1000)
    mq.reject_unknown()

    b = root.table("batch")
    batch = BatchConfig(
        max_interval_s=b.float("max_interval_s", 10.0, lo=0.05, hi=3600.0),
        max_samples=b.int("max_samples", 120, lo=1, hi=wire.MAX_SAMPLES),
    )
    b.reject_unknown()

    ob = root.table("outbox")
    outbox_max_bytes = ob.int("max_bytes", 512 * 1024 * 1024, lo=1024 * 1024)
    delivery = DeliveryConfig(
        confirm_timeout_s=ob.float("confirm_timeout_s", 30.0, lo=1.0, hi=3600.0),
        confirm_timeout_max_s=ob.float("confirm_timeout_max_s", 900.0, lo=1.0, hi=86400.0),
        max_unconfirmed=ob.int("max_unconfirmed", 1000, lo=1, hi=1_000_000),
        journal_sync_s=ob.float("journal_sync_s", 1.0, lo=0.05, hi=60.0),
    )
    if delivery.confirm_timeout_max_s < delivery.confirm_timeout_s:
        raise ob.error("confirm_timeout_max_s", "must not be below confirm_timeout_s")
    ob.reject_unknown()

    bl = root.table("ble")
    ble = BleConfig(
        adapter=bl.str("adapter", "hci0"),
        battery_interval_s=bl.float("battery_interval_s", 900.0, lo=1.0),
        scan_timeout_s=bl.float("scan_timeout_s", 10.0, lo=0.5, hi=300.0),
        reconnect_min_s=bl.float("reconnect_min_s", 1.0, lo=0.05),
        reconnect_max_s=bl.float("reconnect_max_s", 300.0, lo=0.1),
    )
    if ble.reconnect_max_s < ble.reconnect_min_s:
        raise bl.error("reconnect_max_s", "must not be below reconnect_min_s")
    bl.reject_unknown()

    h = root.table("health")
    health_interval_s = h.float("interval_s", 60.0, lo=1.0, hi=86400.0)
    h.reject_unknown()

    minimise = _minimise(root.table("minimise"))

    sensors = tuple(_sensor(s, gateway) for s in root.tables("sensor"))
    if not sensors:
        raise ConfigError(
            f"{path}: no [[sensor]] configured; run 'wellsense collect scan' to find one"
        )
    for attr in ("key", "device"):
        seen: set[str] = set()
        for s in sensors:
            value = getattr(s, attr)
            if value in seen:
                raise ConfigError(f"{path}: [[sensor]] {attr} {value!r} is used twice")
            seen.add(value)

    root.reject_unknown()
    return CollectorConfig(
        path=path,
        study=study,
        gateway=gateway,
        data_dir=data_dir,
        clock_source=clock_source,
        mqtt=mqtt,
        max_inflight=max_inflight,
        batch=batch,
        outbox_max_bytes=outbox_max_bytes,
        ble=ble,
        health_interval_s=health_interval_s,
        sensors=sensors,
        minimise=minimise,
        delivery=delivery,
    )


def _minimise(m: Section) -> MinimiseConfig:
    defaults = MinimiseConfig()
    config = MinimiseConfig(
        enabled=m.bool("enabled", defaults.enabled),
        window_s=m.int("window_s", defaults.window_s, lo=60, hi=3600),
        keep_raw_days=m.int("keep_raw_days", defaults.keep_raw_days, lo=1, hi=3650),
    )
    # Windows are aligned to the Unix epoch, like the server's: a length that
    # divides a day keeps them on the same clock times every day.
    if 86400 % config.window_s:
        raise m.error("window_s", f"{config.window_s} does not divide a day (86400 s)")
    m.reject_unknown()
    return config


def _sensor(s: Section, gateway: str) -> SensorConfig:
    key = _id(s, "key")
    address = s.str("address")
    if address is not None and not _ADDRESS.match(address):
        raise s.error("address", f"{address!r} is not a Bluetooth address like AA:BB:CC:DD:EE:FF")
    name_pattern = s.str("name_pattern")  # shell-style glob, case-insensitive
    service_uuid = s.str("service_uuid")
    if service_uuid is not None:
        try:
            service_uuid = uuid128(service_uuid)
        except ValueError:
            raise s.error(
                "service_uuid",
                "expected 180d or a 128-bit UUID like 0000180d-0000-1000-8000-00805f9b34fb",
            ) from None
    if sum(x is not None for x in (address, name_pattern, service_uuid)) != 1:
        raise s.error("address", "give exactly one of address, name_pattern or service_uuid")
    profile = s.str("profile") or "hrs"
    if profile != AUTO and profile not in PROFILES:
        raise s.error(
            "profile", f"{profile!r} is not one of {', '.join([AUTO, *sorted(PROFILES)])}"
        )
    sensor = SensorConfig(
        key=key,
        participant=_id(s, "participant"),
        # Not the Bluetooth address: a stable, non-hardware id for the data.
        device=_id(s, "device", f"{gateway}-{key}"),
        address=address.upper() if address else None,
        name_pattern=name_pattern,
        service_uuid=service_uuid,
        profile=profile,
    )
    s.reject_unknown()
    return sensor
