"""Per-sample validation (wire.decode_lenient) and the durable dead-letter store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector import wire
from processing.deadletterstore import KIND_MESSAGE, DeadLetterStore
from tests.golden import valid_messages


def _hr_with(**overrides: object) -> bytes:
    body = json.loads(valid_messages()["hr"])
    for index, values in overrides.items():
        body["samples"][int(index[1:])].update(values)
    return json.dumps(body).encode()


def test_a_glitch_sample_is_left_out_and_the_rest_kept() -> None:
    payload = _hr_with(s1={"hr_bpm": 65535})
    with pytest.raises(wire.FieldValueError):
        wire.decode(payload)  # the strict decoder still rejects the message
    message, dropped = wire.decode_lenient(payload)
    assert len(message.samples) == len(wire.decode(valid_messages()["hr"]).samples) - 1
    (d,) = dropped
    assert d.index == 1 and d.error.field == "samples[1].hr_bpm" and d.raw["hr_bpm"] == 65535


@pytest.mark.parametrize(
    ("values", "field"),
    [({"rr_ms": [0.0]}, "samples[0].rr_ms[0]"), ({"hr_bpm": "62"}, "samples[0].hr_bpm")],
)
def test_out_of_range_and_wrong_type_values_are_per_sample(
    values: dict[str, object], field: str
) -> None:
    _, dropped = wire.decode_lenient(_hr_with(s0=values))
    assert [d.error.field for d in dropped] == [field]


def test_contract_mismatches_still_reject_the_whole_message() -> None:
    with pytest.raises(wire.UnknownFieldError):
        wire.decode_lenient(_hr_with(s0={"hr_bmp": 60}))  # a typo is not a glitch
    body = json.loads(_hr_with())
    body["seq"] = -1
    with pytest.raises(wire.FieldValueError):
        wire.decode_lenient(json.dumps(body).encode())


def test_a_message_with_no_valid_sample_is_rejected_whole() -> None:
    body = json.loads(valid_messages()["hr"])
    for s in body["samples"]:
        s["hr_bpm"] = 999
    with pytest.raises(wire.FieldValueError):
        wire.decode_lenient(json.dumps(body).encode())


def _add(store: DeadLetterStore, payload: bytes, topic: str = "wellsense/v1/pilot/p-1/hr") -> int:
    return store.add(
        received_ns=1,
        kind=KIND_MESSAGE,
        reason="bad_value",
        field="samples[0].hr_bpm",
        error="too high",
        topic=topic,
        worker="w1",
        payload=payload,
    )


def test_the_store_keeps_the_whole_payload_and_its_envelope(tmp_path: Path) -> None:
    big = _hr_with(s0={"hr_bpm": 999})
    payload = big[:-1] + b" " * (200_000 - len(big)) + b"}"  # far beyond the old 4 KiB
    with DeadLetterStore(tmp_path / "dl" / "dead.sqlite") as store:
        row_id = _add(store, payload)
        letter = store.get(row_id)
    assert letter is not None and letter.payload == payload
    assert (letter.participant, letter.gateway, letter.device) == ("p-1", "gw-01", "d-1a2b3c")
    assert letter.seq == 42 and letter.payload_bytes == len(payload)
    assert (tmp_path / "dl" / "dead.sqlite").stat().st_mode & 0o077 == 0


def test_the_store_is_bounded_and_counts_what_it_evicts(tmp_path: Path) -> None:
    with DeadLetterStore(tmp_path / "dead.sqlite", max_rows=3, max_bytes=10_000) as store:
        ids = [_add(store, b"x" * 100) for _ in range(5)]
        assert [d.id for d in store.list()] == ids[2:]
        assert store.evicted == 2
        _add(store, b"y" * 9_950)  # over max_bytes: everything older goes
        assert [d.payload_bytes for d in store.list()] == [9_950]
        assert store.evicted == 5
    with DeadLetterStore(tmp_path / "dead.sqlite", max_rows=3, max_bytes=10_000) as again:
        assert again.evicted == 5  # kept in the file, across restarts


def test_list_filters_and_erasure(tmp_path: Path) -> None:
    with DeadLetterStore(tmp_path / "dead.sqlite") as store:
        _add(store, b"{}", "wellsense/v1/pilot/p-1/hr")
        _add(store, b"{}", "wellsense/v1/pilot/p-2/hr")
        _add(store, b"[", "garbage/topic")
        assert [d.participant for d in store.list(participant="p-2")] == ["p-2"]
        assert store.list()[2].participant is None
        assert store.delete_participant("p-1") == 1
        assert [d.participant for d in store.list()] == ["p-2", None]
