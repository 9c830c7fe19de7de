"""Where alerts go: MQTT topics and payloads, InfluxDB line protocol.

Topics (checked against :mod:`collector.wire`):

``wellsense/v1/<study>/_alerts``
    every event (firing or resolved), QoS 1, not retained; the topic of
    :func:`collector.wire.alerts_topic`.
``wellsense/v1/<study>/_alerts/<participant>/state``
    retained, QoS 1: the participant's open alerts (device alerts included);
    an empty ``alerts`` object means nothing is open.
``wellsense/v1/<study>/_alerts/_gateways/<gateway>/state``
    retained, QoS 1: the same for a gateway.

The retained topics end in ``/state`` on purpose: the processing service
subscribes to ``wellsense/v1/<study>/+/+`` for participant data, which
``_alerts/<participant>`` would match (it would dead-letter every retained
alert state on each reconnect). Three levels below the study match neither
that filter nor ``_gateways/+/health|state``.

InfluxDB: measurement ``alert`` (docs/storage.md), one point per event at the
event's time; tags ``study``, ``participant`` (participant and device
scopes), ``device`` (device scope), ``gateway`` (gateway scope), ``rule``,
``severity``; fields ``state`` (``firing``/``resolved``), ``value`` (float,
absent when unknown), ``message``.
"""

from __future__ import annotations

import json
from typing import Any

from collector import wire
from processing import schema
from processing.rules.engine import AlertEvent, Subject


def state_topic(study: str, owner: Subject) -> str:
    """The retained alert-state topic of a participant or a gateway."""
    base = wire.alerts_topic(study)
    if owner.scope == "gateway":
        return f"{base}/_gateways/{wire.check_id(owner.gateway, 'gateway')}/state"
    return f"{base}/{wire.check_id(owner.participant, 'participant')}/state"


def event_payload(event: AlertEvent) -> bytes:
    return json.dumps(event.to_json(), separators=(",", ":"), allow_nan=False).encode()


def state_payload(state: dict[str, Any]) -> bytes:
    return json.dumps(state, separators=(",", ":"), allow_nan=False).encode()


def alert_line(event: AlertEvent) -> str:
    """The event as one line of line protocol (measurement ``alert``)."""
    s = event.subject
    tags = {
        "study": event.study,
        "participant": s.participant,
        "device": s.device,
        "gateway": s.gateway,
        "rule": event.rule,
        "severity": event.severity,
    }
    fields: dict[str, schema.FieldValue | None] = {
        "state": event.state,
        "value": event.value,
        "message": event.message[:500],
    }
    text = schema.line("alert", tags, fields, event.ts_ns)
    assert text is not None  # state is always there
    return text
