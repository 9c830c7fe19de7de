"""How a real chest strap turns heartbeats into Heart Rate Measurement notifications.

A strap (Polar H10, Garmin HRM, Wahoo TICKR) does not notify at beats. The
model this module implements, used by the emulator, the replay of real
recordings and the benchmarks of the gateway's beat clock:

- **Own cadence.** The sensor notifies every ``period_s`` of *its own* clock
  (1 s by default), whatever the heart does.
- **Clock drift.** The sensor's clock runs at ``1 + drift_ppm * 1e-6`` times
  true time (a crystal within +-50 ppm is typical). RR intervals are measured
  on that clock too.
- **RR resolution.** RR values are differences of beat times counted in
  1/1024 s ticks of the sensor clock (the GATT field's unit), so rounding never
  accumulates: the RR values of a connection sum exactly to the ticks elapsed.
- **What a notification carries.** The RR intervals of the beats detected
  since the previous notification, 0 to ``max_rr`` of them (9 fit a 23-byte
  ATT MTU with an 8-bit heart rate). Beats beyond ``max_rr`` wait for the next
  notification, as in the sensor's FIFO.
- **Latency.** A notification reaches the gateway after a BLE latency drawn
  uniformly from ``latency_ms`` (connection interval plus stack queuing).
  Notifications arrive in order (the link layer retransmits in order).
- **Loss.** A notification is lost with probability ``loss`` (interference,
  a supervision timeout): its RR values are gone for good.
- **No contact.** A beat the sensor does not detect gives no RR value, and the
  first beat after it gives none either (the interval ending there is unknown).

Times are integers (ns since the Unix epoch, true time). Standard library only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
RR_TICKS_PER_S = 1024
#: RR values of one Heart Rate Measurement with an 8-bit HR and no energy field.
MAX_RR_PER_NOTIFICATION = 9


@dataclass(frozen=True, slots=True)
class StrapParams:
    """Behaviour of one simulated strap (see the module docstring)."""

    period_s: float = 1.0
    drift_ppm: float = 0.0
    latency_ms: tuple[float, float] = (0.0, 50.0)
    loss: float = 0.0
    max_rr: int = MAX_RR_PER_NOTIFICATION
    seed: int | str = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"period_s must be > 0, got {self.period_s!r}")
        if not (math.isfinite(self.drift_ppm) and abs(self.drift_ppm) < 1e4):
            raise ValueError(f"drift_ppm must be within +-10000, got {self.drift_ppm!r}")
        lo, hi = self.latency_ms
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
            raise ValueError(f"latency_ms must be 0 <= min <= max, got {self.latency_ms!r}")
        if not (0.0 <= self.loss < 1.0):
            raise ValueError(f"loss must be in [0, 1), got {self.loss!r}")
        if not (1 <= self.max_rr <= 255):
            raise ValueError(f"max_rr must be in 1..255, got {self.max_rr!r}")


@dataclass(frozen=True, slots=True)
class StrapNotification:
    """One Heart Rate Measurement as the strap sent it and the gateway saw it."""

    index: int  # notification number since the connection started (sensor ticks)
    sent_ns: int  # true time the sensor sent it
    received_ns: int  # true time it reached the gateway (sent + latency, in order)
    rr_ms: tuple[float, ...]  # RR values as carried, in 1/1024 s steps
    beat_ns: tuple[int, ...]  # true time of the beat that ends each RR value
    lost: bool  # lost on the air: the gateway never sees it


class StrapCadence:
    """The notification schedule and RR measurement of one strap connection.

    ``start_ns`` is the (true) time the connection starts; the first
    notification is sent one period later. Feed it, tick by tick, the beats
    that happened up to :attr:`next_send_ns` with :meth:`send`.
    """

    def __init__(self, params: StrapParams, *, start_ns: int) -> None:
        self.params = params
        self._rng = random.Random(f"strap:{params.seed}:{start_ns}")
        self._rate = 1.0 + params.drift_ppm * 1e-6  # sensor seconds per true second
        # The sensor clock's phase is arbitrary; its ticks count from here.
        self._origin_ns = start_ns - self._rng.randrange(NS_PER_S)
        self._start_ns = start_ns
        self._index = 0
        self._last_tick: int | None = None  # sensor tick of the last detected beat
        self._fifo: list[tuple[float, int]] = []  # (rr_ms, beat_ns) waiting to be sent
        self._last_received_ns = start_ns

    @property
    def pending(self) -> int:
        """Detected beats waiting for a notification."""
        return len(self._fifo)

    @property
    def next_send_ns(self) -> int:
        """True time the next notification is sent."""
        period_ns = self.params.period_s * NS_PER_S / self._rate
        return self._start_ns + round((self._index + 1) * period_ns)

    def _tick(self, beat_ns: int) -> int:
        elapsed_s = (beat_ns - self._origin_ns) / NS_PER_S
        return math.floor(elapsed_s * self._rate * RR_TICKS_PER_S)

    def detect(self, beats_ns: Iterable[int]) -> None:
        """Beats the sensor detected (true times, in order), queued for sending."""
        for beat_ns in beats_ns:
            tick = self._tick(beat_ns)
            if self._last_tick is not None and tick > self._last_tick:
                rr_ms = (tick - self._last_tick) * 1000 / RR_TICKS_PER_S
                if rr_ms <= 0xFFFF * 1000 / RR_TICKS_PER_S:
                    self._fifo.append((rr_ms, beat_ns))
            self._last_tick = tick

    def miss(self) -> None:
        """A beat the sensor did not detect (no contact): the next RR is unknown."""
        self._last_tick = None

    def send(self, beats_ns: Sequence[int] = ()) -> StrapNotification:
        """Detect ``beats_ns`` and send the notification due at :attr:`next_send_ns`."""
        self.detect(beats_ns)
        sent_ns = self.next_send_ns
        take, self._fifo = self._fifo[: self.params.max_rr], self._fifo[self.params.max_rr :]
        lo, hi = self.params.latency_ms
        latency_ns = round(self._rng.uniform(lo, hi) * 1_000_000)
        lost = self._rng.random() < self.params.loss
        received_ns = max(self._last_received_ns, sent_ns + latency_ns)
        if not lost:
            self._last_received_ns = received_ns
        note = StrapNotification(
            index=self._index,
            sent_ns=sent_ns,
            received_ns=received_ns,
            rr_ms=tuple(rr for rr, _ in take),
            beat_ns=tuple(t for _, t in take),
            lost=lost,
        )
        self._index += 1
        return note


def beats_from_rr(rr_ms: Iterable[float], *, start_ns: int) -> list[int]:
    """True beat times of an RR recording: ``start_ns`` plus the running sum."""
    times: list[int] = []
    t = start_ns
    for rr in rr_ms:
        t += round(rr * 1_000_000)
        times.append(t)
    return times


def notify_beats(
    beats_ns: Sequence[int], params: StrapParams, *, start_ns: int
) -> list[StrapNotification]:
    """Run a whole recording (sorted true beat times) through one strap connection.

    Notifications are produced until every beat has been sent (lost ones
    included, marked ``lost``).
    """
    cadence = StrapCadence(params, start_ns=start_ns)
    out: list[StrapNotification] = []
    i, n = 0, len(beats_ns)
    while i < n or cadence.pending:
        due = cadence.next_send_ns
        j = i
        while j < n and beats_ns[j] <= due:
            j += 1
        out.append(cadence.send(beats_ns[i:j]))
        i = j
    return out
