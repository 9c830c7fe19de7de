"""Storage confirmations to gateways: which of their messages are now handled.

After a batch's write to InfluxDB returned (and its dead letters reached the
broker), processing publishes, per gateway, one or more
``wellsense.stored.v1`` messages (:mod:`collector.stored`) on
``wellsense/v1/<study>/_gateways/<gateway>/stored``; only then does the
gateway delete the covered rows from its outbox. Repeats of messages already
stored are confirmed again (the first confirmation may have been lost), and
dead-lettered messages are confirmed as ``dead``: they are handled, and
sending them again would only dead-letter them again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from collector import stored, wire

# Entries and ranges per message, well below collector.stored's bounds.
MAX_ENTRIES_PER_MESSAGE = 256
MAX_RANGES_PER_MESSAGE = 1024


def payloads(
    study: str, handled: Iterable[tuple[stored.Envelope, bool]]
) -> Iterator[tuple[str, bytes]]:
    """``(topic, payload)`` confirmations for ``(envelope, dead)`` pairs, per gateway."""
    seqs: dict[str, dict[tuple[str | None, str], tuple[set[int], set[int]]]] = defaultdict(dict)
    for env, dead in handled:
        ok, bad = seqs[env.gateway].setdefault((env.epoch, env.device), (set(), set()))
        (bad if dead else ok).add(env.seq)
    for gateway in sorted(seqs):
        topic = wire.gateway_topic(study, gateway, "stored")
        chunk: list[stored.StoredEntry] = []
        n_ranges = 0
        for (epoch, device), (ok, bad) in sorted(
            seqs[gateway].items(), key=lambda kv: (kv[0][0] or "", kv[0][1])
        ):
            for entry in _split(epoch, device, stored.ranges(ok), stored.ranges(bad - ok)):
                size = len(entry.stored) + len(entry.dead)
                if chunk and (
                    len(chunk) >= MAX_ENTRIES_PER_MESSAGE
                    or n_ranges + size > MAX_RANGES_PER_MESSAGE
                ):
                    yield topic, stored.encode(chunk)
                    chunk, n_ranges = [], 0
                chunk.append(entry)
                n_ranges += size
        if chunk:
            yield topic, stored.encode(chunk)


def _split(
    epoch: str | None,
    device: str,
    ok: tuple[stored.Range, ...],
    bad: tuple[stored.Range, ...],
) -> Iterator[stored.StoredEntry]:
    """One entry, or several when its ranges would not fit one message."""
    if len(ok) + len(bad) <= MAX_RANGES_PER_MESSAGE:
        yield stored.StoredEntry(epoch, device, ok, bad)
        return
    step = MAX_RANGES_PER_MESSAGE
    for i in range(0, len(ok), step):
        yield stored.StoredEntry(epoch, device, ok[i : i + step], ())
    for i in range(0, len(bad), step):
        yield stored.StoredEntry(epoch, device, (), bad[i : i + step])
