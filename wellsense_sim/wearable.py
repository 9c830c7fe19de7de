"""A simulated wearable: physiology turned into GATT payloads over time.

Independent of D-Bus: :class:`Wearable.advance` is called with the current
simulated time and returns the notifications that span produced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wellsense_sim import encode
from wellsense_sim.physiology import NS_PER_S, S_PER_DAY, BeatGenerator, Model, Profile

_ADDRESS_RE = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


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

    def __post_init__(self) -> None:
        if not _ADDRESS_RE.match(self.address):
            raise ValueError(f"address must look like AA:BB:CC:DD:EE:FF, got {self.address!r}")
        if self.body_location not in encode.BODY_LOCATION:
            raise ValueError(f"body_location must be one of {sorted(encode.BODY_LOCATION)}")
        if not 0 <= self.battery_pct <= 100:
            raise ValueError("battery_pct must be within 0..100")

    @property
    def serial(self) -> str:
        """Serial number, derived from the address unless given."""
        return self.serial_number or self.address.replace(":", "")


@dataclass(frozen=True, slots=True)
class Tick:
    """Notifications produced by one span of simulated time."""

    hr: tuple[bytes, ...]
    rsc: bytes | None
    beats: int  # RR values carried


class Wearable:
    """State of one simulated wearable over simulated time."""

    def __init__(self, config: WearableConfig, start_ns: int) -> None:
        self.config = config
        self.model = Model(config.profile, config.seed)
        self._beats = BeatGenerator(self.model, start_ns)
        self._last_ns = start_ns
        self._battery_base = (start_ns, config.battery_pct)
        self._energy_j = 0.0
        self._distance_m = 0.0
        self._count = 0
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
    def worn(self, t_ns: int) -> bool:
        """Whether the strap is on (model or override)."""
        return self.model.worn(t_ns) if self.worn_override is None else self.worn_override

    def contact(self, t_ns: int, model_contact: bool) -> bool:
        """Whether skin contact is detected, given the model's answer."""
        if not self.worn(t_ns):
            return False
        if self.contact_override is not None:
            return self.contact_override
        # a forced "worn" ignores the model's non-wear but keeps its contact losses
        return model_contact or (self.worn_override is True and not self.model.worn(t_ns))

    # --- payloads --------------------------------------------------------
    def advance(self, now_ns: int) -> Tick:
        """Generate the notifications for (last call, ``now_ns``]."""
        span_s = max(0.0, (now_ns - self._last_ns) / NS_PER_S)
        self._last_ns = max(self._last_ns, now_ns)
        rr = [b.rr_ms for b in self._beats.beats_until(now_ns) if self.contact(b.t_ns, b.contact)]
        worn = self.worn(now_ns)
        contact = self.contact(now_ns, self.model.contact(now_ns))
        level, bout = self.model.activity(now_ns)
        self._energy_j += span_s * (80 + 600 * level) if worn else 0.0
        self._count += 1
        hr = round(60_000 * len(rr) / sum(rr)) if rr else (
            round(self.model.target_hr_bpm(now_ns)) if worn else 0)
        glitch = self.config.glitch_every
        if glitch and self._count % glitch == 0:
            hr = 0xFFFF  # physically impossible: a glitch the pipeline must survive
        every = self.config.energy_every
        energy = round(self._energy_j / 1000) if every and self._count % every == 0 else None
        size = encode.max_rr_per_notification(energy=energy is not None)
        chunks = [rr[i:i + size] for i in range(0, len(rr), size)] or [[]]
        hr_payloads = tuple(
            encode.heart_rate_measurement(hr, contact=contact, rr_ms=chunk,
                                          energy_kj=energy if i == 0 else None)
            for i, chunk in enumerate(chunks)
        )
        return Tick(hr_payloads, self._rsc(worn, level, bool(bout and bout.running), span_s),
                    len(rr))

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
