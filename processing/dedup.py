"""De-duplication and gap detection by (epoch, device, sequence number), in bounded memory.

The epoch is the gateway outbox's random id (wire field ``epoch``): a
replaced outbox (a corrupt file moved aside, a re-flashed SD card, a swapped
gateway) restarts sequence numbers at 0 under a new epoch, and those are new
messages, not repeats. Messages without an epoch (older gateways) share the
``None`` epoch of their device.

Each device keeps a high-water mark (the highest sequence number seen) and the
set of numbers seen within ``window`` below it. A number inside that range
that was seen before is a duplicate; a jump past the high-water mark opens a
gap, which a later (out-of-order) arrival may fill again. Numbers older than
the window are let through: they are rare (a gateway that replays an old
outbox) and harmless, because rewriting a point is idempotent in InfluxDB.
The number of devices tracked is capped too (least recently seen dropped).

This memory is an optimisation, not what makes storage exactly-once: after a
restart, or with several workers where a redelivery may land on another
worker, a duplicate gets through and simply overwrites identical points.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field


class Verdict(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    LATE = "late"  # below the high-water mark, not seen before: fills a gap
    TOO_OLD = "too_old"  # below the remembered window: cannot tell, let through


@dataclass(frozen=True, slots=True)
class Seen:
    verdict: Verdict
    gap: int = 0  # sequence numbers skipped by this one (0 unless it jumped ahead)

    @property
    def is_duplicate(self) -> bool:
        return self.verdict is Verdict.DUPLICATE


@dataclass
class _Device:
    hwm: int
    recent: set[int] = field(default_factory=set)


class SeqTracker:
    """Remembers recent (device, seq) pairs.

    Args:
        window: how many sequence numbers below the high-water mark are remembered.
        max_devices: devices remembered at once (least recently seen forgotten first).
    """

    def __init__(self, *, window: int = 4096, max_devices: int = 100_000) -> None:
        if window < 1 or max_devices < 1:
            raise ValueError("window and max_devices must be >= 1")
        self.window = window
        self.max_devices = max_devices
        self._devices: OrderedDict[str, _Device] = OrderedDict()

    def __len__(self) -> int:
        return len(self._devices)

    @staticmethod
    def _key(device: str, epoch: str | None) -> str:
        return device if epoch is None else f"{epoch}/{device}"

    def peek(self, device: str, seq: int, epoch: str | None = None) -> bool:
        """True if ``(epoch, device, seq)`` is a known duplicate (does not record it)."""
        state = self._devices.get(self._key(device, epoch))
        return state is not None and seq in state.recent

    def see(self, device: str, seq: int, epoch: str | None = None) -> Seen:
        """Record ``(epoch, device, seq)`` and say what it was."""
        device = self._key(device, epoch)
        state = self._devices.get(device)
        if state is None:
            self._devices[device] = _Device(hwm=seq, recent={seq})
            if len(self._devices) > self.max_devices:
                self._devices.popitem(last=False)
            return Seen(Verdict.NEW)
        self._devices.move_to_end(device)
        if seq > state.hwm:
            gap = seq - state.hwm - 1
            state.hwm = seq
            state.recent.add(seq)
            if len(state.recent) > 2 * self.window:
                floor = seq - self.window
                state.recent = {s for s in state.recent if s > floor}
            return Seen(Verdict.NEW, gap=gap)
        if seq in state.recent:
            return Seen(Verdict.DUPLICATE)
        if seq <= state.hwm - self.window:
            return Seen(Verdict.TOO_OLD)
        state.recent.add(seq)
        return Seen(Verdict.LATE)
