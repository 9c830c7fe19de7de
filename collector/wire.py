"""Wire contract v1 (minor versions v1, v1.1 and v1.2) between the gateway collector and processing.

This module is the single definition of what travels over MQTT. It uses the
standard library only, so the gateway needs nothing else to speak it, and
processing imports it to validate every message on receipt.

Topics
------
``wellsense/v1/<study>/<participant>/<stream>``
    Data of one participant; ``stream`` is ``hr``, ``activity``, ``status``,
    ``features`` (data minimisation mode: per-window HRV computed on the
    gateway instead of raw ``hr``/``activity``) or ``selfreport``
    (questionnaire and EMA answers from a study app on the participant's
    gateway) or ``accel`` (v1.2: accelerometer epochs reduced on the
    gateway). Names are pseudonyms, never people.
``wellsense/v1/<study>/_gateways/<gateway>/state``
    Retained ``online``/``offline`` (the offline one is the last will). After a
    command, the ``online`` state also carries ``ack`` (see collector/commands.py).
``wellsense/v1/<study>/_gateways/<gateway>/health``
    Periodic gateway health messages (stream ``health``).
``wellsense/v1/<study>/_gateways/<gateway>/cmd``
    Commands to a gateway (erasure, withdrawal): one retained ``wellsense.cmd.v1``
    message, defined in collector/commands.py.
``wellsense/v1/<study>/_gateways/<gateway>/stored``
    Written only by processing, read only by that gateway: which of the
    gateway's messages are stored in InfluxDB (or dead-lettered), as
    ``wellsense.stored.v1`` sequence ranges per (epoch, device); defined in
    collector/stored.py. The gateway deletes a message from its outbox only
    when one of these covers it.
``wellsense/v1/<study>/_deadletter`` and ``wellsense/v1/<study>/_alerts``
    Written by processing.

Message (UTF-8 JSON object, at most ``MAX_MESSAGE_BYTES``)
------------------------------------------------------------
===============  =========================================================
``schema``       ``"wellsense.v1"``, ``"wellsense.v1.1"`` (adds ``beat_ns`` and
                 ``rr_break`` to ``hr`` samples; everything else is the same) or
                 ``"wellsense.v1.2"`` (v1.1 plus the ``accel`` stream, which
                 needs it)
``stream``       must equal the topic's stream
``study``        study id (must equal the topic's)
``participant``  participant pseudonym (must equal the topic's)
``device``       pseudonymous device id (stable per sensor, not its address)
``gateway``      gateway id
``seq``          per-device sequence number, 0 <= seq < 2**63, +1 per message
``sent_ns``      gateway time the batch was closed, ns since the Unix epoch (UTC)
``clock``        ``{"synced": bool, "source": "ntp"|"rtc"|"none"|"sim",
                 "max_error_ms": float | null}``: how far sample times can be trusted
``samples``      non-empty list of samples of the stream's kind (below)
``epoch``        optional: the gateway outbox's epoch, 16-32 lowercase hex
                 digits, random per outbox file. ``(epoch, device, seq)``
                 names a message; a new outbox (new epoch) restarts ``seq``
                 at 0 without its messages being taken for repeats.
===============  =========================================================

Sample kinds (timestamps ``ts_ns`` are ns since the Unix epoch, UTC):

* ``hr``: ``{"ts_ns", "hr_bpm": int 0..300, "contact": bool|null,
  "energy_kj": int|null, "rr_ms": [float 1..65535, ...]}``. ``ts_ns`` is the
  time the notification was received. In v1 the last RR interval ends there.
  In v1.1 a sample with RR values may carry ``"beat_ns"`` (int: the time the
  gateway's beat clock, :mod:`collector.beats`, placed the beat ending the last
  RR value) and ``"rr_break"`` (bool: the first RR value does not follow the
  previous beat), both or neither; :func:`hr_beat_times_ns` places the beats.
* ``activity``: ``{"ts_ns", "cadence_spm": float|null, "speed_mps": float|null,
  "steps": int|null, "counts": int|null}``: ``steps`` and ``counts`` cover the
  interval since the previous activity sample of the same device.
* ``status``: ``{"ts_ns", "event": one of STATUS_EVENTS, "battery_pct": int|null,
  "rssi_dbm": int|null, "detail": str}``.
* ``health``: ``{"ts_ns", "uptime_s", "outbox_depth", "outbox_oldest_age_s",
  "outbox_evicted", "sensors_connected", "sensors": {key: {"last_sample_age_s",
  "battery_pct", "dropped_samples" (optional: impossible values the gateway
  dropped since it started, see docs/wire.md)}}}``.
* ``features``: one HRV window of one device, computed on the gateway with
  ``processing.features.hrv``: ``{"ts_ns" (window start, aligned to the Unix
  epoch), "window_s", "n_beats", "n_rr", "coverage", "kept_fraction", "flags",
  "quality": [flag names], <each of HRV_FEATURE_KEYS>: float|null}``; ``null``
  is an undefined (NaN) feature.
* ``selfreport``: one questionnaire or EMA answer set: ``{"ts_ns" (time
  answered), "instrument": id, "items": {item name: finite number, ...}
  (1..MAX_SELFREPORT_ITEMS), "source": "app"|"web"|"paper"}``. ``device`` is
  the app or instrument source id (its own ``seq``), never a sensor's id.
* ``accel`` (v1.2): accelerometer features of one device, reduced on the
  gateway (``collector.accel_epochs``; raw acceleration stays there). An
  epoch: ``{"ts_ns" (gateway time of its first sample), "epoch_s": 30|60,
  "n_samples", "enmo_mg", "mad_mg" (float >= 0, milli-g), "counts_x",
  "counts_y", "counts_z", "counts_vm" (float >= 0, activity counts per
  epoch), "angle_z_deg" (float, -90..90)}``; a non-wear verdict of a 15-min
  block: ``{"ts_ns" (block start), "block_s": 900, "nonwear": bool,
  "window_complete": bool}``.

Unknown fields are rejected (a typo must not silently drop data). Decoding
errors are subclasses of :class:`WireError` and name the offending field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, TypeAlias

from collector import safejson

SCHEMA: Final = "wellsense.v1"
#: Minor version 1.1: ``hr`` samples may carry ``beat_ns`` and ``rr_break``.
SCHEMA_V1_1: Final = "wellsense.v1.1"
#: Minor version 1.2: the ``accel`` stream (only under this schema); else as v1.1.
SCHEMA_V1_2: Final = "wellsense.v1.2"
SCHEMAS: Final = frozenset({SCHEMA, SCHEMA_V1_1, SCHEMA_V1_2})
#: Processing's successive-beat tolerance (``processing.features.rr_clean.GAP_TOLERANCE_MS``;
#: a unit test keeps them equal): the beat clock's slide and break bounds derive from it.
RR_GAP_TOLERANCE_MS: Final = 10.0
#: ``beat_ns`` may follow its sample's ``ts_ns`` by at most this (the beat clock
#: places a beat after its notification only to keep beat times increasing) ...
MAX_BEAT_LEAD_NS: Final = 2_000_000_000
#: ... and precede it by at most this (it re-anchors a running sum lagging more).
MAX_BEAT_LAG_NS: Final = 600_000_000_000
#: Physical bounds of an ``hr`` sample (a uint16 field can carry 65535 bpm, and
#: a strap reports RR 0 ms): outside them a value is a sensor glitch.
HR_BPM_MAX: Final = 300
RR_MS_MIN: Final = 1.0
RR_MS_MAX: Final = 65535.0
TOPIC_ROOT: Final = "wellsense/v1"
MAX_MESSAGE_BYTES: Final = 256 * 1024
MAX_SAMPLES: Final = 10_000
MAX_RR_PER_SAMPLE: Final = 512
MAX_SEQ: Final = 2**63 - 1

PARTICIPANT_STREAMS: Final = frozenset(
    {"hr", "activity", "status", "features", "selfreport", "accel"}
)
#: Streams that need a minor version: stream -> the schema that introduced it.
STREAM_SCHEMA: Final = {"accel": SCHEMA_V1_2}
#: Accelerometer epoch lengths the gateway emits (collector.accel_epochs).
ACCEL_EPOCHS_S: Final = frozenset({30, 60})
ACCEL_BLOCK_S: Final = 900
#: The HRV keys of ``processing.features.hrv.HRV_KEYS`` (a unit test keeps them
#: equal; this module cannot import NumPy code) with the plausible range of each.
HRV_FEATURE_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "mean_nn_ms": (0.0, 1e5),
    "sdnn_ms": (0.0, 1e5),
    "rmssd_ms": (0.0, 1e5),
    "pnn50_pct": (0.0, 100.0),
    "mean_hr_bpm": (0.0, 1000.0),
    "sd1_ms": (0.0, 1e5),
    "sd2_ms": (0.0, 1e5),
    "lf_ms2": (0.0, 1e10),
    "hf_ms2": (0.0, 1e10),
    "lf_hf": (0.0, 1e10),
    "dfa_alpha1": (-10.0, 10.0),
    "sampen": (0.0, 100.0),
}
HRV_FEATURE_KEYS: Final = tuple(HRV_FEATURE_BOUNDS)
STATUS_EVENTS: Final = frozenset(
    {
        "connected",
        "disconnected",
        "connect_failed",
        "not_found",
        "device_info",
        "contact_lost",
        "contact_restored",
        "battery",
        "rssi",
        "withdrawn",
    }
)
CLOCK_SOURCES: Final = frozenset({"ntp", "rtc", "none", "sim"})
#: Where a self-report was answered: the study app, a web form, or paper typed in.
SELFREPORT_SOURCES: Final = frozenset({"app", "web", "paper"})
#: Items of one self-report sample (a long questionnaire such as the SCL-90 fits).
MAX_SELFREPORT_ITEMS: Final = 128
#: Largest magnitude of a self-report answer.
MAX_SELFREPORT_VALUE: Final = 1e12
#: Self-report item names: field keys of ``self_report`` points, shared with the
#: CSV import (``processing.research.selfreport``), so both accept the same names.
SELFREPORT_ITEM_PATTERN: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# Pseudonyms and ids are path segments of MQTT topics and InfluxDB tag values:
# no wildcards, no separators, no spaces, bounded length.
_ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Plausibility bounds; anything outside is a sensor or encoding fault.
_TS_MIN_NS: Final = 946_684_800 * 10**9  # 2000-01-01
_TS_MAX_NS: Final = 4_102_444_800 * 10**9  # 2100-01-01


# --------------------------------------------------------------------------- errors


class WireError(ValueError):
    """A message that does not follow wire contract v1.

    ``field`` is a dotted path such as ``samples[3].hr_bpm`` (or ``""`` for the
    message as a whole); ``reason`` is a short machine-readable code used in
    dead-letter messages and counters.
    """

    reason = "invalid"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class MessageTooLargeError(WireError):
    reason = "too_large"


class MalformedJsonError(WireError):
    reason = "bad_json"


class UnknownSchemaError(WireError):
    reason = "unknown_schema"


class MissingFieldError(WireError):
    reason = "missing_field"


class UnknownFieldError(WireError):
    reason = "unknown_field"


class FieldTypeError(WireError):
    reason = "wrong_type"


class FieldValueError(WireError):
    reason = "bad_value"


class TopicError(WireError):
    reason = "bad_topic"


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class ClockQuality:
    synced: bool
    source: str
    max_error_ms: float | None


@dataclass(frozen=True, slots=True)
class HrSample:
    """One Heart Rate Measurement as received.

    ``beat_ns``/``rr_break`` (v1.1, both or neither, only with RR values): where
    the gateway's beat clock put the beat ending the last RR value, and whether
    the first RR value starts a new timeline. ``None``: v1 placement (the last
    RR ends at ``ts_ns``).
    """

    ts_ns: int
    hr_bpm: int
    contact: bool | None
    energy_kj: int | None
    rr_ms: tuple[float, ...]
    beat_ns: int | None = None
    rr_break: bool | None = None

    def __post_init__(self) -> None:
        if (self.beat_ns is None) != (self.rr_break is None):
            raise ValueError("beat_ns and rr_break come together")
        if self.beat_ns is not None and not self.rr_ms:
            raise ValueError("beat_ns and rr_break need RR values")


@dataclass(frozen=True, slots=True)
class ActivitySample:
    ts_ns: int
    cadence_spm: float | None
    speed_mps: float | None
    steps: int | None
    counts: int | None


@dataclass(frozen=True, slots=True)
class StatusSample:
    ts_ns: int
    event: str
    battery_pct: int | None
    rssi_dbm: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class SensorHealth:
    last_sample_age_s: float | None
    battery_pct: int | None
    #: impossible values the gateway dropped since it started (optional: older gateways)
    dropped_samples: int | None = None


@dataclass(frozen=True, slots=True)
class HealthSample:
    ts_ns: int
    uptime_s: float
    outbox_depth: int
    outbox_oldest_age_s: float | None
    outbox_evicted: int
    sensors_connected: int
    sensors: Mapping[str, SensorHealth]


@dataclass(frozen=True, slots=True)
class FeaturesSample:
    """HRV of one window of one device, computed on the gateway (data minimisation).

    ``ts_ns`` is the window start (a multiple of ``window_s`` since the Unix
    epoch); the window holds the beats with ``ts_ns <= beat < ts_ns + window_s``.
    ``n_rr`` counts the RR intervals stored for it, ``n_beats`` the NN kept
    after cleaning; ``flags`` is the quality bit set of
    ``processing.features.rr_clean.Quality`` and ``quality`` its flag names.
    A feature is ``None`` where it is undefined (NaN).
    """

    ts_ns: int
    window_s: int
    n_beats: int
    n_rr: int
    coverage: float | None
    kept_fraction: float | None
    flags: int
    quality: tuple[str, ...]
    mean_nn_ms: float | None
    sdnn_ms: float | None
    rmssd_ms: float | None
    pnn50_pct: float | None
    mean_hr_bpm: float | None
    sd1_ms: float | None
    sd2_ms: float | None
    lf_ms2: float | None
    hf_ms2: float | None
    lf_hf: float | None
    dfa_alpha1: float | None
    sampen: float | None

    def feature_values(self) -> dict[str, float | None]:
        """The HRV features by key (``HRV_FEATURE_KEYS`` order)."""
        return {key: getattr(self, key) for key in HRV_FEATURE_KEYS}


@dataclass(frozen=True, slots=True)
class SelfReportSample:
    """One questionnaire or EMA answer set of one participant.

    ``ts_ns`` is the time it was answered; ``items`` maps item names
    (:data:`SELFREPORT_ITEM_PATTERN`) to finite numbers; ``source`` is one of
    :data:`SELFREPORT_SOURCES`.
    """

    ts_ns: int
    instrument: str
    items: Mapping[str, float]
    source: str


@dataclass(frozen=True, slots=True)
class AccelEpochSample:
    """Accelerometer features of one epoch (``processing.features.accel``),
    reduced on the gateway; ``ts_ns`` is the gateway time of its first sample."""

    ts_ns: int
    epoch_s: int
    n_samples: int
    enmo_mg: float
    mad_mg: float
    counts_x: float
    counts_y: float
    counts_z: float
    counts_vm: float
    angle_z_deg: float


@dataclass(frozen=True, slots=True)
class NonwearSample:
    """Non-wear verdict of the ``block_s`` block starting at ``ts_ns``;
    ``window_complete`` is False when the stream ended before its 60-min window."""

    ts_ns: int
    block_s: int
    nonwear: bool
    window_complete: bool


Sample: TypeAlias = (
    HrSample
    | ActivitySample
    | StatusSample
    | HealthSample
    | FeaturesSample
    | SelfReportSample
    | AccelEpochSample
    | NonwearSample
)


@dataclass(frozen=True, slots=True)
class Message:
    stream: str
    study: str
    participant: str | None  # None for gateway health messages
    device: str
    gateway: str
    seq: int
    sent_ns: int
    clock: ClockQuality
    samples: tuple[Sample, ...]
    epoch: str | None = None  # the outbox's epoch (optional; see the module docstring)

    @property
    def topic(self) -> str:
        if self.stream == "health":
            return gateway_topic(self.study, self.gateway, "health")
        assert self.participant is not None
        return participant_topic(self.study, self.participant, self.stream)


@dataclass(frozen=True, slots=True)
class Topic:
    study: str
    participant: str | None
    gateway: str | None
    stream: str


# --------------------------------------------------------------------------- topics


def check_id(value: str, field: str) -> str:
    """Return ``value`` if it is a valid study/participant/device/gateway id."""
    if not isinstance(value, str):
        raise FieldTypeError(field, f"expected a string id, got {type(value).__name__}")
    if not _ID_PATTERN.match(value):
        raise FieldValueError(
            field, f"{value[:80]!r} is not an id (lowercase letters, digits, '-', '_'; max 63)"
        )
    return value


def participant_topic(study: str, participant: str, stream: str) -> str:
    check_id(study, "study")
    check_id(participant, "participant")
    if stream not in PARTICIPANT_STREAMS:
        raise FieldValueError("stream", f"unknown participant stream {stream!r}")
    return f"{TOPIC_ROOT}/{study}/{participant}/{stream}"


def gateway_topic(study: str, gateway: str, leaf: str) -> str:
    check_id(study, "study")
    check_id(gateway, "gateway")
    if leaf not in ("state", "health", "cmd", "stored"):
        raise FieldValueError("topic", f"unknown gateway topic {leaf!r}")
    return f"{TOPIC_ROOT}/{study}/_gateways/{gateway}/{leaf}"


def deadletter_topic(study: str) -> str:
    return f"{TOPIC_ROOT}/{check_id(study, 'study')}/_deadletter"


def alerts_topic(study: str) -> str:
    return f"{TOPIC_ROOT}/{check_id(study, 'study')}/_alerts"


def parse_topic(topic: str) -> Topic:
    """Split a data topic into its parts; raise :class:`TopicError` if it is not one."""
    parts = topic.split("/")
    if len(parts) == 5 and "/".join(parts[:2]) == TOPIC_ROOT:
        _, _, study, participant, stream = parts
        if (
            stream in PARTICIPANT_STREAMS
            and _ID_PATTERN.match(study)
            and _ID_PATTERN.match(participant)
        ):
            return Topic(study, participant, None, stream)
    if len(parts) == 6 and "/".join(parts[:2]) == TOPIC_ROOT and parts[3] == "_gateways":
        _, _, study, _, gateway, leaf = parts
        if leaf == "health" and _ID_PATTERN.match(study) and _ID_PATTERN.match(gateway):
            return Topic(study, None, gateway, "health")
    raise TopicError("topic", f"{topic[:200]!r} is not a wellsense/v1 data topic")


# --------------------------------------------------------------------------- beat times


def rr_beat_times_ns(ts_ns: int, rr_ms: Iterable[float]) -> list[int]:
    """Time of the beat that ends each RR interval of one ``hr`` sample.

    The last interval ends at ``ts_ns``; earlier ones are back-computed by
    subtracting the following intervals. Intervals are rounded to whole
    nanoseconds before summing, so the result is exact and the same on every
    machine: processing (stored ``rr`` times) and the gateway (windows in
    data minimisation mode) must agree to the nanosecond.
    """
    rr_ns = [round(r * 1_000_000) for r in rr_ms]
    times = [0] * len(rr_ns)
    t = ts_ns
    for i in range(len(rr_ns) - 1, -1, -1):
        times[i] = t
        t -= rr_ns[i]
    return times


def hr_beat_times_ns(sample: HrSample) -> list[int]:
    """Time of the beat ending each RR value of ``sample``, as the gateway placed it.

    The one placement every consumer uses (processing's ``rr`` points, the
    gateway's raw store in data minimisation mode, the offline CLI), so all
    agree to the nanosecond. v1.1 samples back-compute from ``beat_ns``
    (giving the beat clock's own integers); v1 samples from ``ts_ns``.
    """
    anchor = sample.ts_ns if sample.beat_ns is None else sample.beat_ns
    return rr_beat_times_ns(anchor, sample.rr_ms)


# --------------------------------------------------------------------------- decoding


def _field(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise MissingFieldError(f"{path}{key}", "is required")
    return obj[key]


def _reject_unknown(obj: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    unknown = set(obj) - allowed
    if unknown:
        name = sorted(unknown)[0]
        raise UnknownFieldError(f"{path}{name}"[:200], "is not part of wire contract v1")


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise FieldTypeError(path or "message", f"expected an object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    # bool is an int subclass in Python, but `true` is never a valid count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldTypeError(path, f"expected an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        raise FieldValueError(path, f"{value} is outside {lo}..{hi}")
    return value


def _opt_int(value: Any, path: str, lo: int, hi: int) -> int | None:
    return None if value is None else _int(value, path, lo, hi)


def _float(value: Any, path: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldTypeError(path, f"expected a number, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise FieldValueError(path, "must be finite (no NaN or infinity)")
    if not lo <= number <= hi:
        raise FieldValueError(path, f"{number} is outside {lo}..{hi}")
    return number


def _opt_float(value: Any, path: str, lo: float, hi: float) -> float | None:
    return None if value is None else _float(value, path, lo, hi)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise FieldTypeError(path, f"expected true or false, got {_kind(value)}")
    return value


def _str(value: Any, path: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise FieldTypeError(path, f"expected a string, got {_kind(value)}")
    if len(value) > max_len:
        raise FieldValueError(path, f"longer than {max_len} characters")
    return value


def _ts(value: Any, path: str) -> int:
    return _int(value, path, _TS_MIN_NS, _TS_MAX_NS)


_HR_KEYS: Final = frozenset({"ts_ns", "hr_bpm", "contact", "energy_kj", "rr_ms"})
_HR_KEYS_V1_1: Final = _HR_KEYS | {"beat_ns", "rr_break"}
_ACTIVITY_KEYS: Final = frozenset({"ts_ns", "cadence_spm", "speed_mps", "steps", "counts"})
_STATUS_KEYS: Final = frozenset({"ts_ns", "event", "battery_pct", "rssi_dbm", "detail"})
_HEALTH_KEYS: Final = frozenset(
    {
        "ts_ns",
        "uptime_s",
        "outbox_depth",
        "outbox_oldest_age_s",
        "outbox_evicted",
        "sensors_connected",
        "sensors",
    }
)
_SENSOR_HEALTH_KEYS: Final = frozenset({"last_sample_age_s", "battery_pct", "dropped_samples"})
_FEATURES_KEYS: Final = frozenset(
    {"ts_ns", "window_s", "n_beats", "n_rr", "coverage", "kept_fraction", "flags", "quality"}
) | frozenset(HRV_FEATURE_KEYS)
_SELFREPORT_KEYS: Final = frozenset({"ts_ns", "instrument", "items", "source"})
_QUALITY_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_WINDOW_BEATS: Final = 1_000_000
_MESSAGE_KEYS: Final = frozenset(
    {
        "schema",
        "stream",
        "study",
        "participant",
        "device",
        "gateway",
        "seq",
        "sent_ns",
        "clock",
        "samples",
        "epoch",
    }
)
EPOCH_PATTERN: Final = re.compile(r"^[0-9a-f]{16,32}$")
_CLOCK_KEYS: Final = frozenset({"synced", "source", "max_error_ms"})


def _hr_sample(raw: Mapping[str, Any], p: str, *, minor: bool = False) -> HrSample:
    _reject_unknown(raw, _HR_KEYS_V1_1 if minor else _HR_KEYS, p)
    contact = _field(raw, "contact", p)
    rr_raw = _field(raw, "rr_ms", p)
    if not isinstance(rr_raw, list):
        raise FieldTypeError(f"{p}rr_ms", f"expected a list, got {_kind(rr_raw)}")
    if len(rr_raw) > MAX_RR_PER_SAMPLE:
        raise FieldValueError(f"{p}rr_ms", f"more than {MAX_RR_PER_SAMPLE} intervals")
    ts_ns = _ts(_field(raw, "ts_ns", p), f"{p}ts_ns")
    rr_ms = tuple(_float(v, f"{p}rr_ms[{i}]", RR_MS_MIN, RR_MS_MAX) for i, v in enumerate(rr_raw))
    beat_ns, rr_break = _beat_fields(raw, p, ts_ns, rr_ms)
    return HrSample(
        ts_ns=ts_ns,
        hr_bpm=_int(_field(raw, "hr_bpm", p), f"{p}hr_bpm", 0, HR_BPM_MAX),
        contact=None if contact is None else _bool(contact, f"{p}contact"),
        energy_kj=_opt_int(_field(raw, "energy_kj", p), f"{p}energy_kj", 0, 65535),
        rr_ms=rr_ms,
        beat_ns=beat_ns,
        rr_break=rr_break,
    )


def _beat_fields(
    raw: Mapping[str, Any], p: str, ts_ns: int, rr_ms: tuple[float, ...]
) -> tuple[int | None, bool | None]:
    """v1.1 ``beat_ns``/``rr_break``: both or neither, only with RR values, near ``ts_ns``."""
    beat_raw, break_raw = raw.get("beat_ns"), raw.get("rr_break")
    if beat_raw is None and break_raw is None:
        return None, None
    name = "beat_ns" if beat_raw is not None else "rr_break"
    if not rr_ms:
        raise FieldValueError(f"{p}{name}", "is only allowed on a sample with RR values")
    if beat_raw is None:
        raise MissingFieldError(f"{p}beat_ns", "is required with rr_break")
    if break_raw is None:
        raise MissingFieldError(f"{p}rr_break", "is required with beat_ns")
    beat_ns = _ts(beat_raw, f"{p}beat_ns")
    if not ts_ns - MAX_BEAT_LAG_NS <= beat_ns <= ts_ns + MAX_BEAT_LEAD_NS:
        raise FieldValueError(
            f"{p}beat_ns",
            f"{(beat_ns - ts_ns) / 1e9:.3f} s from ts_ns; allowed "
            f"-{MAX_BEAT_LAG_NS // 10**9}..+{MAX_BEAT_LEAD_NS // 10**9} s",
        )
    return beat_ns, _bool(break_raw, f"{p}rr_break")


def _activity_sample(raw: Mapping[str, Any], p: str) -> ActivitySample:
    _reject_unknown(raw, _ACTIVITY_KEYS, p)
    return ActivitySample(
        ts_ns=_ts(_field(raw, "ts_ns", p), f"{p}ts_ns"),
        cadence_spm=_opt_float(_field(raw, "cadence_spm", p), f"{p}cadence_spm", 0.0, 255.0),
        speed_mps=_opt_float(_field(raw, "speed_mps", p), f"{p}speed_mps", 0.0, 256.0),
        steps=_opt_int(_field(raw, "steps", p), f"{p}steps", 0, 1_000_000),
        counts=_opt_int(_field(raw, "counts", p), f"{p}counts", 0, 10_000_000),
    )


def _status_sample(raw: Mapping[str, Any], p: str) -> StatusSample:
    _reject_unknown(raw, _STATUS_KEYS, p)
    event = _str(_field(raw, "event", p), f"{p}event", 40)
    if event not in STATUS_EVENTS:
        raise FieldValueError(f"{p}event", f"unknown status event {event!r}")
    return StatusSample(
        ts_ns=_ts(_field(raw, "ts_ns", p), f"{p}ts_ns"),
        event=event,
        battery_pct=_opt_int(_field(raw, "battery_pct", p), f"{p}battery_pct", 0, 100),
        rssi_dbm=_opt_int(_field(raw, "rssi_dbm", p), f"{p}rssi_dbm", -127, 20),
        detail=_str(_field(raw, "detail", p), f"{p}detail", 200),
    )


def _health_sample(raw: Mapping[str, Any], p: str) -> HealthSample:
    _reject_unknown(raw, _HEALTH_KEYS, p)
    sensors_raw = _object(_field(raw, "sensors", p), f"{p}sensors")
    if len(sensors_raw) > 64:
        raise FieldValueError(f"{p}sensors", "more than 64 sensors")
    sensors: dict[str, SensorHealth] = {}
    for key, value in sensors_raw.items():
        sp = f"{p}sensors.{check_id(key, f'{p}sensors')}."
        entry = _object(value, sp[:-1])
        _reject_unknown(entry, _SENSOR_HEALTH_KEYS, sp)
        sensors[key] = SensorHealth(
            last_sample_age_s=_opt_float(
                _field(entry, "last_sample_age_s", sp), f"{sp}last_sample_age_s", 0.0, 1e10
            ),
            battery_pct=_opt_int(_field(entry, "battery_pct", sp), f"{sp}battery_pct", 0, 100),
            dropped_samples=_opt_int(
                entry.get("dropped_samples"), f"{sp}dropped_samples", 0, 2**53
            ),
        )
    return HealthSample(
        ts_ns=_ts(_field(raw, "ts_ns", p), f"{p}ts_ns"),
        uptime_s=_float(_field(raw, "uptime_s", p), f"{p}uptime_s", 0.0, 1e10),
        outbox_depth=_int(_field(raw, "outbox_depth", p), f"{p}outbox_depth", 0, 2**53),
        outbox_oldest_age_s=_opt_float(
            _field(raw, "outbox_oldest_age_s", p), f"{p}outbox_oldest_age_s", 0.0, 1e10
        ),
        outbox_evicted=_int(_field(raw, "outbox_evicted", p), f"{p}outbox_evicted", 0, 2**53),
        sensors_connected=_int(_field(raw, "sensors_connected", p), f"{p}sensors_connected", 0, 64),
        sensors=sensors,
    )


def _features_sample(raw: Mapping[str, Any], p: str) -> FeaturesSample:
    _reject_unknown(raw, _FEATURES_KEYS, p)
    window_s = _int(_field(raw, "window_s", p), f"{p}window_s", 1, 86_400)
    ts_ns = _ts(_field(raw, "ts_ns", p), f"{p}ts_ns")
    if ts_ns % (window_s * 1_000_000_000):
        raise FieldValueError(f"{p}ts_ns", f"window start is not a multiple of {window_s} s")
    quality_raw = _field(raw, "quality", p)
    if not isinstance(quality_raw, list):
        raise FieldTypeError(f"{p}quality", f"expected a list, got {_kind(quality_raw)}")
    if len(quality_raw) > 32:
        raise FieldValueError(f"{p}quality", "more than 32 flags")
    quality = tuple(_str(q, f"{p}quality[{i}]", 40) for i, q in enumerate(quality_raw))
    for i, name in enumerate(quality):
        if not _QUALITY_NAME.match(name):
            raise FieldValueError(f"{p}quality[{i}]", f"{name!r} is not a flag name")
    features = {
        key: _opt_float(_field(raw, key, p), f"{p}{key}", lo, hi)
        for key, (lo, hi) in HRV_FEATURE_BOUNDS.items()
    }
    return FeaturesSample(
        ts_ns=ts_ns,
        window_s=window_s,
        n_beats=_int(_field(raw, "n_beats", p), f"{p}n_beats", 0, MAX_WINDOW_BEATS),
        n_rr=_int(_field(raw, "n_rr", p), f"{p}n_rr", 0, MAX_WINDOW_BEATS),
        coverage=_opt_float(_field(raw, "coverage", p), f"{p}coverage", 0.0, 1.0),
        kept_fraction=_opt_float(_field(raw, "kept_fraction", p), f"{p}kept_fraction", 0.0, 1.0),
        flags=_int(_field(raw, "flags", p), f"{p}flags", 0, 2**31 - 1),
        quality=quality,
        **features,
    )


def _selfreport_sample(raw: Mapping[str, Any], p: str) -> SelfReportSample:
    _reject_unknown(raw, _SELFREPORT_KEYS, p)
    source = _str(_field(raw, "source", p), f"{p}source", 10)
    if source not in SELFREPORT_SOURCES:
        raise FieldValueError(f"{p}source", f"unknown self-report source {source!r}")
    return SelfReportSample(
        ts_ns=_ts(_field(raw, "ts_ns", p), f"{p}ts_ns"),
        instrument=check_id(_field(raw, "instrument", p), f"{p}instrument"),
        items=_selfreport_items(_field(raw, "items", p), f"{p}items"),
        source=source,
    )


def _selfreport_items(value: Any, path: str) -> dict[str, float]:
    """Item name -> answer: 1..MAX_SELFREPORT_ITEMS names, each a finite number."""
    raw = _object(value, path)
    if not raw:
        raise FieldValueError(path, "must not be empty")
    if len(raw) > MAX_SELFREPORT_ITEMS:
        raise FieldValueError(path, f"more than {MAX_SELFREPORT_ITEMS} items")
    items: dict[str, float] = {}
    for name, answer in raw.items():
        if not SELFREPORT_ITEM_PATTERN.match(name):
            raise FieldValueError(
                path, f"{name[:80]!r} is not an item name (letters, digits, '_'; max 64)"
            )
        bound = MAX_SELFREPORT_VALUE
        items[name] = _float(answer, f"{path}.{name}", -bound, bound)
    return items


#: The float values of an accelerometer epoch, in the order they are stored.
ACCEL_EPOCH_VALUES: Final = (
    "enmo_mg",
    "mad_mg",
    "counts_x",
    "counts_y",
    "counts_z",
    "counts_vm",
    "angle_z_deg",
)
_ACCEL_EPOCH_KEYS: Final = frozenset({"ts_ns", "epoch_s", "n_samples", *ACCEL_EPOCH_VALUES})
_NONWEAR_KEYS: Final = frozenset({"ts_ns", "block_s", "nonwear", "window_complete"})
_MAX_COUNTS: Final = 1e7  # per epoch; far above any ActiGraph-style count
_MAX_MG: Final = 1e5


def _accel_sample(raw: Mapping[str, Any], p: str) -> AccelEpochSample | NonwearSample:
    """An epoch, or a non-wear verdict when the sample has ``block_s``."""
    ts_ns = _ts(_field(raw, "ts_ns", p), f"{p}ts_ns")
    if "block_s" in raw:
        _reject_unknown(raw, _NONWEAR_KEYS, p)
        block_s = _int(raw["block_s"], f"{p}block_s", 1, 86_400)
        if block_s != ACCEL_BLOCK_S:
            raise FieldValueError(f"{p}block_s", f"must be {ACCEL_BLOCK_S}")
        return NonwearSample(
            ts_ns=ts_ns,
            block_s=block_s,
            nonwear=_bool(_field(raw, "nonwear", p), f"{p}nonwear"),
            window_complete=_bool(_field(raw, "window_complete", p), f"{p}window_complete"),
        )
    _reject_unknown(raw, _ACCEL_EPOCH_KEYS, p)
    epoch_s = _int(_field(raw, "epoch_s", p), f"{p}epoch_s", 1, 86_400)
    if epoch_s not in ACCEL_EPOCHS_S:
        raise FieldValueError(f"{p}epoch_s", f"must be one of {sorted(ACCEL_EPOCHS_S)}")
    counts = {
        k: _float(_field(raw, k, p), f"{p}{k}", 0.0, _MAX_COUNTS)
        for k in ("counts_x", "counts_y", "counts_z", "counts_vm")
    }
    return AccelEpochSample(
        ts_ns=ts_ns,
        epoch_s=epoch_s,
        n_samples=_int(_field(raw, "n_samples", p), f"{p}n_samples", 1, epoch_s * 1000),
        enmo_mg=_float(_field(raw, "enmo_mg", p), f"{p}enmo_mg", 0.0, _MAX_MG),
        mad_mg=_float(_field(raw, "mad_mg", p), f"{p}mad_mg", 0.0, _MAX_MG),
        angle_z_deg=_float(_field(raw, "angle_z_deg", p), f"{p}angle_z_deg", -90.0, 90.0),
        **counts,
    )


def _hr_sample_v1_1(raw: Mapping[str, Any], p: str) -> HrSample:
    return _hr_sample(raw, p, minor=True)


_SAMPLE_DECODERS: dict[str, Callable[[Mapping[str, Any], str], Sample]] = {
    "hr": _hr_sample,
    "activity": _activity_sample,
    "status": _status_sample,
    "health": _health_sample,
    "features": _features_sample,
    "selfreport": _selfreport_sample,
    "accel": _accel_sample,
}


def _epoch(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not EPOCH_PATTERN.match(value):
        raise FieldValueError("epoch", "expected 16-32 lowercase hex digits")
    return value


@dataclass(frozen=True, slots=True)
class DroppedSample:
    """A sample :func:`decode_lenient` left out: its index, the error, and its JSON."""

    index: int
    error: WireError
    raw: Any


#: Per-sample violations: a value out of its range or of the wrong type inside
#: one sample. Anything else (bad JSON, envelope, unknown or missing fields) is
#: a contract mismatch and rejects the whole message.
_PER_SAMPLE_ERRORS: Final = (FieldValueError, FieldTypeError)


def decode(payload: bytes, topic: str | None = None) -> Message:
    """Decode and validate one message; if ``topic`` is given it must agree.

    Raises a :class:`WireError` subclass naming the field on any violation.
    """
    return _decode(payload, topic, None)


def decode_lenient(
    payload: bytes, topic: str | None = None
) -> tuple[Message, tuple[DroppedSample, ...]]:
    """Like :func:`decode`, but a sample with a per-sample violation is left out.

    A value out of range or of the wrong type inside one sample (a glitch:
    ``hr_bpm`` 65535, ``rr_ms`` 0) drops that sample only; the rest of the
    message is returned with the dropped samples. Raises :class:`WireError`
    for any other violation, and with the first sample's error when no
    sample is left.
    """
    dropped: list[DroppedSample] = []
    message = _decode(payload, topic, dropped)
    return message, tuple(dropped)


def _decode(payload: bytes, topic: str | None, dropped: list[DroppedSample] | None) -> Message:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError("", f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        # Numbers are range-checked field by field below (1e400 -> inf names its field).
        raw = safejson.loads(payload, max_bytes=MAX_MESSAGE_BYTES, caller_checks_numbers=True)
    except safejson.UnsafeJsonError as exc:
        if exc.kind == "number":  # NaN, Infinity, 5000 digits: a bad value, as the contract says
            raise FieldValueError("", str(exc)) from None
        raise MalformedJsonError("", str(exc)) from None
    obj = _object(raw, "")
    schema = _field(obj, "schema", "")
    if not isinstance(schema, str) or schema not in SCHEMAS:
        raise UnknownSchemaError(
            "schema",
            f"{str(schema)[:40]!r} is not {SCHEMA!r}, {SCHEMA_V1_1!r} or {SCHEMA_V1_2!r}",
        )
    _reject_unknown(obj, _MESSAGE_KEYS, "")
    stream = _str(_field(obj, "stream", ""), "stream", 20)
    decoder = _SAMPLE_DECODERS.get(stream)
    needs = STREAM_SCHEMA.get(stream)
    if decoder is None or (needs is not None and schema != needs):
        raise FieldValueError("stream", f"unknown stream {stream!r} in {schema}")
    study = check_id(_field(obj, "study", ""), "study")
    participant_raw = _field(obj, "participant", "")
    if stream == "health":
        if participant_raw is not None:
            raise FieldValueError("participant", "must be null on a gateway health message")
        participant = None
    else:
        participant = check_id(participant_raw, "participant")
    clock_raw = _object(_field(obj, "clock", ""), "clock")
    _reject_unknown(clock_raw, _CLOCK_KEYS, "clock.")
    source = _str(_field(clock_raw, "source", "clock."), "clock.source", 10)
    if source not in CLOCK_SOURCES:
        raise FieldValueError("clock.source", f"unknown clock source {source!r}")
    clock = ClockQuality(
        synced=_bool(_field(clock_raw, "synced", "clock."), "clock.synced"),
        source=source,
        max_error_ms=_opt_float(
            _field(clock_raw, "max_error_ms", "clock."), "clock.max_error_ms", 0.0, 1e12
        ),
    )
    samples_raw = _field(obj, "samples", "")
    if not isinstance(samples_raw, list):
        raise FieldTypeError("samples", f"expected a list, got {_kind(samples_raw)}")
    if not samples_raw:
        raise FieldValueError("samples", "must not be empty")
    if len(samples_raw) > MAX_SAMPLES:
        raise FieldValueError("samples", f"more than {MAX_SAMPLES} samples")
    if stream == "hr" and schema != SCHEMA:
        decoder = _hr_sample_v1_1
    if dropped is None:
        samples = tuple(
            decoder(_object(s, f"samples[{i}]"), f"samples[{i}].")
            for i, s in enumerate(samples_raw)
        )
    else:
        kept: list[Sample] = []
        for i, s in enumerate(samples_raw):
            try:
                kept.append(decoder(_object(s, f"samples[{i}]"), f"samples[{i}]."))
            except _PER_SAMPLE_ERRORS as exc:
                dropped.append(DroppedSample(i, exc, s))
        if not kept:
            raise dropped[0].error
        samples = tuple(kept)
    message = Message(
        stream=stream,
        study=study,
        participant=participant,
        device=check_id(_field(obj, "device", ""), "device"),
        gateway=check_id(_field(obj, "gateway", ""), "gateway"),
        seq=_int(_field(obj, "seq", ""), "seq", 0, MAX_SEQ),
        sent_ns=_ts(_field(obj, "sent_ns", ""), "sent_ns"),
        clock=clock,
        samples=samples,
        epoch=_epoch(obj.get("epoch")),
    )
    if topic is not None:
        expected = message.topic
        if topic != expected:
            raise TopicError(
                "topic", f"message belongs on {expected!r}, arrived on {topic[:200]!r}"
            )
    return message


# --------------------------------------------------------------------------- encoding


def _jsonable(sample: Sample) -> dict[str, Any]:
    data = asdict(sample)
    if isinstance(sample, HrSample):
        data["rr_ms"] = list(sample.rr_ms)
        for key in ("beat_ns", "rr_break"):  # v1.1 only; v1 messages stay byte-identical
            if data[key] is None:
                del data[key]
    elif isinstance(sample, HealthSample):
        for sensor in data["sensors"].values():
            if sensor["dropped_samples"] is None:  # optional: older messages stay identical
                del sensor["dropped_samples"]
    elif isinstance(sample, FeaturesSample):
        data["quality"] = list(sample.quality)
    elif isinstance(sample, SelfReportSample):
        data["items"] = dict(sample.items)
    return data


def encode(message: Message) -> bytes:
    """Serialise a message; the result always decodes back to an equal message.

    The schema is the stream's own (``accel``: v1.2), else v1.1 if a sample
    carries a v1.1 field, else v1.
    """
    minor = any(isinstance(s, HrSample) and s.beat_ns is not None for s in message.samples)
    body: dict[str, Any] = {
        "schema": STREAM_SCHEMA.get(message.stream, SCHEMA_V1_1 if minor else SCHEMA),
        "stream": message.stream,
        "study": message.study,
        "participant": message.participant,
        "device": message.device,
        "gateway": message.gateway,
        "seq": message.seq,
        "sent_ns": message.sent_ns,
        "clock": asdict(message.clock),
        "samples": [_jsonable(s) for s in message.samples],
    }
    if message.epoch is not None:
        body["epoch"] = message.epoch
    payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError("", f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}; batch smaller")
    return payload


def sample_to_json(sample: Sample) -> dict[str, Any]:
    """One sample as the JSON object it is in a message (the gateway's batch journal)."""
    return _jsonable(sample)


def sample_from_json(stream: str, raw: Any) -> Sample:
    """Decode one sample of ``stream`` as :func:`decode` would; raise :class:`WireError`.

    The newest minor version's fields are accepted (the journal holds what this
    gateway itself encoded, v1.1 beat fields included).
    """
    decoder = _hr_sample_v1_1 if stream == "hr" else _SAMPLE_DECODERS.get(stream)
    if decoder is None:
        raise FieldValueError("stream", f"unknown stream {stream!r}")
    return decoder(_object(raw, "sample"), "")
