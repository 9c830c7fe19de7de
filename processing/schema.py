"""The InfluxDB 2.x storage schema, as line protocol (nanosecond precision).

Every point is written with an exact timestamp taken from the data (never the
time of writing), and tags are drawn only from bounded sets (study,
participant, device, gateway, status event, window length), so writing the
same message again replaces the same points: redelivery is idempotent.

The table in ``docs/storage.md`` documents this module; the unit tests check
that they agree (:data:`MEASUREMENTS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from collector import wire

#: measurement -> (tags, fields) as documented in docs/storage.md.
MEASUREMENTS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "hr": (("study", "participant", "device"), ("hr_bpm", "contact", "energy_kj", "seq")),
    "rr": (("study", "participant", "device"), ("rr_ms", "seq")),
    "activity": (
        ("study", "participant", "device"),
        ("cadence_spm", "speed_mps", "steps", "counts", "seq"),
    ),
    "device_status": (
        ("study", "participant", "device", "event"),
        ("battery_pct", "rssi_dbm", "detail", "seq"),
    ),
    "gateway_health": (
        ("study", "gateway"),
        (
            "uptime_s",
            "outbox_depth",
            "outbox_oldest_age_s",
            "outbox_evicted",
            "sensors_connected",
            "seq",
        ),
    ),
    "gateway_sensor": (
        ("study", "gateway", "sensor"),
        ("last_sample_age_s", "battery_pct", "dropped_samples"),
    ),
    "gateway_state": (("study", "gateway"), ("state",)),
    "clock_step": (("study", "participant", "device"), ("until_ns", "back_ms", "seq")),
    "clock": (
        ("study", "participant", "device", "stream"),
        ("synced", "source", "max_error_ms", "seq"),
    ),
    "hrv_window": (
        ("study", "participant", "window", "source", "device"),
        (
            "<hrv features>",
            "n_beats",
            "n_rr",
            "coverage",
            "kept_fraction",
            "flags",
            "quality",
            "seq",
        ),
    ),
    "daily": (("study", "participant", "tz"), ("<daily features>",)),
    "wellsense_self": (("study", "worker"), ("<counters>",)),
    "alert": (
        ("study", "participant", "device", "gateway", "rule", "severity"),
        ("state", "message", "value"),
    ),
    "alert_delivery": (
        ("study", "participant", "device", "gateway", "rule", "recipient", "target"),
        ("state", "status", "attempts", "error"),
    ),
    "self_report": (("study", "participant", "instrument"), ("<items>",)),
    "accel_epoch": (
        ("study", "participant", "device", "epoch"),
        (*wire.ACCEL_EPOCH_VALUES, "n_samples", "seq"),
    ),
    "accel_nonwear": (
        ("study", "participant", "device"),
        ("nonwear", "window_complete", "block_s", "seq"),
    ),
}

FieldValue = int | float | bool | str


# --------------------------------------------------------------------------- escaping


def _escape_key(value: str) -> str:
    """Tag keys, tag values and field keys: escape backslash, comma, '=' and space."""
    return (
        value.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", "\\n")
    )


def _escape_measurement(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def _escape_string(value: str) -> str:
    # Line protocol string fields: only '"' and '\' are special; newlines would
    # end the line, so they are replaced (status details are single-line text).
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def format_value(value: FieldValue) -> str | None:
    """One field value in line protocol; ``None`` for a value that cannot be stored (NaN)."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return _escape_string(value)


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue | None],
    ts_ns: int,
) -> str | None:
    """A line of line protocol; ``None`` fields (and NaN) are left out.

    Tags are sorted by key (what InfluxDB does anyway, and it makes the text
    deterministic). Returns ``None`` if no field is left.
    """
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = format_value(value)
        if text is not None:
            parts.append(f"{_escape_key(key)}={text}")
    if not parts:
        return None
    tag_text = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if v)
    return f"{_escape_measurement(measurement)}{tag_text} {','.join(parts)} {ts_ns}"


# --------------------------------------------------------------------------- raw data


#: Beat times of an ``hr`` sample's RR intervals; one definition, shared with the
#: gateway's data minimisation mode and the offline CLI (see
#: :func:`collector.wire.hr_beat_times_ns`: ``beat_ns`` of v1.1 samples, else ``ts_ns``).
hr_beat_times_ns = wire.hr_beat_times_ns
rr_beat_times_ns = wire.rr_beat_times_ns


