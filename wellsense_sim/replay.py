"""Real RR recordings as a simulated strap's heart: read a file, yield its beats.

Formats (one number per line; blank and non-numeric lines are skipped, CRLF
and gzip are fine):

- PhysioNet nsr2db / chf2db as exported by the RHRV book (``*_rr_secs.txt.gz``):
  seconds, and the **first line is not an interval** but the time from the
  start of the record to the first beat;
- PhysioNet "RR interval time series from healthy subjects" (Irurzun et al.
  2021, ``NNN.txt``): integer milliseconds, no offset line.

``unit="auto"`` takes seconds when the median of the first values is below
10, and then (``skip_first=None``) drops the first line as the offset line;
both can be given explicitly.

What a strap would send during a gap of the Holter record (an "interval"
longer than ``max_rr_ms``: unannotated signal loss) is nothing: the beats in
it are unknown, so the replay treats the gap as no skin contact. Time moves
on by the gap, the beat that ends it is detected but carries no RR value
(the interval ending there is unknown), as with any contact loss.

Standard library only.
"""

from __future__ import annotations

import gzip
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Longer "intervals" are gaps in the Holter record (signal loss), not beats.
DEFAULT_MAX_RR_MS = 2000.0


class ReplayError(ValueError):
    """The recording cannot be replayed; the message names the file."""


def read_rr_ms(
    path: str | Path, *, unit: str = "auto", skip_first: bool | None = None
) -> list[float]:
    """RR intervals (ms) of a recording file, in order (see the module docstring)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ReplayError(f"{p}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    values: list[float] = []
    for line in raw.decode("utf-8-sig", errors="replace").splitlines():
        try:
            values.append(float(line.strip()))
        except ValueError:
            continue  # blank, or a stray line such as '@'
    if not values:
        raise ReplayError(f"{p}: no numbers in the file")
    if unit == "auto":
        unit = "s" if statistics.median(values[:1000]) < 10 else "ms"
    if unit not in ("s", "ms"):
        raise ReplayError(f"{p}: unit must be 'auto', 's' or 'ms', got {unit!r}")
    if skip_first is None:
        skip_first = unit == "s"
    if skip_first:
        values = values[1:]
    scale = 1000.0 if unit == "s" else 1.0
    return [v * scale for v in values]


@dataclass(frozen=True, slots=True)
class ReplayBeat:
    """One beat of the recording on the simulated timeline."""

    t_ns: int  # true time of the beat
    rr_ms: float  # the recorded interval that ends here (a gap's length after a gap)
    after_gap: bool  # ends a gap: detected, but the interval ending here is unknown


class Replay:
    """The beats of ``rr_ms[offset:offset+duration]`` from ``start_ns`` on.

    ``offset_s`` and ``duration_s`` are in recording time (sums of the
    intervals); ``duration_s <= 0`` plays to the end. Beat ``k`` happens at
    ``start_ns`` plus the sum of the selected intervals up to ``k``, each
    rounded to whole nanoseconds before summing (so truth times are exact
    integers and never drift by rounding).
    """

    def __init__(self, rr_ms: Sequence[float], *, start_ns: int, offset_s: float = 0.0,
                 duration_s: float = 0.0, max_rr_ms: float = DEFAULT_MAX_RR_MS) -> None:
        if offset_s < 0:
            raise ReplayError(f"replay_offset_s must be >= 0, got {offset_s}")
        self.max_rr_ms = max_rr_ms
        elapsed_ms, i = 0.0, 0
        while i < len(rr_ms) and elapsed_ms + rr_ms[i] <= offset_s * 1000:
            elapsed_ms += rr_ms[i]
            i += 1
        if i >= len(rr_ms):
            raise ReplayError(f"replay_offset_s={offset_s} is past the end of the recording")
        j, span_ms = i, 0.0
        while j < len(rr_ms) and (duration_s <= 0 or span_ms + rr_ms[j] <= duration_s * 1000):
            span_ms += rr_ms[j]
            j += 1
        self.rr_ms: tuple[float, ...] = tuple(rr_ms[i:j])
        self.start_ns = start_ns
        self._next = 0
        self._t_ns = start_ns

    @property
    def finished(self) -> bool:
        """Every beat has been returned."""
        return self._next >= len(self.rr_ms)

    def in_gap(self, t_ns: int) -> bool:
        """Whether ``t_ns`` falls inside a gap of the record (or after its end)."""
        if self.finished:
            return True
        rr = self.rr_ms[self._next]
        return rr > self.max_rr_ms and t_ns > self._t_ns

    def beats_until(self, t_ns: int) -> list[ReplayBeat]:
        """Beats not yet returned at or before ``t_ns``."""
        out: list[ReplayBeat] = []
        while self._next < len(self.rr_ms):
            rr = self.rr_ms[self._next]
            t = self._t_ns + round(rr * 1_000_000)
            if t > t_ns:
                break
            out.append(ReplayBeat(t, rr, rr > self.max_rr_ms))
            self._t_ns = t
            self._next += 1
        return out
