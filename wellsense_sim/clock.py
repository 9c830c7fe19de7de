"""The simulation clock shared by the emulator and the collector.

``sim_ns = epoch_ns + (wall_ns_at_start - anchor_wall_ns) * scale
+ (monotonic_ns - monotonic_ns_at_start) * scale``

Two processes given the same ``epoch_ns``, ``time_scale`` and
``anchor_wall_ns`` agree on simulated time (to within their wall clocks'
agreement at start); after start each advances on its own monotonic clock,
so wall-clock steps (NTP) do not make simulated time jump.
With ``time_scale == 1`` and ``epoch_ns == anchor_wall_ns`` it is plain
wall-clock time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ENV_EPOCH = "WELLSENSE_SIM_EPOCH_NS"
ENV_SCALE = "WELLSENSE_SIM_TIME_SCALE"
ENV_ANCHOR = "WELLSENSE_SIM_ANCHOR_NS"


@dataclass(frozen=True, slots=True)
class SimClockParams:
    """What two processes must share to agree on simulated time."""

    epoch_ns: int
    time_scale: float = 1.0
    anchor_wall_ns: int = 0

    def env(self) -> dict[str, str]:
        """The parameters as environment variables (for a child process)."""
        return {
            ENV_EPOCH: str(self.epoch_ns),
            ENV_SCALE: repr(self.time_scale),
            ENV_ANCHOR: str(self.anchor_wall_ns),
        }

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SimClockParams | None:
        """Read the parameters written by :meth:`env`; ``None`` if absent."""
        env = os.environ if environ is None else environ
        if ENV_EPOCH not in env:
            return None
        return cls(
            epoch_ns=int(env[ENV_EPOCH]),
            time_scale=float(env.get(ENV_SCALE, "1")),
            anchor_wall_ns=int(env.get(ENV_ANCHOR, env[ENV_EPOCH])),
        )

    @classmethod
    def starting_now(cls, epoch_ns: int | None = None, time_scale: float = 1.0) -> SimClockParams:
        """Parameters whose simulated time is ``epoch_ns`` right now."""
        now = time.time_ns()
        return cls(epoch_ns=now if epoch_ns is None else epoch_ns, time_scale=time_scale,
                   anchor_wall_ns=now)


@dataclass(slots=True)
class SimClock:
    """Simulated time in ns since the Unix epoch; call :meth:`now_ns`."""

    params: SimClockParams
    wall_ns: Callable[[], int] = time.time_ns
    monotonic_ns: Callable[[], int] = time.monotonic_ns
    _base_ns: float = field(init=False)
    _mono0: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.params.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.params.time_scale}")
        self._mono0 = self.monotonic_ns()
        p = self.params
        self._base_ns = p.epoch_ns + (self.wall_ns() - p.anchor_wall_ns) * p.time_scale

    @property
    def time_scale(self) -> float:
        """Simulated seconds per real second."""
        return self.params.time_scale

    def now_ns(self) -> int:
        """Current simulated time, ns since the Unix epoch."""
        return int(self._base_ns + (self.monotonic_ns() - self._mono0) * self.params.time_scale)

    def real_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of simulated time take in real time."""
        return sim_seconds / self.params.time_scale
