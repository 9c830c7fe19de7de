"""Data minimisation: per-window HRV computed on the gateway; raw data stays home.

With ``[minimise] enabled`` the batcher keeps raw ``hr``/``activity`` batches
in the local :class:`~collector.rawstore.RawStore`. :class:`Minimiser`, ticked
by the service loop, then

* closes each device's HRV windows (``window_s`` long, aligned to the Unix
  epoch like the server's) in time order: a window is closed once the
  device's stored data time is :data:`CLOSE_MARGIN_NS` past its end (every
  beat of it has been stored: the beat clock places a notification's beats
  before its arrival, and those of a later notification at most a fraction of
  a second before the previous arrival, or a few seconds after a full
  notification), or once the sample clock is a further ``window_s`` past its
  end with nothing newer (strap off, sensor gone);
* computes its features from the stored beats with the server's own function
  (:func:`processing.features.hrv.hrv_window_at`), commits them to the outbox
  as one ``features`` message, and only then records the window as done, so
  a crash in between resends it (processing rewrites the same point);
* every ``purge_interval_s`` deletes raw rows older than ``keep_raw_days``.

NumPy and SciPy are imported only here, lazily (:func:`load_window_function`),
so the collector without the ``minimise`` extra still starts and shows
``--help``; enabling the mode without them fails at start with the fix.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from collector import wire
from collector.batcher import Batcher, Route
from collector.rawstore import RawStore

log = logging.getLogger(__name__)

NS: Final = 1_000_000_000
#: Data time past a window's end before it is closed: covers beats of later
#: notifications placed before earlier arrivals (see collector.beats).
CLOSE_MARGIN_NS: Final = 10 * NS
WindowFunction = Callable[..., "dict[str, Any] | None"]


class MinimiseUnavailableError(RuntimeError):
    """Data minimisation is enabled but its dependencies are not installed."""


def load_window_function() -> WindowFunction:
    """The server's HRV window function, imported on first use (NumPy, SciPy)."""
    try:
        from processing.features.hrv import hrv_window_at
    except ImportError as exc:
        raise MinimiseUnavailableError(
            f"[minimise] enabled needs NumPy and SciPy ({exc.name or exc} is missing): "
            "pip install 'wellsense[minimise]'"
        ) from None
    return hrv_window_at


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def window_features(
    beat_ns: Sequence[int],
    rr_ms: Sequence[float],
    *,
    start_ns: int,
    window_s: int,
    window_function: WindowFunction | None = None,
) -> wire.FeaturesSample | None:
    """The ``features`` sample of one window from its stored beats (``None``: no beat).

    Pure: the same beats give the same sample, and the same numbers as the
    server's ``hrv_window`` point computed from the same stored RR.
    """
    import numpy as np  # only reached in minimisation mode

    compute = window_function or load_window_function()
    row = compute(
        np.asarray(beat_ns, dtype=np.int64),
        np.asarray(rr_ms, dtype=np.float64),
        start_ns=start_ns,
        window_s=window_s,
    )
    if row is None:
        return None
    features = {key: _finite(float(row[key])) for key in wire.HRV_FEATURE_KEYS}
    return wire.FeaturesSample(
        ts_ns=start_ns,
        window_s=window_s,
        n_beats=int(row["n_beats"]),
        n_rr=len(rr_ms),
        coverage=_finite(float(row["coverage"])),
        kept_fraction=_finite(float(row["kept_fraction"])),
        flags=int(row["flags"]),
        quality=tuple(row["quality"]),
        **features,
    )


class Minimiser:
    """Closes windows, sends their features, purges old raw data.

    Args:
        store: the local raw store.
        batcher: commits ``features`` messages (:meth:`Batcher.send`).
        routes: sensor key -> route; shared with ingest, so a withdrawn
            sensor (removed there) is skipped here too.
        window_s: window length in seconds.
        now_ns: the sample clock (wall time, or the demo's simulation clock).
        monotonic: for the tick and purge intervals (injected in tests).
        tick_interval_s: how often windows are looked at.
        purge_interval_s: how often expired raw rows are deleted.
        max_windows_per_tick: bound on work per loop turn (catch-up after downtime).
    """

    def __init__(
        self,
        *,
        store: RawStore,
        batcher: Batcher,
        routes: Mapping[str, Route],
        window_s: int,
        now_ns: Callable[[], int],
        monotonic: Callable[[], float] = time.monotonic,
        tick_interval_s: float = 1.0,
        purge_interval_s: float = 3600.0,
        max_windows_per_tick: int = 20,
    ) -> None:
        self.store = store
        self.batcher = batcher
        self.routes = routes
        self.window_ns = window_s * NS
        self.window_s = window_s
        self.now_ns = now_ns
        self.monotonic = monotonic
        self.tick_interval_s = tick_interval_s
        self.purge_interval_s = purge_interval_s
        self.max_windows_per_tick = max_windows_per_tick
        self.compute = load_window_function()  # fail at start, not at the first window
        self.windows_sent = 0
        self._next_tick = 0.0
        self._next_purge = 0.0

    def keep(self, route: Route, stream: str, samples: tuple[wire.Sample, ...]) -> None:
        """The batcher's ``raw_sink``: raw batches go to the local store."""
        assert route.participant is not None
        self.store.store(route.participant, route.device, stream, samples)

    def tick(self) -> int:
        """Send the features of every closed window (bounded); purge when due."""
        now = self.monotonic()
        if now >= self._next_purge:
            self._next_purge = now + self.purge_interval_s
            self.store.purge_expired()
        if now < self._next_tick:
            return 0
        self._next_tick = now + self.tick_interval_s
        sent = 0
        for route in list(self.routes.values()):
            while sent < self.max_windows_per_tick and self._close_one(route):
                sent += 1
        return sent

    def _close_one(self, route: Route) -> bool:
        """Send the device's next closed window; False if none is closed yet."""
        device = route.device
        done = self.store.done_until(device)
        first = self.store.first_beat(device, done)
        if first is None:
            return False
        start = first - first % self.window_ns
        end = start + self.window_ns
        newest = self.store.newest(device) or 0
        if newest < end + CLOSE_MARGIN_NS and self.now_ns() < end + self.window_ns:
            return False
        beat_ns, rr_ms = self.store.beats(device, start, end)
        sample = window_features(
            beat_ns, rr_ms, start_ns=start, window_s=self.window_s, window_function=self.compute
        )
        if sample is not None:
            self.batcher.send(route, "features", (sample,))
            self.windows_sent += 1
        self.store.mark_done(device, end)
        return True