def message_lines(message: wire.Message) -> list[str]:
    """All points of one validated wire message."""
    return list(_message_lines(message))


def _message_lines(m: wire.Message) -> Iterator[str]:
    # Hot path (every sample): build the tag text once per message.
    study, seq = m.study, m.seq
    if m.stream == "health":
        for s in m.samples:
            assert isinstance(s, wire.HealthSample)
            text = line(
                "gateway_health",
                {"study": study, "gateway": m.gateway},
                {
                    "uptime_s": s.uptime_s,
                    "outbox_depth": s.outbox_depth,
                    "outbox_oldest_age_s": s.outbox_oldest_age_s,
                    "outbox_evicted": s.outbox_evicted,
                    "sensors_connected": s.sensors_connected,
                    "seq": seq,
                },
                s.ts_ns,
            )
            assert text is not None
            yield text
            for key, sensor in sorted(s.sensors.items()):
                text = line(
                    "gateway_sensor",
                    {"study": study, "gateway": m.gateway, "sensor": key},
                    {
                        "last_sample_age_s": sensor.last_sample_age_s,
                        "battery_pct": sensor.battery_pct,
                        "dropped_samples": sensor.dropped_samples,
                    },
                    s.ts_ns,
                )
                if text is not None:
                    yield text
        return
    assert m.participant is not None
    if m.stream in CLOCK_STREAMS:
        yield clock_line(m)
    # ids are validated by the wire contract ([a-z0-9_-]), so they need no escaping.
    tags = f"device={m.device},participant={m.participant},study={study}"
    if m.stream == "hr":
        for s in m.samples:
            assert isinstance(s, wire.HrSample)
            fields = f"hr_bpm={s.hr_bpm}i"
            if s.contact is not None:
                fields += ",contact=true" if s.contact else ",contact=false"
            if s.energy_kj is not None:
                fields += f",energy_kj={s.energy_kj}i"
            yield f"hr,{tags} {fields},seq={seq}i {s.ts_ns}"
            if s.rr_ms:
                for t, rr in zip(hr_beat_times_ns(s), s.rr_ms, strict=True):
                    yield f"rr,{tags} rr_ms={rr!r},seq={seq}i {t}"
    elif m.stream == "activity":
        for s in m.samples:
            assert isinstance(s, wire.ActivitySample)
            text = line(
                "activity",
                {"study": study, "participant": m.participant, "device": m.device},
                {
                    "cadence_spm": s.cadence_spm,
                    "speed_mps": s.speed_mps,
                    "steps": s.steps,
                    "counts": s.counts,
                    "seq": seq,
                },
                s.ts_ns,
            )
            assert text is not None
            yield text
    elif m.stream == "status":
        for s in m.samples:
            assert isinstance(s, wire.StatusSample)
            text = line(
                "device_status",
                {
                    "study": study,
                    "participant": m.participant,
                    "device": m.device,
                    "event": s.event,
                },
                {
                    "battery_pct": s.battery_pct,
                    "rssi_dbm": s.rssi_dbm,
                    "detail": s.detail,
                    "seq": seq,
                },
                s.ts_ns,
            )
            assert text is not None
            yield text
    elif m.stream == "features":
        yield from _features_lines(m)
    elif m.stream == "selfreport":
        yield from self_report_lines(_wire_answers(m), study)
    elif m.stream == "accel":
        yield from _accel_lines(m, tags)
    else:  # pragma: no cover - the wire contract knows no other stream
        raise ValueError(f"unknown stream {m.stream!r}")


#: Streams whose sample times come from the gateway's clock: their messages'
#: clock quality is stored (a ``clock`` point per message).
CLOCK_STREAMS: Final = frozenset({"hr", "activity", "status", "features"})


def clock_line(m: wire.Message) -> str:
    """The ``clock`` point of a message: how far its sample times can be trusted.

    At ``sent_ns`` (when the gateway closed the batch and read its clock
    state), so a repeat of the message replaces the same point.
    """
    assert m.participant is not None
    text = line(
        "clock",
        {"study": m.study, "participant": m.participant, "device": m.device, "stream": m.stream},
        {
            "synced": m.clock.synced,
            "source": m.clock.source,
            "max_error_ms": m.clock.max_error_ms,
            "seq": m.seq,
        },
        m.sent_ns,
    )
    assert text is not None
    return text


