"""Group samples into wire messages and commit them to the outbox.

A batch is one stream of one sensor. It closes when it holds ``max_samples``
samples or its first sample is ``max_interval_s`` old (monotonic time), and is
then committed to the outbox in one transaction that also allocates the
device's next sequence number, so a crash can neither reuse nor skip one.

Samples of open batches are journaled in the outbox file
(:meth:`Outbox.journal_add`, called through :meth:`Batcher.journal_flush`
after each group of samples) and deleted in the transaction that commits
their batch; :meth:`Batcher.recover` reopens them after a restart, so a
process crash (SIGKILL) loses no sample that reached ``journal_flush``. The
journal is not fsynced per commit: a power cut loses at most the samples
journaled since the last :meth:`Outbox.sync` (the collector calls it every
``JOURNAL_SYNC_S``).

In data minimisation mode a ``raw_sink`` is set: closed ``hr`` and
``activity`` batches go to it (the gateway's local raw store) instead of the
outbox, so they never reach the broker and consume no sequence number.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collector import wire
from collector.outbox import Outbox

log = logging.getLogger(__name__)

RAW_STREAMS = frozenset({"hr", "activity"})
"""Streams kept on the gateway in data minimisation mode."""

RawSink = Callable[["Route", str, tuple[wire.Sample, ...]], object]


@dataclass(frozen=True, slots=True)
class Route:
    """Where one sensor's data goes."""

    participant: str | None  # None for the gateway's own health stream
    device: str


@dataclass
class _Pending:
    route: Route
    stream: str
    opened: float
    topic: str
    samples: list[wire.Sample] = field(default_factory=list)


@dataclass
class Batcher:
    """Collects samples per (device, stream) and commits full or due batches.

    Args:
        outbox: where closed batches are committed.
        study, gateway: ids written into every message.
        clock_quality: how far the gateway clock can be trusted right now.
        wall_ns: the sample clock (simulated in the demo), for ``sent_ns``.
        max_samples, max_interval_s: when a batch closes.
        on_commit: called after each commit (the publisher's ``wake``).
        raw_sink: if set, receives closed ``hr``/``activity`` batches instead
            of the outbox (data minimisation mode).
    """

    outbox: Outbox
    study: str
    gateway: str
    clock_quality: Callable[[], wire.ClockQuality]
    wall_ns: Callable[[], int] = time.time_ns
    max_samples: int = 120
    max_interval_s: float = 10.0
    on_commit: Callable[[], None] = lambda: None
    monotonic: Callable[[], float] = time.monotonic
    raw_sink: RawSink | None = None
    committed: int = 0
    kept_raw: int = 0
    recovered: int = 0
    _pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)
    # Samples added since the last journal_flush (encoded only when flushed).
    _unjournaled: list[tuple[tuple[str, str], _Pending, wire.Sample]] = field(default_factory=list)

    def add(self, route: Route, stream: str, sample: wire.Sample) -> None:
        key = (route.device, stream)
        pending = self._pending.get(key)
        if pending is None:
            topic = self._topic(route, stream)
            pending = self._pending[key] = _Pending(route, stream, self.monotonic(), topic)
        pending.samples.append(sample)
        self._unjournaled.append((key, pending, sample))
        if len(pending.samples) >= self.max_samples:
            self._commit(key)

    def journal_flush(self) -> None:
        """Journal the samples added since the last call (one transaction)."""
        if self._unjournaled:
            rows = [
                (
                    p.route.device,
                    p.stream,
                    p.route.participant,
                    p.topic,
                    json.dumps(wire.sample_to_json(sample), separators=(",", ":")),
                )
                for _key, p, sample in self._unjournaled
            ]
            self._unjournaled.clear()
            self.outbox.journal_add(rows)

    def recover(self) -> int:
        """Reopen the batches journaled before a crash; return the samples recovered.

        Call once at start, before the first :meth:`add`. The batches close as
        usual (full, or ``max_interval_s`` from now).
        """
        bad = 0
        for row in self.outbox.journal():
            key = (row.device, row.stream)
            try:
                sample = wire.sample_from_json(row.stream, json.loads(row.sample))
            except (ValueError, RecursionError):
                bad += 1
                continue
            pending = self._pending.get(key)
            if pending is None:
                route = Route(row.participant, row.device)
                pending = self._pending[key] = _Pending(
                    route, row.stream, self.monotonic(), row.topic
                )
            pending.samples.append(sample)
            self.recovered += 1
        if bad:
            log.error("batch journal: %d unreadable samples dropped", bad)
        if self.recovered or bad:
            log.info("batch journal: %d samples of open batches recovered", self.recovered)
        # Reopened batches may be full already.
        for key in [k for k, p in self._pending.items() if len(p.samples) >= self.max_samples]:
            self._commit(key)
        return self.recovered

    def flush_due(self) -> None:
        """Commit every batch whose first sample is ``max_interval_s`` old."""
        now = self.monotonic()
        for key in [k for k, p in self._pending.items() if now - p.opened >= self.max_interval_s]:
            self._commit(key)

    def flush_all(self) -> None:
        """Commit everything (on shutdown)."""
        for key in list(self._pending):
            self._commit(key)

    def discard(self, participants: frozenset[str]) -> int:
        """Drop, uncommitted, the open batches of these participants (withdrawal)."""
        keys = [k for k, p in self._pending.items() if p.route.participant in participants]
        for key in keys:
            del self._pending[key]
            self._forget_unjournaled(key)
            self.outbox.journal_clear(key)
        return len(keys)

    def send(self, route: Route, stream: str, samples: tuple[wire.Sample, ...]) -> None:
        """Commit a complete batch now, bypassing the open ones (computed features)."""
        self._write(route, stream, samples)

    def _forget_unjournaled(self, key: tuple[str, str]) -> None:
        if any(entry[0] == key for entry in self._unjournaled):
            self._unjournaled = [entry for entry in self._unjournaled if entry[0] != key]

    def _commit(self, key: tuple[str, str]) -> None:
        pending = self._pending.pop(key)
        route, stream = pending.route, pending.stream
        samples = tuple(pending.samples)
        # Its samples are in the message now: never journal them afterwards.
        self._forget_unjournaled(key)
        if self.raw_sink is not None and stream in RAW_STREAMS:
            self.raw_sink(route, stream, samples)
            # Another file: a crash between the two re-adds this batch once.
            self.outbox.journal_clear(key)
            self.kept_raw += 1
            return
        self._write(route, stream, samples, journal_key=key)

    def _topic(self, route: Route, stream: str) -> str:
        if stream == "health":
            return wire.gateway_topic(self.study, self.gateway, "health")
        assert route.participant is not None
        return wire.participant_topic(self.study, route.participant, stream)

    def _write(
        self,
        route: Route,
        stream: str,
        samples: tuple[wire.Sample, ...],
        journal_key: tuple[str, str] | None = None,
    ) -> None:
        topic = self._topic(route, stream)
        epoch = self.outbox.epoch
        clock = self.clock_quality()
        sent_ns = self.wall_ns()

        def build(seq: int) -> bytes:
            return wire.encode(
                wire.Message(
                    stream=stream,
                    study=self.study,
                    participant=route.participant,
                    device=route.device,
                    gateway=self.gateway,
                    seq=seq,
                    sent_ns=sent_ns,
                    clock=clock,
                    samples=samples,
                    epoch=epoch,
                )
            )

        self.outbox.append_next(topic, route.device, build, journal_key=journal_key)
        self.committed += 1
        self.on_commit()
