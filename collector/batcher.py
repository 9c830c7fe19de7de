"""Group samples into wire messages and commit them to the outbox.

A batch is one stream of one sensor. It closes when it holds ``max_samples``
samples or its first sample is ``max_interval_s`` old (monotonic time), and is
then committed to the outbox in one transaction that also allocates the
device's next sequence number, so a crash can neither reuse nor skip one.

Samples not yet committed live only in memory: a power cut loses at most one
batch interval per stream. Lower ``max_interval_s`` to shrink that window.

In data minimisation mode a ``raw_sink`` is set: closed ``hr`` and
``activity`` batches go to it (the gateway's local raw store) instead of the
outbox, so they never reach the broker and consume no sequence number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collector import wire
from collector.outbox import Outbox

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
    _pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)

    def add(self, route: Route, stream: str, sample: wire.Sample) -> None:
        key = (route.device, stream)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(route, stream, self.monotonic())
        pending.samples.append(sample)
        if len(pending.samples) >= self.max_samples:
            self._commit(key)

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
        return len(keys)

    def send(self, route: Route, stream: str, samples: tuple[wire.Sample, ...]) -> None:
        """Commit a complete batch now, bypassing the open ones (computed features)."""
        self._write(route, stream, samples)

    def _commit(self, key: tuple[str, str]) -> None:
        pending = self._pending.pop(key)
        route, stream = pending.route, pending.stream
        samples = tuple(pending.samples)
        if self.raw_sink is not None and stream in RAW_STREAMS:
            self.raw_sink(route, stream, samples)
            self.kept_raw += 1
            return
        self._write(route, stream, samples)

    def _write(self, route: Route, stream: str, samples: tuple[wire.Sample, ...]) -> None:
        if stream == "health":
            topic = wire.gateway_topic(self.study, self.gateway, "health")
        else:
            assert route.participant is not None
            topic = wire.participant_topic(self.study, route.participant, stream)
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
                )
            )

        self.outbox.append_next(topic, route.device, build)
        self.committed += 1
        self.on_commit()
