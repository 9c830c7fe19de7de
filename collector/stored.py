"""Storage confirmations: processing tells a gateway which of its messages are stored.

The end-to-end acknowledgement of wire contract v1. The broker's PUBACK only
says a message reached the broker; processing publishes this message on
``wellsense/v1/<study>/_gateways/<gateway>/stored`` (QoS 1, not retained)
after the write to InfluxDB returned, and only then does the gateway delete
the covered rows from its outbox.

Payload (UTF-8 JSON object, at most ``MAX_STORED_BYTES``)::

    {"schema": "wellsense.stored.v1",
     "entries": [{"epoch": "<16-32 hex>" | null, "device": "<id>",
                  "stored": [[first_seq, last_seq], ...],
                  "dead": [[first_seq, last_seq], ...]}, ...]}

``stored`` ranges are inclusive and were written to InfluxDB (or were
repeats of messages already written: a repeat is confirmed again, so a
gateway whose confirmation was lost can still delete). ``dead`` ranges were
invalid and are kept in the dead-letter store: they are *handled* and must
not be sent again either. ``epoch`` is ``null`` for messages without one
(older gateways).

Only processing may publish it and only the gateway may read it (broker ACL);
still, the gateway treats it as untrusted input: :func:`decode` bounds size,
nesting, entry and range counts and raises :class:`StoredError` for anything
else, which the gateway logs and ignores (the rows stay and are sent again).

Standard library only: the gateway imports it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from collector import wire

SCHEMA: Final = "wellsense.stored.v1"
MAX_STORED_BYTES: Final = 64 * 1024
MAX_ENTRIES: Final = 1024
MAX_RANGES: Final = 4096
MAX_DEPTH: Final = 5  # object > entries list > entry > ranges list > range

_KEYS: Final = frozenset({"schema", "entries"})
_ENTRY_KEYS: Final = frozenset({"epoch", "device", "stored", "dead"})

Range = tuple[int, int]


class StoredError(ValueError):
    """A confirmation that does not follow ``wellsense.stored.v1``."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """Stored and dead-lettered sequence ranges of one (epoch, device)."""

    epoch: str | None
    device: str
    stored: tuple[Range, ...] = ()
    dead: tuple[Range, ...] = ()

    def count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in (*self.stored, *self.dead))


def ranges(seqs: Iterable[int]) -> tuple[Range, ...]:
    """Inclusive ranges covering exactly ``seqs``: ``[0, 1, 2, 5]`` -> ``((0, 2), (5, 5))``."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return tuple((lo, hi) for lo, hi in out)


def encode(entries: Iterable[StoredEntry]) -> bytes:
    body = {
        "schema": SCHEMA,
        "entries": [
            {
                "epoch": e.epoch,
                "device": e.device,
                "stored": [list(r) for r in e.stored],
                "dead": [list(r) for r in e.dead],
            }
            for e in entries
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside strings (checked before parsing)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _ranges(value: Any, path: str) -> tuple[Range, ...]:
    if not isinstance(value, list) or len(value) > MAX_RANGES:
        raise StoredError(f"{path}: expected a list of at most {MAX_RANGES} ranges")
    out: list[Range] = []
    for r in value:
        if (
            not isinstance(r, list)
            or len(r) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in r)
            or not 0 <= r[0] <= r[1] <= wire.MAX_SEQ
        ):
            raise StoredError(f"{path}: a range must be [first, last] with 0 <= first <= last")
        out.append((r[0], r[1]))
    return tuple(out)


def decode(payload: bytes) -> list[StoredEntry]:
    """Validate a confirmation; raise :class:`StoredError` on anything unexpected."""
    if len(payload) > MAX_STORED_BYTES:
        raise StoredError(f"{len(payload)} bytes > {MAX_STORED_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise StoredError("not UTF-8") from None
    if _depth(text) > MAX_DEPTH:
        raise StoredError(f"nested deeper than {MAX_DEPTH}")
    try:
        body = json.loads(text, parse_constant=lambda c: None)
    except (ValueError, RecursionError):
        raise StoredError("not valid JSON") from None
    if not isinstance(body, dict) or set(body) != _KEYS or body["schema"] != SCHEMA:
        raise StoredError(f"expected an object with exactly {sorted(_KEYS)}, schema {SCHEMA}")
    raw_entries = body["entries"]
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
        raise StoredError(f"entries: expected a list of at most {MAX_ENTRIES}")
    entries = []
    for i, raw in enumerate(raw_entries):
        if not isinstance(raw, dict) or set(raw) != _ENTRY_KEYS:
            raise StoredError(f"entries[{i}]: expected exactly {sorted(_ENTRY_KEYS)}")
        epoch = raw["epoch"]
        if epoch is not None and (
            not isinstance(epoch, str) or not wire.EPOCH_PATTERN.match(epoch)
        ):
            raise StoredError(f"entries[{i}].epoch: expected null or 16-32 hex digits")
        try:
            device = wire.check_id(raw["device"], "device")
        except wire.WireError:
            raise StoredError(f"entries[{i}].device: not an id") from None
        entries.append(
            StoredEntry(
                epoch=epoch,
                device=device,
                stored=_ranges(raw["stored"], f"entries[{i}].stored"),
                dead=_ranges(raw["dead"], f"entries[{i}].dead"),
            )
        )
    return entries


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who to confirm a message to, read leniently from a payload that may be invalid."""

    gateway: str
    epoch: str | None
    device: str
    seq: int


def envelope(payload: bytes) -> Envelope | None:
    """The (gateway, epoch, device, seq) of a message, even one that fails validation.

    Processing confirms dead-lettered messages as ``dead`` so the gateway
    stops sending them; a payload without a usable envelope (not a JSON
    object, or no valid gateway/device/seq) cannot be confirmed and returns
    None: the gateway sends it again until its outbox bound evicts it.
    """
    if len(payload) > wire.MAX_MESSAGE_BYTES:
        return None
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    gateway: Any = body.get("gateway")
    device: Any = body.get("device")
    seq: Any = body.get("seq")
    epoch: Any = body.get("epoch")
    try:
        wire.check_id(gateway, "gateway")
        wire.check_id(device, "device")
    except wire.WireError:
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= wire.MAX_SEQ:
        return None
    if epoch is not None and (not isinstance(epoch, str) or not wire.EPOCH_PATTERN.match(epoch)):
        return None
    return Envelope(gateway, epoch, device, seq)
