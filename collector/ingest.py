"""Turn the device manager's raw records and events into wire samples.

Runs on the consumer side of the BLE queue (never in a bleak callback):
parses GATT payloads, places the beats of each sensor's RR intervals with one
:class:`~collector.beats.BeatClock` per connection (a new session resets it),
derives contact lost/restored events from the sensor's own contact bit, keeps
per-sensor health, and hands samples to the batcher.
A payload that does not parse is counted and logged, never fatal.

Physically impossible values are dropped here, before they can poison a batch
(processing rejects them; see docs/wire.md, "Per-sample validation"): a heart
rate above :data:`collector.wire.HR_BPM_MAX` drops the whole notification
(its RR values come from the same glitching measurement) and the beat clock
never sees it, so the next notification starts a new timeline as after a
notification lost on the air; an RR value below :data:`collector.wire.RR_MS_MIN`
(the strap's 0 or 1/1024 s) is dropped alone. Both are counted per sensor
(``dropped_samples`` in health messages).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from collector import ble_events as ev
from collector import gatt, redact, wire
from collector.batcher import Batcher, Route
from collector.beats import MAX_LATENCY_NS, BeatClock
from collector.gatt_uuids import Characteristic
from collector.profile_ingest import ProfileStreams

log = logging.getLogger(__name__)

_HRM = Characteristic.HEART_RATE_MEASUREMENT.uuid
_RSC = Characteristic.RSC_MEASUREMENT.uuid


@dataclass
class SensorState:
    """What the gateway knows about one sensor, for health messages."""

    connected: bool = False
    contact: bool | None = None
    last_sample_ns: int | None = None
    battery_pct: int | None = None
    samples: int = 0
    parse_errors: int = 0
    #: impossible heart rates (whole notifications) and RR values dropped
    dropped_samples: int = 0
    last_rsc_ns: int | None = None
    step_carry: float = 0.0  # fraction of a step not yet reported
    beat_clock: BeatClock = field(default_factory=BeatClock)
    beat_session: int | None = None  # the connection the beat clock's timeline belongs to


@dataclass
class Ingest:
    """Maps :mod:`collector.ble_events` items to wire samples on ``batcher``."""

    batcher: Batcher
    routes: Mapping[str, Route]  # sensor key -> participant and device id
    now_ns: Callable[[], int]
    sensors: dict[str, SensorState] = field(default_factory=dict)
    #: BLE latency bound of the beat clocks, on the sample clock (a compressed
    #: simulation clock stretches real latency by its time scale)
    beat_latency_ns: int = MAX_LATENCY_NS
    #: PMD ACC/PPI and InfiniTime motion streams (collector.profiles)
    profile_streams: ProfileStreams = field(default_factory=ProfileStreams)

    def __post_init__(self) -> None:
        for key in self.routes:
            state = self.sensors.setdefault(key, SensorState())
            state.beat_clock = BeatClock(max_latency_ns=self.beat_latency_ns)

    def handle(self, item: ev.BleItem) -> None:
        route = self.routes.get(item.sensor_key)
        if route is None:
            log.warning("item for unconfigured sensor %r dropped", item.sensor_key)
            return
        state = self.sensors[item.sensor_key]
        if isinstance(item, ev.RawNotification):
            self._notification(item, route, state)
        else:
            self._event(item, route, state)

    def _notification(self, item: ev.RawNotification, route: Route, state: SensorState) -> None:
        try:
            if item.char_uuid == _HRM:
                hrm = gatt.parse_heart_rate_measurement(item.data)
                self._contact(hrm.contact, item.received_ns, route, state)
                if hrm.hr_bpm > wire.HR_BPM_MAX:
                    self._dropped(item.sensor_key, state, 1 + len(hrm.rr_ms), "hr_bpm")
                    return
                rr_ms = tuple(rr for rr in hrm.rr_ms if rr >= wire.RR_MS_MIN)
                if len(rr_ms) < len(hrm.rr_ms):
                    self._dropped(item.sensor_key, state, len(hrm.rr_ms) - len(rr_ms), "rr_ms")
                if state.beat_session != item.session:
                    state.beat_clock.reset()
                    state.beat_session = item.session
                beats = state.beat_clock.add(item.received_ns, rr_ms)
                self.batcher.add(
                    route,
                    "hr",
                    wire.HrSample(
                        ts_ns=item.received_ns,
                        hr_bpm=hrm.hr_bpm,
                        contact=hrm.contact,
                        energy_kj=hrm.energy_kj,
                        rr_ms=rr_ms,
                        beat_ns=beats[-1] if beats else None,
                        rr_break=state.beat_clock.last_break if beats else None,
                    ),
                )
            elif item.char_uuid == _RSC:
                rsc = gatt.parse_rsc_measurement(item.data)
                self.batcher.add(
                    route,
                    "activity",
                    wire.ActivitySample(
                        ts_ns=item.received_ns,
                        cadence_spm=float(rsc.cadence_per_min),
                        speed_mps=rsc.speed_m_s,
                        steps=self._steps(rsc.cadence_per_min, item, state),
                        counts=None,
                    ),
                )
            elif self.profile_streams.handles(item.char_uuid):
                if state.beat_session != item.session:  # PPI intervals use the beat clock
                    state.beat_clock.reset()
                    state.beat_session = item.session
                emitted = self.profile_streams.notification(
                    item,
                    state.beat_clock,
                    lambda stream, sample: self.batcher.add(route, stream, sample),
                )
                if not emitted:
                    return
            else:
                return
        except gatt.GattParseError as exc:
            state.parse_errors += 1
            log.warning("sensor %s: unparsable notification dropped: %s", item.sensor_key, exc)
            return
        state.samples += 1
        state.last_sample_ns = item.received_ns

    @staticmethod
    def _dropped(sensor_key: str, state: SensorState, count: int, field_name: str) -> None:
        before = state.dropped_samples
        state.dropped_samples += count
        # Logged when the count passes a power of two: a strap glitching every
        # second must not flood the log.
        if state.dropped_samples.bit_length() > before.bit_length():
            log.warning(
                "sensor %s: impossible %s dropped (%d so far)",
                sensor_key,
                field_name,
                state.dropped_samples,
            )

    @staticmethod
    def _steps(cadence_per_min: int, item: ev.RawNotification, state: SensorState) -> int | None:
        """Steps since the previous RSC sample of this connection, from the cadence.

        RSC reports an instantaneous cadence, not a step count, so steps are
        integrated (cadence x elapsed time), carrying fractions forward so
        nothing is lost to rounding. The first sample of a connection has no
        interval to cover and reports None.
        """
        previous = state.last_rsc_ns
        state.last_rsc_ns = item.received_ns
        if previous is None or item.received_ns <= previous:
            state.step_carry = 0.0
            return None
        exact = cadence_per_min * (item.received_ns - previous) / 60e9 + state.step_carry
        steps = int(exact)
        state.step_carry = exact - steps
        return steps

    def _contact(self, contact: bool | None, ts_ns: int, route: Route, state: SensorState) -> None:
        if contact is None or contact == state.contact:
            return
        previous, state.contact = state.contact, contact
        if previous is None and contact:
            return  # first reading after start: nothing was lost
        self._status(route, ts_ns, "contact_restored" if contact else "contact_lost")

    def _status(
        self,
        route: Route,
        ts_ns: int,
        event: str,
        *,
        battery_pct: int | None = None,
        rssi_dbm: int | None = None,
        detail: str = "",
    ) -> None:
        self.batcher.add(
            route,
            "status",
            wire.StatusSample(
                ts_ns=ts_ns,
                event=event,
                battery_pct=battery_pct,
                rssi_dbm=rssi_dbm,
                detail=redact.addresses(detail)[:200],  # exception texts carry addresses
            ),
        )

    def _event(self, item: ev.SensorEvent, route: Route, state: SensorState) -> None:
        ts = item.ts_ns
        if isinstance(item, ev.SensorConnected):
            state.connected = True
            self._status(route, ts, "connected", detail=f"session {item.session}")
        elif isinstance(item, ev.SensorDisconnected):
            state.connected = False
            state.contact = None
            state.last_rsc_ns = None  # no steps are claimed across a gap
            state.beat_session = None  # the next notification starts a new timeline
            stats = state.beat_clock.stats
            log.info(
                "sensor %s: beat clock so far: %d beats, %d slides, breaks %s",
                item.sensor_key,
                stats.beats,
                stats.slides,
                dict(sorted(stats.breaks.items())),
            )
            self._status(route, ts, "disconnected", detail=item.reason)
            self.profile_streams.stopped(
                item.sensor_key, lambda stream, sample: self.batcher.add(route, stream, sample)
            )
        elif isinstance(item, ev.StreamStarted):
            self.profile_streams.started(item)
        elif isinstance(item, ev.Gap):
            log.info(
                "sensor %s: gap of %.1f s (%s)",
                item.sensor_key,
                (item.end_ns - item.start_ns) / 1e9,
                item.reason,
            )
        elif isinstance(item, ev.ConnectFailed):
            self._status(
                route, ts, "connect_failed", detail=f"attempt {item.attempt}: {item.reason}"
            )
        elif isinstance(item, ev.SensorNotFound):
            self._status(route, ts, "not_found", detail=f"attempt {item.attempt}")
        elif isinstance(item, ev.RssiReading):
            self._status(route, ts, "rssi", rssi_dbm=max(-127, min(20, item.rssi_dbm)))
        elif isinstance(item, ev.BatteryLevel):
            state.battery_pct = item.battery_pct
            self._status(route, ts, "battery", battery_pct=item.battery_pct)
        elif isinstance(item, ev.DeviceInfo):
            parts = [item.manufacturer, item.model, item.firmware]
            location = _location_name(item.body_location)
            detail = " / ".join(p for p in parts if p) + (f" @ {location}" if location else "")
            self._status(route, ts, "device_info", detail=detail)

    def health_sensors(self) -> dict[str, wire.SensorHealth]:
        now = self.now_ns()
        return {
            key: wire.SensorHealth(
                last_sample_age_s=None
                if s.last_sample_ns is None
                else max(0.0, (now - s.last_sample_ns) / 1e9),
                battery_pct=s.battery_pct,
                dropped_samples=s.dropped_samples,
            )
            for key, s in self.sensors.items()
        }


def _location_name(code: int | None) -> str | None:
    if code is None:
        return None
    try:
        return gatt.BodySensorLocation(code).name.lower()
    except ValueError:
        return f"location {code}"
