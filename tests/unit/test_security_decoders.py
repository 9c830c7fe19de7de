"""Nothing in a message can stop a service: every decoder of untrusted bytes, fuzzed.

Each decoder of network input (data messages of every stream, gateway state,
gateway commands, command acknowledgements read by `participant erase`,
InfluxDB error bodies) must raise only the project's own error type, whatever
the bytes: deep nesting, huge numbers, NaN, bad UTF-8, wrong types.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import safejson, wire
from collector.commands import CommandError, decode_command
from processing.admin.mqttadmin import parse_ack
from processing.service import decode_gateway_state
from processing.writer import _server_message

STUDY = "pilot"
STATE_TOPIC = f"wellsense/v1/{STUDY}/_gateways/gw-1/state"
DATA_TOPICS = [wire.participant_topic(STUDY, "p-1", s) for s in sorted(wire.PARTICIPANT_STREAMS)]
TOPICS = [*DATA_TOPICS, wire.gateway_topic(STUDY, "gw-1", "health")]

HOSTILE = [
    b"[" * 100_000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"state": "online", "ts_ns": ' + b"9" * 5000 + b"}",
    b'{"state": "online", "ts_ns": 1e999}',
    b'{"state": "online", "ts_ns": NaN}',
    b'{"state": "online", "ts_ns": -Infinity}',
    b'{"ack": {"id": "c-1"}, "x": ' + b"1" * 4400 + b"}",
    b"\xff\xfe\x00{}",
    b'"\\ud800"',
    b'{"schema": "wellsense.v1", "samples": [' + b"[" * 5000 + b"]}",
    b'"' + b"[" * 10_000,
    b'"' + b"\\" * 10_001,
    b"",
    b"null",
    b"[]",
    b'{"ack": []}',
    b" " * (300 * 1024),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["online", "offline", STUDY, "p-1", "wellsense.v1", "hr"]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)
_KEYS = ["schema", "stream", "study", "participant", "device", "gateway", "seq", "sent_ns"]
message_like = st.fixed_dictionaries(
    {},
    optional={k: json_values for k in [*_KEYS, "clock", "samples", "state", "ts_ns", "ack"]},
)


def _encode(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


payloads = (
    st.binary(max_size=300)
    | json_values.map(_encode)
    | message_like.map(_encode)
    | st.sampled_from(HOSTILE)
    | st.tuples(st.sampled_from(HOSTILE), st.binary(max_size=20)).map(lambda t: t[0][:500] + t[1])
)


def _data(topic: str, payload: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        wire.decode(payload, topic=topic)


def _state(payload: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        decode_gateway_state(STATE_TOPIC, payload)


def _command(payload: bytes) -> None:
    with contextlib.suppress(CommandError):
        decode_command(payload, study=STUDY, gateway="gw-1")


@pytest.mark.parametrize("payload", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_payloads_raise_only_project_errors(payload: bytes) -> None:
    for topic in TOPICS:
        _data(topic, payload)
    _state(payload)
    _command(payload)
    assert parse_ack(payload) is None
    assert isinstance(_server_message(payload), str)


def test_the_known_killers_are_named_errors() -> None:
    with pytest.raises(wire.MalformedJsonError, match="bytes >"):
        decode_gateway_state(STATE_TOPIC, b"[" * 100_000)
    with pytest.raises(wire.MalformedJsonError, match="nested deeper"):
        decode_gateway_state(STATE_TOPIC, b"[" * 60_000)
    with pytest.raises(wire.MalformedJsonError, match="nested deeper"):
        wire.decode(b"[" * 100_000)
    with pytest.raises(wire.FieldValueError):
        wire.decode(b'{"schema": "wellsense.v1", "seq": ' + b"9" * 5000 + b"}")
    with pytest.raises(wire.WireError):
        wire.decode(b'{"schema": 1e999}')
    with pytest.raises(safejson.UnsafeJsonError, match="out of range"):
        safejson.loads(b"[1e999]", max_bytes=100)
    with pytest.raises(CommandError, match="nested deeper"):
        decode_command(b"[" * 60_000, study=STUDY, gateway="gw-1")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), payload=payloads)
def test_fuzz_every_subscribed_topic(topic: str, payload: bytes) -> None:
    _data(topic, payload)
    _state(payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads)
def test_fuzz_commands_acks_and_error_bodies(payload: bytes) -> None:
    _command(payload)
    ack = parse_ack(payload)
    assert ack is None or isinstance(ack, dict)
    assert isinstance(_server_message(payload), str)


@settings(max_examples=300, deadline=None)
@given(payload=payloads, depth=st.integers(1, 40))
def test_safe_loads_raises_only_its_own_error(payload: bytes, depth: int) -> None:
    with contextlib.suppress(safejson.UnsafeJsonError):
        safejson.loads(payload, max_bytes=64 * 1024, max_depth=depth)


@given(depth=st.integers(0, 40))
def test_nesting_is_measured_exactly(depth: int) -> None:
    text = b"[" * depth + b'"]]]{{"' + b"]" * depth
    assert safejson.nesting_ok(text, 20) == (depth <= 20)
    assert safejson.loads(text, max_bytes=1000, max_depth=40) is not None


def test_valid_messages_still_decode() -> None:
    body = b'{"a": [1, 2.5, "x\\"]["], "b": {"c": null}}'
    assert safejson.loads(body, max_bytes=100) == {"a": [1, 2.5, 'x"]['], "b": {"c": None}}
