"""Storage confirmations: the contract (collector.stored) and processing's builder."""

from __future__ import annotations

import json

import pytest

from collector import stored, wire
from processing import confirm

EPOCH = "0123456789abcdef0123456789abcdef"


def test_ranges_compress_exactly() -> None:
    assert stored.ranges([5, 0, 1, 2, 2, 9, 8]) == ((0, 2), (5, 5), (8, 9))
    assert stored.ranges([]) == ()


def test_round_trip() -> None:
    entries = [
        stored.StoredEntry(EPOCH, "dev-a", ((0, 9), (12, 12)), ((10, 11),)),
        stored.StoredEntry(None, "gw-1", ((3, 3),), ()),
    ]
    assert stored.decode(stored.encode(entries)) == entries
    assert entries[0].count() == 13


def _body(**entry: object) -> bytes:
    base: dict[str, object] = {"epoch": EPOCH, "device": "dev-a", "stored": [[0, 1]], "dead": []}
    base.update(entry)
    return json.dumps({"schema": stored.SCHEMA, "entries": [base]}).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000,  # nesting: refused before parsing
        b'{"schema": "wellsense.stored.v1", "entries": [[[[[[[1]]]]]]]}',
        b"\xff\xfe",
        b"not json",
        b"x" * (stored.MAX_STORED_BYTES + 1),
        b'{"schema": "wellsense.stored.v2", "entries": []}',
        b'{"schema": "wellsense.stored.v1", "entries": [], "more": 1}',
        json.dumps({"schema": stored.SCHEMA, "entries": [{}] * (stored.MAX_ENTRIES + 1)}).encode(),
        _body(epoch="XYZ"),
        _body(epoch=7),
        _body(device="../x"),
        _body(stored=[[2, 1]]),
        _body(stored=[[-1, 1]]),
        _body(stored=[[True, 1]]),
        _body(stored=[[0, 1.5]]),
        _body(stored=[[0, wire.MAX_SEQ + 1]]),
        _body(stored=[[0, 1, 2]]),
        _body(stored=[[0, 0]] * (stored.MAX_RANGES + 1)),
        _body(dead="0-1"),
        _body(extra=1),
        b'{"schema": "wellsense.stored.v1", "entries": [{"epoch": NaN}]}',
    ],
)
def test_anything_unexpected_is_a_stored_error(payload: bytes) -> None:
    with pytest.raises(stored.StoredError):
        stored.decode(payload)


def test_nesting_scan_ignores_brackets_inside_strings() -> None:
    assert stored._depth('{"a": "[[[[[[[[\\"[[[["}') == 1


def _message(seq: int, epoch: str | None = EPOCH, gateway: str = "gw-1") -> wire.Message:
    sample = wire.HrSample(
        ts_ns=1_764_000_000 * 10**9, hr_bpm=60, contact=True, energy_kj=None, rr_ms=()
    )
    return wire.Message(
        "hr",
        "s1",
        "p-1",
        "dev-a",
        gateway,
        seq,
        1_764_000_000 * 10**9,
        wire.ClockQuality(True, "ntp", 1.0),
        (sample,),
        epoch,
    )


def test_envelope_is_read_from_valid_and_from_invalid_messages() -> None:
    good = wire.encode(_message(7))
    assert stored.envelope(good) == stored.Envelope("gw-1", EPOCH, "dev-a", 7)
    bad = json.loads(good)
    bad["samples"][0]["hr_bpm"] = 400  # fails validation, still has an envelope
    with pytest.raises(wire.WireError):
        wire.decode(json.dumps(bad).encode())
    assert stored.envelope(json.dumps(bad).encode()) == stored.Envelope("gw-1", EPOCH, "dev-a", 7)
    for payload in (b"[", b"[1]", b'{"gateway": "gw-1", "device": "d"}', b"[" * 100_000):
        assert stored.envelope(payload) is None
    del bad["epoch"]
    assert stored.envelope(json.dumps(bad).encode()) == stored.Envelope("gw-1", None, "dev-a", 7)


def test_wire_epoch_is_optional_and_checked() -> None:
    assert wire.decode(wire.encode(_message(1))).epoch == EPOCH
    legacy = wire.encode(_message(1, epoch=None))
    assert b"epoch" not in legacy and wire.decode(legacy).epoch is None
    body = json.loads(legacy)
    for value in ("ABCDEF0123456789", "abc", "g" * 16, "a" * 33, 12):
        body["epoch"] = value
        with pytest.raises(wire.FieldValueError, match="epoch"):
            wire.decode(json.dumps(body).encode())


def test_processing_confirms_per_gateway_stored_and_dead_ranges() -> None:
    env = [stored.Envelope("gw-1", EPOCH, "dev-a", s) for s in (0, 1, 2, 4)]
    handled = [(e, e.seq == 4) for e in env] + [
        (stored.Envelope("gw-1", None, "dev-a", 0), False),
        (stored.Envelope("gw-2", EPOCH, "dev-b", 9), False),
        # A repeat of a stored message in the same batch is confirmed once, as stored.
        (stored.Envelope("gw-1", EPOCH, "dev-a", 1), True),
    ]
    out = dict(confirm.payloads("s1", handled))
    assert set(out) == {wire.gateway_topic("s1", g, "stored") for g in ("gw-1", "gw-2")}
    gw1 = stored.decode(out[wire.gateway_topic("s1", "gw-1", "stored")])
    assert gw1 == [
        stored.StoredEntry(None, "dev-a", ((0, 0),), ()),
        stored.StoredEntry(EPOCH, "dev-a", ((0, 2),), ((4, 4),)),
    ]


def test_a_huge_batch_is_split_into_messages_the_gateway_accepts() -> None:
    handled = [(stored.Envelope("gw-1", EPOCH, "dev-a", 2 * s), False) for s in range(20_000)]
    out = list(confirm.payloads("s1", handled))
    assert len(out) > 1
    seqs = {
        seq
        for _topic, payload in out
        for entry in stored.decode(payload)
        for lo, hi in entry.stored
        for seq in range(lo, hi + 1)
    }
    assert seqs == {2 * s for s in range(20_000)}
