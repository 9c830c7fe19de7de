"""A simulated wearable: physiology turned into GATT payloads over time.

Independent of D-Bus: the emulator asks :meth:`Wearable.strap_send` for each
Heart Rate Measurement when the strap's cadence says one is due, and
:meth:`Wearable.advance_body` for movement (RSC) now and then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wellsense_sim import encode
from wellsense_sim.physiology import NS_PER_S, S_PER_DAY, BeatGenerator, Model, Profile
from wellsense_sim.replay import DEFAULT_MAX_RR_MS, Replay, ReplayError, read_rr_ms
from wellsense_sim.strap import (
    MAX_RR_PER_NOTIFICATION,
    StrapCadence,
    StrapNotification,
    StrapParams,
)

_ADDRESS_RE = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


#: Device models the emulator can be (see ``WearableConfig.device``).
DEVICE_MODELS = frozenset({"strap", "polar_h10", "polar_verity", "pinetime"})


@dataclass(frozen=True, slots=True)
class WearableConfig:
    """What a simulated wearable is and how it behaves.

    Args:
        address: Bluetooth address, ``AA:BB:CC:DD:EE:FF``.
        name: advertised local name.
        seed: makes the physiology reproducible.
        rsc: expose the Running Speed and Cadence service.
        battery_pct: battery level at start.
        battery_drain_pct_per_day: per simulated day.
        rssi_dbm: mean advertised signal strength.
        energy_every: include Energy Expended in every n-th HR notification (0: never).
        glitch_every: every n-th HR notification carries a glitch heart rate of
            65535 bpm (uint16), as a strap with a bad contact can (0: never).
        advertise_while_connected: most straps stop advertising once connected.
        period_s: Heart Rate Measurement period on the strap's own clock.
        drift_ppm: how fast the strap's clock runs (RR values are measured on it).
        latency_min_ms, latency_max_ms: BLE latency, uniform in this range
            (simulated time; delivery waits until the sim clock reaches it).
        loss: probability that a notification is lost on the air.
        max_rr: RR values one notification carries at most (the rest wait).
        replay: an RR recording to play instead of the physiology model
            (see :mod:`wellsense_sim.replay`); ``""``: the model.
        replay_offset_s, replay_duration_s: which part of it (recording
            seconds; duration 0: to the end).
        replay_unit: ``"auto"``, ``"s"`` or ``"ms"``.
        replay_max_rr_ms: longer values are gaps of the record (no contact).
        device: the device model emulated: ``"strap"`` (HRS, RSC), ``"polar_h10"``
            (+ PMD accelerometer), ``"polar_verity"`` (+ PMD PPI and accelerometer;
            its Heart Rate Measurements carry no RR) or ``"pinetime"`` (+ InfiniTime
            Motion service).
    """

    address: str
    name: str = "WellSense HR"
    seed: int = 0
    profile: Profile = field(default_factory=Profile)
    rsc: bool = True
    battery_pct: float = 100.0
    battery_drain_pct_per_day: float = 12.0
    rssi_dbm: int = -60
    body_location: str = "chest"
    manufacturer: str = "WellSense Sim"
    model_number: str = "WS-HR1"
    serial_number: str = ""
    firmware_revision: str = "1.0.0"
    energy_every: int = 10
    glitch_every: int = 0
    advertise_while_connected: bool = False
    period_s: float = 1.0
    drift_ppm: float = 0.0
    latency_min_ms: float = 0.0
    latency_max_ms: float = 50.0
    loss: float = 0.0
    max_rr: int = MAX_RR_PER_NOTIFICATION
    replay: str = ""
    replay_offset_s: float = 0.0
    replay_duration_s: float = 0.0
    replay_unit: str = "auto"
    replay_max_rr_ms: float = DEFAULT_MAX_RR_MS
    device: str = "strap"

    def __post_init__(self) -> None:
        if not _ADDRESS_RE.match(self.address):
            raise ValueError(f"address must look like AA:BB:CC:DD:EE:FF, got {self.address!r}")
        if self.body_location not in encode.BODY_LOCATION:
            raise ValueError(f"body_location must be one of {sorted(encode.BODY_LOCATION)}")
        if not 0 <= self.battery_pct <= 100:
            raise ValueError("battery_pct must be within 0..100")
        if self.device not in DEVICE_MODELS:
            raise ValueError(f"device must be one of {sorted(DEVICE_MODELS)}, "
                             f"got {self.device!r}")
        self.strap_check()

    def strap_check(self) -> None:
        """Raise ValueError if the strap options are invalid."""
        StrapParams(period_s=self.period_s, drift_ppm=self.drift_ppm,
                    latency_ms=(self.latency_min_ms, self.latency_max_ms), loss=self.loss,
                    max_rr=self.max_rr)
        if self.replay_unit not in ("auto", "s", "ms"):
            raise ValueError(f"replay_unit must be auto, s or ms, got {self.replay_unit!r}")
        if self.replay_offset_s < 0 or self.replay_duration_s < 0:
            raise ValueError("replay_offset_s and replay_duration_s must be >= 0")

    @property
    def serial(self) -> str:
        """Serial number, derived from the address unless given."""
        return self.serial_number or self.address.replace(":", "")


@dataclass(frozen=True, slots=True)
class HrNotification:
    """One Heart Rate Measurement of a strap connection: payload and ground truth."""

    note: StrapNotification  # what the strap sent, when, and the true beat times
    payload: bytes
    contact: bool


class Wearable:
    """State of one simulated wearable over simulated time.

    The heart is either the physiology model or, with ``config.replay``, a
    real RR recording that starts playing when the first strap connection
    starts (:meth:`start_strap`). Heart Rate Measurements follow the strap's
    own cadence (:mod:`wellsense_sim.strap`); Running Speed and Cadence,
    energy and battery advance with :meth:`advance_body`.
    """

    def __init__(self, config: WearableConfig, start_ns: int) -> None:
        self.config = config
        self.model = Model(config.profile, config.seed)
        self._beats = BeatGenerator(self.model, start_ns)
        self._replay_rr: list[float] | None = None
        self.replay: Replay | None = None
        if config.replay:
            try:
                self._replay_rr = read_rr_ms(config.replay, unit=config.replay_unit)
                # check offset/duration now, so a bad option fails at start
                Replay(self._replay_rr, start_ns=start_ns, offset_s=config.replay_offset_s,
                       duration_s=config.replay_duration_s, max_rr_ms=config.replay_max_rr_ms)
            except ReplayError as exc:
                raise ValueError(str(exc)) from None
        self._last_ns = start_ns
        self._battery_base = (start_ns, config.battery_pct)
        self._energy_j = 0.0
        self._distance_m = 0.0
        self._count = 0
        self._last_hr = 0
        self._strap_starts = 0
        #: ``None`` follows the model; ``True``/``False`` force the state.
        self.contact_override: bool | None = None
        self.worn_override: bool | None = None

    # --- battery ---------------------------------------------------------
    def battery_pct(self, now_ns: int) -> int:
        """Battery level now, draining linearly with simulated time."""
        t0, pct0 = self._battery_base
        days = (now_ns - t0) / (S_PER_DAY * NS_PER_S)
        return max(0, min(100, round(pct0 - self.config.battery_drain_pct_per_day * days)))

    def set_battery(self, pct: float, now_ns: int) -> None:
        """Set the battery level now; it keeps draining from there."""
        self._battery_base = (now_ns, max(0.0, min(100.0, pct)))

    # --- state -----------------------------------------------------------
    def _model_worn(self, t_ns: int) -> bool:
        # a replayed recording is worn throughout (its gaps are contact losses)
        return self._replay_rr is not None or self.model.worn(t_ns)

    def worn(self, t_ns: int) -> bool:
        """Whether the strap is on (model or override)."""
        return self._model_worn(t_ns) if self.worn_override is None else self.worn_override

    def contact(self, t_ns: int, model_contact: bool) -> bool:
        """Whether skin contact is detected, given the model's answer."""
        if not self.worn(t_ns):
            return False
        if self.contact_override is not None:
            return self.contact_override
        # a forced "worn" ignores the model's non-wear but keeps its contact losses
        return model_contact or (self.worn_override is True and not self._model_worn(t_ns))

    def _model_contact(self, t_ns: int) -> bool:
        if self.replay is not None:
            return not self.replay.in_gap(t_ns)
        if self._replay_rr is not None:
            return False  # the recording has not started
        return self.model.contact(t_ns)

    # --- heart rate: the strap's own cadence -------------------------------
    def strap_params(self) -> StrapParams:
        """The strap behaviour configured for this wearable."""
        c = self.config
        return StrapParams(period_s=c.period_s, drift_ppm=c.drift_ppm,
                           latency_ms=(c.latency_min_ms, c.latency_max_ms), loss=c.loss,
                           max_rr=c.max_rr, seed=f"{c.seed}:{c.address}")

    def start_strap(self, now_ns: int) -> StrapCadence:
        """A new connection's notification schedule, starting now.

        Beats before ``now_ns`` are never sent. A replayed recording starts
        playing at the first connection (its first interval ends one RR after
        ``now_ns``) and runs on in true time across reconnections.
        """
        self._strap_starts += 1
        if self._replay_rr is not None and self.replay is None:
            c = self.config
            self.replay = Replay(self._replay_rr, start_ns=now_ns, offset_s=c.replay_offset_s,
                                 duration_s=c.replay_duration_s, max_rr_ms=c.replay_max_rr_ms)
        self._heart_until(now_ns)  # beats while nobody listened are gone
        return StrapCadence(self.strap_params(), start_ns=now_ns)

    def _heart_until(self, t_ns: int) -> list[tuple[int, bool, bool]]:
        """(true time, detected, ends a gap) of each beat not yet returned up to ``t_ns``."""
        if self.replay is not None:
            return [(b.t_ns, self.contact(b.t_ns, True), b.after_gap)
                    for b in self.replay.beats_until(t_ns)]
        if self._replay_rr is not None:
            return []
        return [(b.t_ns, self.contact(b.t_ns, b.contact), False)
                for b in self._beats.beats_until(t_ns)]

    def strap_send(self, cadence: StrapCadence) -> HrNotification:
        """Detect the beats up to the cadence's next send time and send one notification."""
        due = cadence.next_send_ns
        for t_ns, detected, after_gap in self._heart_until(due):
            if not detected or after_gap:
                cadence.miss()
            if detected:
                cadence.detect((t_ns,))
        note = cadence.send()
        contact = self.contact(due, self._model_contact(due))
        if note.rr_ms:
            hr = round(60_000 * len(note.rr_ms) / sum(note.rr_ms))
        elif not self.worn(due):
            hr = 0  # worn without contact: the strap still reports its estimate
        elif self.replay is None:
            hr = round(self.model.target_hr_bpm(due))
        else:
            hr = self._last_hr
        self._last_hr = hr
        self._count += 1
        glitch = self.config.glitch_every
        if glitch and self._count % glitch == 0:
            hr = 0xFFFF  # physically impossible: a glitch the pipeline must survive
        every = self.config.energy_every
        energy = round(self._energy_j / 1000) if every and self._count % every == 0 else None
        # a Verity Sense gives its beats as PMD PPI only, not in the HR service
        rr_ms = () if self.config.device == "polar_verity" else note.rr_ms
        payload = encode.heart_rate_measurement(hr, contact=contact, rr_ms=rr_ms,
                                                energy_kj=energy)
        return HrNotification(note, payload, contact)

    # --- the rest of the body: movement, energy ----------------------------
    @property
    def body_ns(self) -> int:
        """Sim time the body (movement, energy) was last advanced to."""
        return self._last_ns

    def advance_body(self, now_ns: int) -> bytes | None:
        """Advance movement and energy to ``now_ns``; the RSC payload (``None``: no RSC)."""
        span_s = max(0.0, (now_ns - self._last_ns) / NS_PER_S)
        self._last_ns = max(self._last_ns, now_ns)
        worn = self.worn(now_ns)
        if self._replay_rr is not None:
            level, running = 0.0, False  # a recording has no movement
        else:
            level, bout = self.model.activity(now_ns)
            running = bool(bout and bout.running)
        self._energy_j += span_s * (80 + 600 * level) if worn else 0.0
        return self._rsc(worn, level, running, span_s)

    def _rsc(self, worn: bool, level: float, running: bool, span_s: float) -> bytes | None:
        if not self.config.rsc:
            return None
        moving = worn and level > 0.1
        if not moving:
            speed, cadence = 0.0, 0.0
        elif running:
            speed, cadence = 2.2 + 1.4 * level, 150 + 20 * level
        else:
            speed, cadence = 0.9 + 0.6 * level, 95 + 20 * level
        self._distance_m += speed * span_s
        stride = speed * 60 / cadence if cadence else 0.0  # metres per counted step
        return encode.rsc_measurement(speed_m_s=speed, cadence_per_min=cadence,
                                      running=moving and running, stride_m=stride,
                                      total_distance_m=self._distance_m)

    def static_values(self) -> dict[str, bytes]:
        """Read-only characteristic values by 16-bit UUID (e.g. ``"2a29"``)."""
        c = self.config
        values = {
            "2a38": encode.body_sensor_location(c.body_location),
            "2a29": encode.utf8(c.manufacturer),
            "2a24": encode.utf8(c.model_number),
            "2a25": encode.utf8(c.serial),
            "2a26": encode.utf8(c.firmware_revision),
        }
        if c.rsc:
            values["2a54"] = encode.rsc_feature()
        return values
