"""Wire contract v1: golden messages decode, malformed ones fail naming the field."""

from __future__ import annotations

import json

import pytest

from collector import wire
from tests.golden import invalid_cases, valid_messages

VALID = valid_messages()
INVALID = invalid_cases()


@pytest.mark.parametrize("name", sorted(VALID))
def test_golden_message_decodes_and_round_trips(name: str) -> None:
    message = wire.decode(VALID[name])
    assert message.stream == name
    assert wire.decode(wire.encode(message), topic=message.topic) == message


def test_golden_hr_values() -> None:
    message = wire.decode(VALID["hr"], topic="wellsense/v1/pilot/p-7f3a9c/hr")
    first = message.samples[0]
    assert isinstance(first, wire.HrSample)
    assert (message.participant, message.device, message.seq) == ("p-7f3a9c", "d-1a2b3c", 42)
    assert first.rr_ms == (968.75, 984.375)
    assert message.clock == wire.ClockQuality(synced=True, source="ntp", max_error_ms=12.5)


def test_health_message_has_gateway_topic() -> None:
    message = wire.decode(VALID["health"])
    assert message.participant is None
    assert message.topic == "wellsense/v1/pilot/_gateways/gw-01/health"


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_malformed_message_raises_specific_error_naming_field(case: dict[str, str]) -> None:
    error_class = getattr(wire, case["error"])
    with pytest.raises(error_class) as info:
        wire.decode(case["payload"].encode(), topic=case.get("topic"))
    assert info.value.field == case["field"]
    assert isinstance(info.value, wire.WireError)
    assert info.value.reason != "invalid"


def test_every_error_kind_is_covered_by_a_golden_case() -> None:
    kinds = {c["error"] for c in INVALID} | {"MessageTooLargeError"}
    subclasses = {cls.__name__ for cls in wire.WireError.__subclasses__()}
    assert subclasses <= kinds


def test_oversized_message_is_rejected_before_parsing() -> None:
    payload = b" " * (wire.MAX_MESSAGE_BYTES + 1)
    with pytest.raises(wire.MessageTooLargeError):
        wire.decode(payload)


def test_deeply_nested_json_is_a_wire_error() -> None:
    with pytest.raises(wire.WireError):
        wire.decode(b"[" * 100_000 + b"]" * 100_000)


def test_non_utf8_is_malformed() -> None:
    with pytest.raises(wire.MalformedJsonError):
        wire.decode(b"\xff\xfe{}")


def test_topics() -> None:
    assert wire.participant_topic("pilot", "p-1", "hr") == "wellsense/v1/pilot/p-1/hr"
    assert wire.parse_topic("wellsense/v1/pilot/p-1/hr") == wire.Topic("pilot", "p-1", None, "hr")
    assert wire.parse_topic("wellsense/v1/pilot/_gateways/gw-1/health").gateway == "gw-1"
    for bad in (
        "wellsense/v1/pilot/p-1",
        "wellsense/v2/pilot/p-1/hr",
        "wellsense/v1/Pilot/p/hr",
        "wellsense/v1/pilot/p-1/ecg",
    ):
        with pytest.raises(wire.TopicError):
            wire.parse_topic(bad)
    with pytest.raises(wire.FieldValueError):
        wire.participant_topic("pilot", "+", "hr")


def test_encode_refuses_oversized_batches() -> None:
    message = wire.decode(VALID["hr"])
    big = message.samples * 3000
    with pytest.raises(wire.MessageTooLargeError):
        wire.encode(
            wire.Message(**{**{f: getattr(message, f) for f in message.__slots__}, "samples": big})
        )


def test_encoded_messages_are_compact_json() -> None:
    payload = wire.encode(wire.decode(VALID["activity"]))
    assert b" " not in payload
    assert json.loads(payload)["schema"] == "wellsense.v1"
