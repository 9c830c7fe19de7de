"""A deterministic model of one participant's heart and movement over days.

Pure functions of simulated time and a seed: no I/O, no clock. The model is
deliberately simple but has the features a processing pipeline must cope
with:

- a day/night rhythm: resting HR falls during the sleep window and RR
  variability rises (vagal dominance at night);
- respiratory sinus arrhythmia (RR lengthens on expiration) plus a slower
  ~0.1 Hz baroreflex (Mayer wave) component and AR(1) beat-to-beat noise;
- activity bouts (walks, occasional runs) that raise HR with first-order
  on/off kinetics and damp RSA, with walking/running cadence and speed;
- ectopic beats: a premature beat followed by a compensatory pause, so that
  the two intervals sum to about two normal ones;
- non-wear periods (strap off: shower, charging) and short contact losses
  (a dry electrode while moving).

Every simulated day has its own plan drawn from ``Random(f"{seed}:{day}")``,
so a day looks the same no matter when the simulation started.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000
S_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Profile:
    """Physiological parameters of one simulated participant."""

    rest_hr_day_bpm: float = 68.0
    rest_hr_night_bpm: float = 55.0
    sleep_start_h: float = 23.0  # local time, hours
    sleep_end_h: float = 7.0
    utc_offset_h: float = 0.0
    rsa_depth: float = 0.04  # RR modulation amplitude as a fraction, awake at rest
    night_hrv_factor: float = 1.7  # RSA and noise multiplier during sleep
    resp_rate_day_hz: float = 0.25
    resp_rate_night_hz: float = 0.22
    mayer_depth: float = 0.015
    noise_fraction: float = 0.012
    walk_hr_delta_bpm: float = 28.0
    run_hr_delta_bpm: float = 70.0
    activity_bouts_per_day: float = 5.0
    run_probability: float = 0.15
    ectopic_per_beat: float = 0.002
    nonwear_bouts_per_day: float = 1.0  # besides the morning shower
    contact_losses_per_hour: float = 0.6


@dataclass(frozen=True, slots=True)
class Bout:
    """An activity bout, times in seconds of the local day."""

    start_s: float
    end_s: float
    intensity: float  # 0..1 within its kind
    running: bool


@dataclass(frozen=True, slots=True)
class DayPlan:
    """What happens on one local day."""

    bouts: tuple[Bout, ...]
    nonwear: tuple[tuple[float, float], ...]
    contact_losses: tuple[tuple[float, float], ...]


def _in_any(sod: float, spans: tuple[tuple[float, float], ...]) -> bool:
    return any(a <= sod < b for a, b in spans)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method; means here are small
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass(slots=True)
class Model:
    """Deterministic state-free queries of the participant at simulated time."""

    profile: Profile
    seed: int
    _plans: dict[int, DayPlan] = field(default_factory=dict)

    # --- plans -----------------------------------------------------------
    def local(self, t_ns: int) -> tuple[int, float]:
        """(local day index, seconds of that day) at ``t_ns``."""
        s = t_ns / NS_PER_S + self.profile.utc_offset_h * 3600
        day = math.floor(s / S_PER_DAY)
        return day, s - day * S_PER_DAY

    def plan(self, day: int) -> DayPlan:
        """The (cached) plan of a local day."""
        found = self._plans.get(day)
        if found is None:
            if len(self._plans) > 8:
                self._plans.clear()
            found = self._plans[day] = self._make_plan(day)
        return found

    def _make_plan(self, day: int) -> DayPlan:
        p = self.profile
        rng = random.Random(f"{self.seed}:{day}")
        wake = p.sleep_end_h * 3600
        bed = p.sleep_start_h * 3600 if p.sleep_start_h > p.sleep_end_h else S_PER_DAY
        shower = wake + rng.uniform(0.3, 1.0) * 3600
        nonwear = [(shower, shower + rng.uniform(15, 40) * 60)]
        for _ in range(_poisson(rng, p.nonwear_bouts_per_day)):
            start = rng.uniform(wake, bed - 3600)
            nonwear.append((start, start + rng.uniform(10, 60) * 60))
        bouts = []
        for _ in range(_poisson(rng, p.activity_bouts_per_day)):
            start = rng.uniform(wake + 3600, bed - 3600)
            running = rng.random() < p.run_probability
            minutes = rng.uniform(10, 40) if running else rng.uniform(5, 45)
            bouts.append(Bout(start, start + minutes * 60, rng.uniform(0.5, 1.0), running))
        losses = []
        for _ in range(_poisson(rng, p.contact_losses_per_hour * (bed - wake) / 3600)):
            # losses happen mostly while moving
            if bouts and rng.random() < 0.6:
                b = rng.choice(bouts)
                start = rng.uniform(b.start_s, b.end_s)
            else:
                start = rng.uniform(wake, bed)
            losses.append((start, start + rng.uniform(5, 60)))
        return DayPlan(tuple(sorted(bouts, key=lambda b: b.start_s)), tuple(sorted(nonwear)),
                       tuple(sorted(losses)))

    # --- states ----------------------------------------------------------
    def asleep_fraction(self, sod: float) -> float:
        """0 awake .. 1 asleep, with 30-minute transitions around the sleep window."""
        p = self.profile
        h = sod / 3600

        def ramp(x: float) -> float:  # 0 before, 1 after, linear over 0.5 h
            return min(1.0, max(0.0, x / 0.5))

        start, end = p.sleep_start_h, p.sleep_end_h
        since_start = (h - start) % 24
        until_end = (end - h) % 24
        window = (end - start) % 24
        if since_start <= window:
            return min(ramp(since_start), ramp(until_end))
        return 0.0

    def activity(self, t_ns: int) -> tuple[float, Bout | None]:
        """(activity level 0..1, current bout) with 60 s on and 120 s off kinetics."""
        day, sod = self.local(t_ns)
        level, current = 0.0, None
        for b in self.plan(day).bouts:
            if b.start_s <= sod < b.end_s:
                level = max(level, b.intensity * (1 - math.exp(-(sod - b.start_s) / 60)))
                current = b
            elif b.end_s <= sod < b.end_s + 600:
                on = b.intensity * (1 - math.exp(-(b.end_s - b.start_s) / 60))
                level = max(level, on * math.exp(-(sod - b.end_s) / 120))
        return level, current

    def worn(self, t_ns: int) -> bool:
        """Whether the strap is on the body (not in a non-wear period)."""
        day, sod = self.local(t_ns)
        return not _in_any(sod, self.plan(day).nonwear)

    def contact(self, t_ns: int) -> bool:
        """Whether the electrodes have skin contact (worn and not in a contact loss)."""
        day, sod = self.local(t_ns)
        plan = self.plan(day)
        return not _in_any(sod, plan.nonwear) and not _in_any(sod, plan.contact_losses)

    def target_hr_bpm(self, t_ns: int) -> float:
        """Mean HR the heart tends to at ``t_ns`` (circadian + activity)."""
        p = self.profile
        _, sod = self.local(t_ns)
        night = self.asleep_fraction(sod)
        # afternoon peak of the awake rhythm, +-3 bpm
        circadian = 3.0 * math.sin(2 * math.pi * (sod / S_PER_DAY - 0.375))
        rest = (1 - night) * (p.rest_hr_day_bpm + circadian) + night * p.rest_hr_night_bpm
        level, bout = self.activity(t_ns)
        delta = p.run_hr_delta_bpm if bout is not None and bout.running else p.walk_hr_delta_bpm
        return rest + level * delta


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat: its time, the RR interval that ended at it, and contact."""

    t_ns: int
    rr_ms: float
    contact: bool
    ectopic: bool


