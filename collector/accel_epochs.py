"""Reduce PMD accelerometer frames to epoch records on the gateway.

Raw acceleration (50 Hz x 3 axes = 13 M samples a day per sensor) stays in
this process: only per-epoch features (:mod:`processing.features.accel`) and
non-wear flags come out, so by default nothing raw leaves the home. Not yet
wired into the collector's BLE loop or wire stream (a later step); the
interface is ``start`` / ``add_frame`` / ``close`` per sensor.

Per sensor:

* **Time.** A frame's ``sensor_ts_ns`` stamps its last sample; the others
  are ``1 / fs_hz`` apart before it. Sensor time maps to gateway time by an
  offset, estimated as the minimum of (gateway receive time - sensor time of
  the frame's last sample) over the last ``offset_frames`` frames: BLE
  latency is never negative, so the minimum is the offset plus the
  smallest latency (one connection interval, 7.5-50 ms), and the window lets
  the estimate follow a drifting sensor clock.
* **Segments.** A jump of more than ``max_gap_s`` between the expected and
  the actual time of a frame's first sample (lost notifications, reconnect,
  sensor clock reset) closes the segment: its partial epoch is dropped and
  its pending non-wear blocks are judged on what was seen. A new segment
  starts at the first sample at or after a 30-s boundary of gateway time,
  so epochs of all sensors line up.
* **Epochs.** Every ``30 * fs_hz`` samples give a 30-s record; two aligned
  30-s epochs (the first starting on a 60-s boundary) give a 60-s record.
  Counts are carried epoch to epoch (:class:`CountsStream`), so 60-s counts
  are exactly the sum of their two 30-s halves, as ActiGraph defines them.
* **Non-wear.** Per 30-s epoch the reducer keeps each axis's count, sum,
  sum of squares (about the segment's first sample), minimum and maximum;
  a 15-min block is judged on the 60-min window centred on it, combined from
  these sums, once the window's last 7.5-min half-block is in (22.5 min
  later) or when the segment closes. Same rule and thresholds as
  :func:`processing.features.accel.nonwear_blocks`.

Needs NumPy and SciPy (the ``minimise`` extra).
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from collector.gatt import PmdFrame, PmdMeasurementType
from collector.pmd import acc_scale_g
from processing.features.accel import (
    NONWEAR_MIN_AXES,
    NONWEAR_RANGE_MAX_G,
    NONWEAR_SD_MAX_G,
    CountsStream,
    angle_z_deg,
    enmo_mg,
    mad_mg,
)

__all__ = ["AccEpochReducer", "EpochRecord", "NonwearRecord"]

NS: Final = 1_000_000_000
EPOCH_S: Final = 30
_HALF_BLOCK_EPOCHS: Final = 15  # 7.5 min of 30-s epochs
_BLOCK_S: Final = 900


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """Features of one epoch; ``start_ns`` is gateway Unix time of its first sample."""

    sensor: str
    start_ns: int
    epoch_s: int
    n_samples: int
    features: dict[str, float]

    def to_json(self) -> str:
        """Compact JSON, features rounded to what the measurements resolve."""
        body: dict[str, object] = {
            "sensor": self.sensor,
            "start_ns": self.start_ns,
            "epoch_s": self.epoch_s,
        }
        for key, value in self.features.items():
            value = round(value, 3)
            body[key] = int(value) if value.is_integer() else value  # counts are whole
        return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class NonwearRecord:
    """Non-wear verdict for one 15-min block starting at ``start_ns`` (gateway time)."""

    sensor: str
    start_ns: int
    block_s: int
    nonwear: bool
    window_complete: bool  # False when the segment ended before the 60-min window did

    def to_json(self) -> str:
        """Compact JSON."""
        return json.dumps(
            {
                "sensor": self.sensor,
                "start_ns": self.start_ns,
                "block_s": self.block_s,
                "nonwear": self.nonwear,
                "window_complete": self.window_complete,
            },
            separators=(",", ":"),
        )


Record = EpochRecord | NonwearRecord


@dataclass(slots=True)
class _Stats:
    """Per-axis running sums of one 30-s epoch (values shifted by ``origin``)."""

    n: int
    s1: np.ndarray
    s2: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass(slots=True)
class _Segment:
    origin: np.ndarray  # first sample, subtracted before the sums of squares
    first_boundary: int  # index of the 30-s boundary the segment's first epoch starts on
    counts: CountsStream
    buf: list[np.ndarray] = field(default_factory=list)
    buffered: int = 0
    buf_start_ns: int = 0
    epochs_done: int = 0
    prev_epoch: np.ndarray | None = None  # previous 30-s raw samples (for 60-s MAD)
    prev_counts: np.ndarray | None = None
    prev_start_ns: int = 0
    stats: list[_Stats] = field(default_factory=list)
    stats_start_ns: list[int] = field(default_factory=list)
    stats_base: int = 0  # epochs already dropped from the front of ``stats``
    blocks_judged: int = 0


@dataclass(slots=True)
class _Sensor:
    fs_hz: float
    factor: float
    offsets: deque[int]
    last_sensor_ns: int | None = None
    segment: _Segment | None = None
    boundary: int | None = None  # 30-s boundary the next segment waits for


class AccEpochReducer:
    """Buffers ACC samples per sensor and emits epoch and non-wear records.

    Keyword-only settings: ``offset_frames`` frames in the clock-offset
    minimum, ``max_gap_s`` tolerated timing jump, and the non-wear thresholds
    (defaults as in :mod:`processing.features.accel`).
    """

    def __init__(
        self,
        *,
        offset_frames: int = 64,
        max_gap_s: float = 1.0,
        sd_max_g: float = NONWEAR_SD_MAX_G,
        range_max_g: float = NONWEAR_RANGE_MAX_G,
        min_axes: int = NONWEAR_MIN_AXES,
    ) -> None:
        self._offset_frames = offset_frames
        self._max_gap_ns = int(max_gap_s * NS)
        self._sd_max_g = sd_max_g
        self._range_max_g = range_max_g
        self._min_axes = min_axes
        self._sensors: dict[str, _Sensor] = {}

    def start(self, sensor: str, *, fs_hz: float, factor: float) -> None:
        """Begin (or restart) a sensor's stream: the sample rate asked for in
        the start request and the factor from its response."""
        if fs_hz <= 0 or not float(fs_hz * EPOCH_S).is_integer():
            raise ValueError(f"{fs_hz} Hz does not give whole 30-s epochs")
        self._sensors[sensor] = _Sensor(fs_hz, factor, deque(maxlen=self._offset_frames))

    def add_frame(self, sensor: str, frame: PmdFrame, received_ns: int) -> list[Record]:
        """Take one decoded ACC frame received at gateway time ``received_ns``."""
        st = self._sensors[sensor]
        if frame.measurement_type != PmdMeasurementType.ACC:
            raise ValueError(f"measurement type {frame.measurement_type} is not ACC")
        period_ns = NS / st.fs_hz
        n = len(frame.samples)
        first_sensor_ns = frame.sensor_ts_ns - round((n - 1) * period_ns)
        out: list[Record] = []
        if st.last_sensor_ns is not None:
            expected = st.last_sensor_ns + period_ns
            if abs(first_sensor_ns - expected) > self._max_gap_ns:
                out += self._close_segment(sensor, st)
                st.offsets.clear()
        st.last_sensor_ns = frame.sensor_ts_ns
        st.offsets.append(received_ns - frame.sensor_ts_ns)
        offset = min(st.offsets)
        acc_g = np.asarray(frame.samples, dtype=np.float64) * acc_scale_g(frame, st.factor)
        t_ns = first_sensor_ns + offset + np.round(np.arange(n) * period_ns).astype(np.int64)
        out += self._feed(sensor, st, acc_g, t_ns)
        return out

    def close(self, sensor: str) -> list[Record]:
        """End a sensor's stream (stop, disconnect): flush what can be judged."""
        st = self._sensors.pop(sensor, None)
        return [] if st is None else self._close_segment(sensor, st)

    # -- internals -----------------------------------------------------------------------

    def _feed(self, sensor: str, st: _Sensor, acc_g: np.ndarray, t_ns: np.ndarray) -> list[Record]:
        seg = st.segment
        if seg is None:
            if st.boundary is None:
                st.boundary = math.ceil(int(t_ns[0]) / (EPOCH_S * NS))
            boundary = st.boundary
            keep = t_ns >= boundary * EPOCH_S * NS
            if not keep.any():
                return []
            acc_g, t_ns = acc_g[keep], t_ns[keep]
            seg = st.segment = _Segment(
                origin=acc_g[0].copy(),
                first_boundary=boundary,
                counts=CountsStream(st.fs_hz, EPOCH_S),
            )
            seg.buf_start_ns = int(t_ns[0])
        out: list[Record] = []
        per_epoch = seg.counts.samples_per_epoch
        pos = 0
        while pos < acc_g.shape[0]:
            take = min(per_epoch - seg.buffered, acc_g.shape[0] - pos)
            if seg.buffered == 0:
                seg.buf_start_ns = int(t_ns[pos])
            seg.buf.append(acc_g[pos : pos + take])
            seg.buffered += take
            pos += take
            if seg.buffered == per_epoch:
                epoch = np.vstack(seg.buf)
                seg.buf, seg.buffered = [], 0
                out += self._epoch_done(sensor, st, seg, epoch)
        return out

    def _epoch_done(
        self, sensor: str, st: _Sensor, seg: _Segment, epoch: np.ndarray
    ) -> list[Record]:
        fs = st.fs_hz
        counts = seg.counts.push(epoch)
        start_ns = seg.buf_start_ns
        out: list[Record] = [self._record(sensor, start_ns, EPOCH_S, epoch, fs, counts)]
        boundary = seg.first_boundary + seg.epochs_done
        if boundary % 2 == 1 and seg.prev_epoch is not None and seg.prev_counts is not None:
            both = np.vstack([seg.prev_epoch, epoch])
            out.append(
                self._record(sensor, seg.prev_start_ns, 60, both, fs, seg.prev_counts + counts)
            )
        seg.prev_epoch, seg.prev_counts, seg.prev_start_ns = epoch, counts, start_ns
        seg.epochs_done += 1
        shifted = epoch - seg.origin
        seg.stats.append(
            _Stats(
                n=epoch.shape[0],
                s1=shifted.sum(axis=0),
                s2=(shifted**2).sum(axis=0),
                lo=epoch.min(axis=0),
                hi=epoch.max(axis=0),
            )
        )
        seg.stats_start_ns.append(start_ns)
        out += self._judge_blocks(sensor, seg, final=False)
        return out

    @staticmethod
    def _record(
        sensor: str, start_ns: int, epoch_s: int, acc: np.ndarray, fs: float, counts: np.ndarray
    ) -> EpochRecord:
        feats = {
            "enmo_mg": float(enmo_mg(acc, fs, epoch_s)[0]),
            "mad_mg": float(mad_mg(acc, fs, epoch_s)[0]),
            "counts_x": float(counts[0]),
            "counts_y": float(counts[1]),
            "counts_z": float(counts[2]),
            "counts_vm": float(np.sqrt((counts**2).sum())),
            "angle_z_deg": float(angle_z_deg(acc, fs, epoch_s)[0]),
        }
        return EpochRecord(sensor, start_ns, epoch_s, acc.shape[0], feats)

    def _judge_blocks(self, sensor: str, seg: _Segment, *, final: bool) -> list[Record]:
        out: list[Record] = []
        per_block = 2 * _HALF_BLOCK_EPOCHS
        while True:
            k = seg.blocks_judged
            lo = (2 * k - 3) * _HALF_BLOCK_EPOCHS
            hi = (2 * k + 5) * _HALF_BLOCK_EPOCHS  # exclusive: half-blocks 2k-3 .. 2k+4
            base = seg.stats_base
            have = base + len(seg.stats)
            if (k + 1) * per_block > have:
                return out  # the block itself is not complete
            if hi > have and not final:
                return out
            window = seg.stats[max(0, lo) - base : min(hi, have) - base]
            n = sum(s.n for s in window)
            s1 = sum((s.s1 for s in window), np.zeros(3))
            s2 = sum((s.s2 for s in window), np.zeros(3))
            sd = np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0.0))
            rng = np.max([s.hi for s in window], axis=0) - np.min([s.lo for s in window], axis=0)
            still = (sd < self._sd_max_g) & (rng < self._range_max_g)
            out.append(
                NonwearRecord(
                    sensor=sensor,
                    start_ns=seg.stats_start_ns[k * per_block - base],
                    block_s=_BLOCK_S,
                    nonwear=int(still.sum()) >= self._min_axes,
                    window_complete=hi <= have and lo >= 0,
                )
            )
            seg.blocks_judged += 1
            # the next block's window starts 1.5 blocks before it: drop older sums
            drop = max(0, (2 * (k + 1) - 3) * _HALF_BLOCK_EPOCHS) - base
            if drop > 0:
                del seg.stats[:drop], seg.stats_start_ns[:drop]
                seg.stats_base += drop

    def _close_segment(self, sensor: str, st: _Sensor) -> list[Record]:
        seg, st.segment = st.segment, None
        st.last_sensor_ns = st.boundary = None
        if seg is None:
            return []
        return self._judge_blocks(sensor, seg, final=True)
