"""Wire samples from the streams device profiles start beyond HR/RSC.

The consumer side of :mod:`collector.profiles`, called by
:class:`collector.ingest.Ingest`:

* PMD ``acc`` frames -> :class:`collector.accel_epochs.AccEpochReducer` ->
  ``accel`` samples (epochs and non-wear verdicts). Raw acceleration never
  leaves this object: data minimisation by construction.
* PMD ``ppi`` frames -> ``hr`` samples whose ``rr_ms`` are the usable
  pulse-to-pulse intervals (:func:`collector.profiles.polar_verity.ppi_intervals`),
  placed by the sensor's beat clock like Heart Rate Measurement RR values.
* InfiniTime step count -> ``activity`` samples with the steps since the
  previous notification. Raw motion stays on the gateway (it is not sampled
  regularly enough for epoch features).

The reducer needs NumPy (the ``minimise`` extra); it is imported only when
an accelerometer stream starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector import ble_events as ev
from collector import gatt, wire
from collector.beats import BeatClock
from collector.pmd import PMD_DATA_UUID
from collector.profiles.pinetime import (
    RAW_MOTION_UUID,
    STEP_COUNT_UUID,
    parse_step_count,
    step_increase,
)
from collector.profiles.polar_verity import ppi_intervals, usable_rr_ms

if TYPE_CHECKING:
    from collector.accel_epochs import AccEpochReducer, Record

log = logging.getLogger(__name__)

Emit = Callable[[str, wire.Sample], None]
"""Where samples go: ``(stream, sample)``."""


@dataclass
class _SensorStreams:
    session: int | None = None
    acc_started: bool = False
    last_steps: int | None = None
    ppi_frames: int = 0
    ppi_usable: int = 0
    ppi_total: int = 0


@dataclass
class ProfileStreams:
    """Per-sensor state of the profile streams; one per collector."""

    sensors: dict[str, _SensorStreams] = field(default_factory=dict)
    reducer: AccEpochReducer | None = None

    def handles(self, char_uuid: str) -> bool:
        return char_uuid in (PMD_DATA_UUID, STEP_COUNT_UUID, RAW_MOTION_UUID)

    def started(self, item: ev.StreamStarted) -> None:
        st = self.sensors.setdefault(item.sensor_key, _SensorStreams())
        st.session = item.session
        if item.stream == "acc" and item.fs_hz is not None:
            if self.reducer is None:
                from collector.accel_epochs import AccEpochReducer

                self.reducer = AccEpochReducer()
            self.reducer.start(item.sensor_key, fs_hz=item.fs_hz, factor=item.factor or 1.0)
            st.acc_started = True
        if item.stream == "steps":
            st.last_steps = None

    def stopped(self, sensor_key: str, emit: Emit) -> None:
        """The sensor disconnected: flush what the reducer can still judge."""
        st = self.sensors.get(sensor_key)
        if st is None:
            return
        st.last_steps = None
        if st.acc_started and self.reducer is not None:
            _emit_records(self.reducer.close(sensor_key), emit)
            st.acc_started = False

    def notification(self, item: ev.RawNotification, beat_clock: BeatClock, emit: Emit) -> int:
        """Turn one notification into samples; returns how many were emitted.

        Raises :class:`collector.gatt.GattParseError` on a malformed payload.
        """
        st = self.sensors.setdefault(item.sensor_key, _SensorStreams())
        if item.char_uuid == STEP_COUNT_UUID:
            count = parse_step_count(item.data)
            steps = step_increase(st.last_steps, count)
            st.last_steps = count
            emit(
                "activity",
                wire.ActivitySample(
                    ts_ns=item.received_ns,
                    cadence_spm=None,
                    speed_mps=None,
                    steps=steps,
                    counts=None,
                ),
            )
            return 1
        if item.char_uuid == RAW_MOTION_UUID:
            return 0  # stays on the gateway
        frame = gatt.parse_pmd_frame(item.data)
        if frame.measurement_type == gatt.PmdMeasurementType.ACC:
            if not st.acc_started or self.reducer is None:
                return 0  # no start response seen: the factor is unknown
            return _emit_records(
                self.reducer.add_frame(item.sensor_key, frame, item.received_ns), emit
            )
        if frame.measurement_type == gatt.PmdMeasurementType.PPI:
            intervals = ppi_intervals(frame)
            rr_ms = tuple(usable_rr_ms(intervals))
            st.ppi_frames += 1
            st.ppi_total += len(intervals)
            st.ppi_usable += len(rr_ms)
            if not intervals:
                return 0
            contacts = [i.contact for i in intervals if i.contact is not None]
            beats = beat_clock.add(item.received_ns, rr_ms) if rr_ms else []
            emit(
                "hr",
                wire.HrSample(
                    ts_ns=item.received_ns,
                    hr_bpm=max(0, min(300, intervals[-1].hr_bpm)),
                    contact=contacts[-1] if contacts else None,
                    energy_kj=None,
                    rr_ms=rr_ms,
                    beat_ns=beats[-1] if beats else None,
                    rr_break=beat_clock.last_break if beats else None,
                ),
            )
            return 1
        return 0


def _emit_records(records: list[Record], emit: Emit) -> int:
    from collector.accel_epochs import EpochRecord

    for r in records:
        if isinstance(r, EpochRecord):
            f = r.features
            emit(
                "accel",
                wire.AccelEpochSample(
                    ts_ns=r.start_ns,
                    epoch_s=r.epoch_s,
                    n_samples=r.n_samples,
                    enmo_mg=round(max(0.0, f["enmo_mg"]), 3),
                    mad_mg=round(max(0.0, f["mad_mg"]), 3),
                    counts_x=round(f["counts_x"], 3),
                    counts_y=round(f["counts_y"], 3),
                    counts_z=round(f["counts_z"], 3),
                    counts_vm=round(f["counts_vm"], 3),
                    angle_z_deg=round(max(-90.0, min(90.0, f["angle_z_deg"])), 3),
                ),
            )
        else:
            emit(
                "accel",
                wire.NonwearSample(
                    ts_ns=r.start_ns,
                    block_s=r.block_s,
                    nonwear=r.nonwear,
                    window_complete=r.window_complete,
                ),
            )
    return len(records)