@dataclass(slots=True)
class BeatGenerator:
    """Generates successive beats from ``start_ns``; deterministic for a seed."""

    model: Model
    start_ns: int
    _rng: random.Random = field(init=False)
    _t_ns: int = field(init=False)
    _resp_phase: float = 0.0
    _mayer_phase: float = 0.0
    _noise: float = 0.0
    _compensate_ms: float | None = None
    _pending: Beat | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.model.seed}:beats:{self.start_ns}")
        self._t_ns = self.start_ns

    def next_beat(self) -> Beat:
        """Generate the next beat."""
        m, p, rng = self.model, self.model.profile, self._rng
        t = self._t_ns
        _, sod = m.local(t)
        night = m.asleep_fraction(sod)
        level, _ = m.activity(t)
        hrv = 1 + (p.night_hrv_factor - 1) * night
        rr0 = 60_000.0 / m.target_hr_bpm(t)
        self._noise = 0.7 * self._noise + rng.gauss(0.0, p.noise_fraction * hrv)
        rsa = p.rsa_depth * hrv * (1 - 0.8 * level)
        # expiration lengthens RR; sin(phase) > 0 taken as expiration
        rr = rr0 * (1 + rsa * math.sin(self._resp_phase)
                    + p.mayer_depth * math.sin(self._mayer_phase) + self._noise)
        ectopic = False
        if self._compensate_ms is not None:
            rr, self._compensate_ms = self._compensate_ms, None
        elif rng.random() < p.ectopic_per_beat:
            premature = rr * rng.uniform(0.55, 0.75)
            self._compensate_ms = 2 * rr - premature
            rr, ectopic = premature, True
        rr = min(2000.0, max(250.0, rr))
        resp_hz = (1 - night) * p.resp_rate_day_hz + night * p.resp_rate_night_hz
        resp_hz *= 1 + 0.6 * level  # breathing speeds up with exertion
        self._resp_phase = (self._resp_phase + 2 * math.pi * resp_hz * rr / 1000) % (2 * math.pi)
        self._mayer_phase = (self._mayer_phase + 2 * math.pi * 0.1 * rr / 1000) % (2 * math.pi)
        self._t_ns = t + round(rr * 1_000_000)
        return Beat(self._t_ns, rr, m.contact(self._t_ns), ectopic)

    def beats_until(self, t_ns: int) -> list[Beat]:
        """All beats not yet returned that happen at or before ``t_ns``."""
        out: list[Beat] = []
        while True:
            if self._pending is None:
                self._pending = self.next_beat()
            if self._pending.t_ns > t_ns:
                return out
            out.append(self._pending)
            self._pending = None