def clock_step_line(m: wire.Message, start_ns: int, until_ns: int) -> str:
    """A ``clock_step`` point: beats of ``[start_ns, until_ns]`` belong to two timelines."""
    assert m.participant is not None
    text = line(
        "clock_step",
        {"study": m.study, "participant": m.participant, "device": m.device},
        {"until_ns": until_ns, "back_ms": (until_ns - start_ns) / 1e6, "seq": m.seq},
        start_ns,
    )
    assert text is not None
    return text


def _accel_lines(m: wire.Message, tags: str) -> Iterator[str]:
    """``accel_epoch`` points (tag ``epoch``: "30" or "60", so both lengths of
    one start time are separate series) and ``accel_nonwear`` points."""
    for s in m.samples:
        if isinstance(s, wire.NonwearSample):
            yield (
                f"accel_nonwear,{tags} nonwear={'true' if s.nonwear else 'false'},"
                f"window_complete={'true' if s.window_complete else 'false'},"
                f"block_s={s.block_s}i,seq={m.seq}i {s.ts_ns}"
            )
            continue
        assert isinstance(s, wire.AccelEpochSample)
        fields = ",".join(f"{key}={float(getattr(s, key))!r}" for key in wire.ACCEL_EPOCH_VALUES)
        yield (
            f"accel_epoch,device={m.device},epoch={s.epoch_s},participant={m.participant},"
            f"study={m.study} {fields},n_samples={s.n_samples}i,seq={m.seq}i {s.ts_ns}"
        )


#: ``source`` tag of ``hrv_window`` points computed on a gateway (data
#: minimisation). Server-computed windows carry no ``source`` tag, so the two
#: are separate series and neither computation can overwrite the other.
GATEWAY_SOURCE: Final = "gateway"


def _features_lines(m: wire.Message) -> Iterator[str]:
    """``hrv_window`` points of a gateway's ``features`` message (one per window)."""
    assert m.participant is not None
    for s in m.samples:
        assert isinstance(s, wire.FeaturesSample)
        fields: dict[str, FieldValue | None] = dict(s.feature_values())
        fields.update(
            n_beats=s.n_beats,
            n_rr=s.n_rr,
            coverage=s.coverage,
            kept_fraction=s.kept_fraction,
            flags=s.flags,
            quality=",".join(s.quality),
            seq=m.seq,
        )
        tags = {
            "study": m.study,
            "participant": m.participant,
            "window": f"{s.window_s}s",
            "source": GATEWAY_SOURCE,
            "device": m.device,
        }
        text = line("hrv_window", tags, fields, s.ts_ns)
        assert text is not None  # n_beats and seq are always there
        yield text


def gateway_state_line(study: str, gateway: str, state: str, ts_ns: int) -> str:
    text = line("gateway_state", {"study": study, "gateway": gateway}, {"state": state}, ts_ns)
    assert text is not None
    return text


# --------------------------------------------------------------------------- self-reports


@dataclass(frozen=True, slots=True)
class SelfReportAnswer:
    """One answered item, from a CSV import or a wire ``selfreport`` message."""

    participant: str
    ts_ns: int
    instrument: str
    item: str
    value: float


def self_report_lines(answers: Iterable[SelfReportAnswer], study: str) -> list[str]:
    """``self_report`` points: one per (participant, instrument, time); later answers win.

    The one definition of self-report storage, used by the CSV import
    (``processing.research.selfreport.to_lines``) and by the ``selfreport``
    wire stream, so the same answers give the same points whichever way they
    came, and sending them again overwrites them (idempotent). Values are
    floats, so an item never changes field type.
    """
    points: dict[tuple[str, str, int], dict[str, FieldValue | None]] = {}
    for a in answers:
        points.setdefault((a.participant, a.instrument, a.ts_ns), {})[a.item] = float(a.value)
    out = []
    for (participant, instrument, ts_ns), fields in sorted(points.items()):
        tags = {"study": study, "participant": participant, "instrument": instrument}
        text = line("self_report", tags, dict(sorted(fields.items())), ts_ns)
        if text:
            out.append(text)
    return out


def _wire_answers(m: wire.Message) -> Iterator[SelfReportAnswer]:
    """The answered items of a ``selfreport`` message, in message order."""
    assert m.participant is not None
    for s in m.samples:
        assert isinstance(s, wire.SelfReportSample)
        for item, value in s.items.items():
            yield SelfReportAnswer(m.participant, s.ts_ns, s.instrument, item, value)
