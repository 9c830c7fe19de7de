"""The gateway's beat clock: when each RR interval of a heart-rate strap ended.

A chest strap does not notify at beats. Each Heart Rate Measurement carries
the RR intervals of the beats detected since its previous notification, and
the strap sends on its own clock. :class:`BeatClock` places those beats on the
gateway's clock so that consecutive beats are exactly their RR apart, and says
where it could not.

Model (what the bounds below rely on)
-------------------------------------
- **Own cadence.** The sensor notifies every ``P`` of its own clock (about
  1 s), independent of the beats. Each notification carries the RR values
  (0 to 9; at most 7 fit every layout of a 20-byte payload) of the beats
  detected since the previous one; beats beyond what fits wait in the
  sensor's FIFO for the next notification.
- **Latency.** A notification sent at ``s_k`` is received at
  ``r_k = s_k + latency``, latency in ``[0, L]`` (``L`` =
  :data:`MAX_LATENCY_NS`, 50 ms: connection interval plus stack queuing).
  Notifications arrive in order.
- **Drift.** The sensor measures RR on its own crystal (within +-50 ppm:
  50 us of disagreement per second, 4.3 s per day), so a running sum of RR
  walks away from the gateway's clock slowly.
- **Loss.** A notification can be lost on the air (its RR values are gone),
  and a sensor that loses contact skips beats without telling.
- **Gateway clock steps.** NTP may step the gateway clock (e.g. +-1 h).

Placement
---------
Within a timeline beat ``i`` is at ``o + S_i``: ``S_i`` is the running sum of
the RR values, each rounded to whole nanoseconds before summing (exact
integers: consecutive beats of one notification are exactly
``round(rr_ms * 1e6)`` ns apart), and ``o`` is the anchor. A timeline starts
with its first beat one sensor period ``P`` before the arrival (about when
the previous notification was sent: the earliest it can be), or with its last
beat at the arrival if the notification holds more than a period of beats
(``o = min(r_0 - S_last(0), r_0 - P - S_first(0))``). Starting early means
later corrections move beats forward (a gap: ``dt > RR``, as when beats are
missing) rather than back (``dt < RR``: beats squeezed together, which
distorts the time axis of the spectral features). Every notification then
gives two constraints:

- **upper (hard):** its last beat happened before it was sent, so
  ``o + S_last(k) <= r_k``;
- **lower (soft):** its first beat happened after the previous notification
  was sent (``s_{k-1} >= r_{k-1} - L``), so ``o + S_first(k) >= r_{k-1} - L``.
  Skipped when the previous notification carried 7 or more values (its FIFO
  may have held beats back) and after a detected loss.

Nothing changes while both hold; the lower bound is only enforced once it
is violated by more than :data:`LOWER_SLACK_NS` (100 ms). Chasing every
small violation of it would cost a break per correction while the anchor
converges after each lost notification (``bench/hrv_live.py``: at 5 % loss
92 % of truly successive beats stay successive with no slack, 95 % with
100 ms), and a beat placed up to 100 ms early harms nothing (only the
spacing of beats matters to HRV). Missing beats put the running sum behind
by at least the missed intervals (a strap that misses a beat sends no RR for
it nor for the next), well above the slack, so the bound still finds them.
When a bound fails, the anchor moves by the smallest amount that satisfies
it:

- a move of at most :data:`SLIDE_MAX_NS` (9 ms) is a **slide**: silent. It is
  how a sensor clock running fast (tens of us per second) is followed; the
  pair across it has ``|dt - RR| <= 9 ms``, which processing's successive
  test (10 ms, :data:`GAP_TOLERANCE_NS`) accepts, and the beat is marked
  successive. (A sensor running slow drifts early within the slack and then
  costs one break: every 2,000 s at -50 ppm.);
- any larger move is a **break**: a new timeline. It is made at least
  :data:`BREAK_MIN_NS` (11 ms) so that ``|dt - RR| >= 11 ms`` at the first beat
  after it: the stored times alone tell processing the beat is not successive.

A notification also starts a new timeline (a break) when the connection is
new (:meth:`BeatClock.reset`), when it arrived before the previous one (the
gateway clock stepped back), when the time since the previous arrival is
more than 1.5 sensor periods (a lost notification: about a second of beats
is missing; the period is the median of the last arrivals' spacing, with a
prior of 1 s for the first arrivals of a connection), and when
the running sum lags the arrival by more than :data:`MAX_LAG_NS`; it is
anchored as at the start of a connection.

Guarantees (property-tested in tests/unit/test_collector_beats.py)
------------------------------------------------------------------
- Beats of one notification are exactly their RR apart.
- Between notifications, without a break ``|dt - RR| <= SLIDE_MAX_NS``; at a
  break ``|dt - RR| >= BREAK_MIN_NS``.
- Each beat comes at least half its RR after the previous one (so beat times
  increase strictly), within a connection and across reconnections, except
  where that (with a visible break) would put a beat more than
  :data:`MAX_LEAD_NS` after its notification arrived: the gateway clock
  stepped back, and the new timeline follows the clock.
- The last beat of a notification is at most :data:`MAX_LEAD_NS` after its
  arrival (it is after it only where strict increase demands) and at most
  :data:`MAX_LAG_NS` before it.

Standard library only (the gateway has no NumPy).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from collector import wire

#: Processing's successive-beat test: ``|1000 (t_k - t_{k-1}) - RR_k| <= 10 ms``
#: (``processing.features.rr_clean.GAP_TOLERANCE_MS``; a unit test keeps them equal).
GAP_TOLERANCE_NS: Final = round(wire.RR_GAP_TOLERANCE_MS * 1_000_000)
#: Largest silent anchor move (a slide); below the tolerance with a margin.
SLIDE_MAX_NS: Final = GAP_TOLERANCE_NS - 1_000_000
#: Smallest anchor move at a break; above the tolerance with a margin.
BREAK_MIN_NS: Final = GAP_TOLERANCE_NS + 1_000_000
#: Largest BLE latency the lower bound allows for.
MAX_LATENCY_NS: Final = 50_000_000
#: How far the (soft) lower bound may be violated before the anchor moves forward.
LOWER_SLACK_NS: Final = 100_000_000
#: A notification with this many RR values may have left beats in the FIFO.
FULL_NOTIFICATION_RR: Final = 7
#: Arrival spacing above this many sensor periods means notifications were lost.
LOSS_PERIODS: Final = 1.5
#: Beats may be placed this far after their notification only to keep times increasing.
MAX_LEAD_NS: Final = wire.MAX_BEAT_LEAD_NS
#: A running sum lagging the arrival by more than this is re-anchored.
MAX_LAG_NS: Final = wire.MAX_BEAT_LAG_NS
_CADENCE_GAPS: Final = 15  # arrival spacings kept for the period estimate
_MIN_CADENCE_GAPS: Final = 3  # spacings known before the prior period is dropped
#: Notification period of common straps (Polar, Garmin, Wahoo), the prior for the
#: first arrivals of a connection.
DEFAULT_PERIOD_NS: Final = 1_000_000_000


@dataclass(slots=True)
class BeatClockStats:
    """Counters of one clock: notifications, beats, slides and breaks by reason."""

    notifications: int = 0
    beats: int = 0
    slides: int = 0
    max_slide_ns: int = 0
    breaks: dict[str, int] = field(default_factory=dict)


class BeatClock:
    """Places the beats of one sensor's notifications on the gateway clock.

    One instance per sensor; call :meth:`reset` when a new connection starts.
    ``max_latency_ns`` is ``L`` of the module docstring.
    """

    def __init__(
        self, *, max_latency_ns: int = MAX_LATENCY_NS, lower_slack_ns: int = LOWER_SLACK_NS
    ) -> None:
        if max_latency_ns < 0 or lower_slack_ns < 0:
            raise ValueError("max_latency_ns and lower_slack_ns must be >= 0")
        self.max_latency_ns = max_latency_ns
        self.lower_slack_ns = lower_slack_ns
        self.stats = BeatClockStats()
        self.last_break = False
        self.last_break_reason: str | None = None
        # Kept across reset(): the first beat of a new connection is made
        # visibly non-successive to the last one stored.
        self._t_last: int | None = None
        self.reset()

    def reset(self) -> None:
        """Start a new timeline (a new connection): the next beat is a break."""
        self._r_prev: int | None = None
        self._prev_count = 0
        self._pending: str | None = "start"
        self._gaps: deque[int] = deque(maxlen=_CADENCE_GAPS)

    def add(self, received_ns: int, rr_ms: Sequence[float]) -> list[int]:
        """Beat times (Unix ns, gateway clock) ending each RR value of one notification.

        ``received_ns`` is the notification's arrival on the gateway clock.
        Afterwards :attr:`last_break` tells whether the first of these beats
        starts a new timeline (is not successive to the previous beat).
        """
        r = received_ns
        rr_ns = [round(v * 1_000_000) for v in rr_ms]
        self.stats.notifications += 1
        r_prev = self._r_prev
        reason = self._arrival(r)
        if not rr_ns:
            if reason is not None and self._pending is None:
                self._pending = reason
            self._prev_count = 0
            self.last_break, self.last_break_reason = False, None
            return []
        reason = self._pending or reason
        total = sum(rr_ns)
        rr0 = rr_ns[0]
        hi = r - total  # largest base (position before the first beat) with last beat <= r
        # A new timeline puts its first beat one period before the arrival (about
        # when the previous notification was sent, the earliest it can be), or
        # its last beat at the arrival if they do not fit: later corrections
        # then move it forward (a gap), not back (compressing time).
        fresh = min(hi, r - self._period() - rr0)
        base: int
        if reason is None and self._t_last is not None:
            base = self._t_last
            if base < hi - MAX_LAG_NS:
                reason, base = "lag", fresh
            elif base > hi:  # upper bound: beats after their notification
                move = base - hi
                if move <= SLIDE_MAX_NS and move <= rr0 // 2:
                    base = self._slide(base, -move)
                else:
                    reason, base = "upper", hi
            elif r_prev is not None and self._prev_count < FULL_NOTIFICATION_RR:
                lo = r_prev - self.max_latency_ns - rr0
                if lo - base > self.lower_slack_ns:  # first beat before the previous send
                    move = min(lo - base, hi - base)
                    if move <= SLIDE_MAX_NS:
                        base = self._slide(base, move)
                    elif hi - base >= BREAK_MIN_NS:
                        reason, base = "lower", base + max(move, BREAK_MIN_NS)
                    else:
                        base = self._slide(base, SLIDE_MAX_NS)
        else:
            reason = reason or "start"
            base = fresh
        if reason is not None:
            base = self._break_base(base, rr0, total, r)
            self.stats.breaks[reason] = self.stats.breaks.get(reason, 0) + 1
        times = []
        t = base
        for v in rr_ns:
            t += v
            times.append(t)
        self._t_last = t
        self._pending = None
        self._prev_count = len(rr_ns)
        self.stats.beats += len(rr_ns)
        self.last_break = reason is not None
        self.last_break_reason = reason
        return times

    # -- internals ---------------------------------------------------------------

    def _arrival(self, r: int) -> str | None:
        """Update the cadence with an arrival; the break it implies, if any."""
        prev, self._r_prev = self._r_prev, r
        if prev is None:
            return None
        gap = r - prev
        if gap < 0:
            return "clock"
        lost = gap > LOSS_PERIODS * self._period()
        self._gaps.append(gap)
        return "lost" if lost else None

    def _period(self) -> int:
        """The sensor's notification period: median spacing of recent arrivals."""
        known = list(self._gaps)
        if len(known) < _MIN_CADENCE_GAPS:
            known.append(DEFAULT_PERIOD_NS)  # a prior until the spacing is known
        return round(statistics.median(known))

    def _slide(self, base: int, move: int) -> int:
        if move:
            self.stats.slides += 1
            self.stats.max_slide_ns = max(self.stats.max_slide_ns, abs(move))
        return base + move

    def _break_base(self, desired: int, rr0: int, total: int, r: int) -> int:
        """The base of a new timeline: visible, plausibly spaced and near its arrival.

        The first beat is put at least half its RR after the previous beat
        (a beat cannot come sooner than its own interval; squeezing beats
        together distorts the time axis of the spectral features) and at
        least ``BREAK_MIN_NS`` off the running sum, as near ``desired`` as
        that allows, unless that puts the notification's last beat more than
        ``MAX_LEAD_NS`` past its arrival: the gateway clock stepped back, and
        the new timeline follows it.
        """
        t_last = self._t_last
        if t_last is None:
            return desired
        plausible = t_last - rr0 // 2  # smallest base with the first beat >= rr0/2 later

        def ok(b: int) -> bool:
            visible = abs(b - t_last) >= BREAK_MIN_NS
            return visible and r - MAX_LAG_NS <= b + total <= r + MAX_LEAD_NS

        for b in (max(desired, plausible), t_last - BREAK_MIN_NS, t_last + BREAK_MIN_NS):
            if ok(b) and b >= plausible:
                return b
        for b in (desired, t_last - BREAK_MIN_NS):
            if ok(b):
                return b
        return desired  # unreachable: t_last - BREAK_MIN_NS is near whenever desired is
