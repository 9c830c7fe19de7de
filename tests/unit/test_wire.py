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
    assert message.stream == name.partition("-")[0]  # hr-v1.1 is an hr message
    assert wire.decode(wire.encode(message), topic=message.topic) == message


def test_golden_hr_values() -> None:
    message = wire.decode(VALID["hr"], topic="wellsense/v1/pilot/p-7f3a9c/hr")
    first = message.samples[0]
    assert isinstance(first, wire.HrSample)
    assert (message.participant, message.device, message.seq) == ("p-7f3a9c", "d-1a2b3c", 42)
    assert first.rr_ms == (968.75, 984.375)
    assert message.clock == wire.ClockQuality(synced=True, source="ntp", max_error_ms=12.5)


def test_golden_selfreport_values() -> None:
    topic = "wellsense/v1/pilot/p-7f3a9c/selfreport"
    message = wire.decode(VALID["selfreport"], topic=topic)
    ids = (message.participant, message.device, message.gateway)
    assert ids == ("p-7f3a9c", "gw-01-ema", "gw-01")
    diary, phq9, mood = message.samples
    assert diary == wire.SelfReportSample(
        ts_ns=1_764_142_200_000_000_000,
        instrument="sleep_diary",
        items={"sleep_hours": 7.5},
        source="app",
    )
    assert isinstance(phq9, wire.SelfReportSample) and isinstance(mood, wire.SelfReportSample)
    assert list(phq9.items) == [f"q{i}" for i in range(1, 10)]
    assert all(type(v) is float for v in phq9.items.values())  # JSON 2 and 2.0 are one answer
    assert (mood.items, mood.source) == ({"mood": 6.0, "energy": 4.5}, "paper")
    assert wire.participant_topic("pilot", "p-7f3a9c", "selfreport") == topic
    assert wire.parse_topic(topic) == wire.Topic("pilot", "p-7f3a9c", None, "selfreport")


def _selfreport_with_items(items: object) -> bytes:
    body = json.loads(VALID["selfreport"])
    body["samples"] = [dict(body["samples"][0], items=items)]
    return json.dumps(body).encode()


def test_selfreport_item_bounds() -> None:
    most = {f"i{k}": float(k) for k in range(wire.MAX_SELFREPORT_ITEMS)}
    (sample,) = wire.decode(_selfreport_with_items(most)).samples
    assert isinstance(sample, wire.SelfReportSample) and len(sample.items) == len(most)
    edge = {"a" * 64: -wire.MAX_SELFREPORT_VALUE, "_x9": 0, "B": 1e-300}
    (sample,) = wire.decode(_selfreport_with_items(edge)).samples
    assert isinstance(sample, wire.SelfReportSample) and sample.items["B"] == 1e-300
    for bad, field in (
        ({"a" * 65: 1}, "samples[0].items"),
        ({"9lives": 1}, "samples[0].items"),
        ({"q-1": 1}, "samples[0].items"),
        ({"q1": [1]}, "samples[0].items.q1"),
        ({"q1": 1e300}, "samples[0].items.q1"),
    ):
        with pytest.raises(wire.WireError) as info:
            wire.decode(_selfreport_with_items(bad))
        assert info.value.field == field, bad


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


def test_v1_1_hr_samples_carry_where_the_gateway_placed_the_beats() -> None:
    message = wire.decode(VALID["hr-v1.1"], topic="wellsense/v1/pilot/p-7f3a9c/hr")
    first, second, empty = message.samples
    assert isinstance(first, wire.HrSample) and isinstance(second, wire.HrSample)
    assert (first.beat_ns, first.rr_break) == (1_764_115_297_612_000_000, True)
    assert (second.rr_break, empty.beat_ns, empty.rr_break) == (False, None, None)  # type: ignore[union-attr]
    # beats are back-computed from beat_ns (not ts_ns), in whole nanoseconds
    assert wire.hr_beat_times_ns(first) == [1_764_115_296_627_625_000, 1_764_115_297_612_000_000]
    assert wire.hr_beat_times_ns(second) == [1_764_115_298_563_171_875]
    assert json.loads(wire.encode(message))["schema"] == "wellsense.v1.1"


def test_v1_messages_stay_v1_on_the_wire() -> None:
    message = wire.decode(VALID["hr"])
    payload = wire.encode(message)
    assert json.loads(payload)["schema"] == "wellsense.v1"
    assert b"beat_ns" not in payload and b"rr_break" not in payload
    first = message.samples[0]
    assert isinstance(first, wire.HrSample)
    assert wire.hr_beat_times_ns(first) == wire.rr_beat_times_ns(first.ts_ns, first.rr_ms)


def test_hr_sample_beat_fields_come_together_and_need_rr() -> None:
    with pytest.raises(ValueError, match="together"):
        wire.HrSample(1, 60, None, None, (800.0,), beat_ns=1)
    with pytest.raises(ValueError, match="need RR"):
        wire.HrSample(1, 60, None, None, (), beat_ns=1, rr_break=False)
