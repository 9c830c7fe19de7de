"""Acceleration of a simulated wearer, from the physiology model's states.

Per sample, in milli-g on the sensor's axes (x, y, z):

* posture: awake and upright, gravity lies on -y (a chest strap or arm band
  upright); asleep (``asleep_fraction > 0.5``) the wearer lies, gravity on
  +-z, with a posture change (side to side) every 40-120 min;
* daily-life fidgeting while awake: slow sway (a few degrees, ~0.1-0.3 Hz)
  plus 15 mg noise, enough for an awake z-angle and counts > 0;
* a bout: a step-frequency oscillation (1.6 Hz walking, 2.6 Hz running)
  of 150-600 mg by the activity level;
* not worn: lying on a table, perfectly still but for 2 mg sensor noise;
* asleep: still but for 2 mg noise.

Deterministic per (seed, time). Standard library only.
"""

from __future__ import annotations

import math
import random

from wellsense_sim.physiology import Model

NS_PER_S = 1_000_000_000


class MotionModel:
    """Acceleration samples (mg) of one wearer at any time."""

    def __init__(self, model: Model, seed: int) -> None:
        self._model = model
        self._rng = random.Random(f"{seed}:motion")
        self._seed = seed

    def _lying_side(self, t_ns: int) -> float:
        """+1 or -1: which side the sleeper lies on (changes every 40-120 min)."""
        block = t_ns // (40 * 60 * NS_PER_S)
        return 1.0 if random.Random(f"{self._seed}:side:{block // 2}").random() < 0.5 else -1.0

    def sample_mg(self, t_ns: int) -> tuple[int, int, int]:
        m = self._model
        noise = self._rng.gauss
        if not m.worn(t_ns):
            return (round(noise(0, 2)), round(noise(0, 2)), round(1000 + noise(0, 2)))
        _, sod = m.local(t_ns)
        if m.asleep_fraction(sod) > 0.5:
            side = self._lying_side(t_ns)
            return (round(120 + noise(0, 2)), round(noise(0, 2)), round(side * 990 + noise(0, 2)))
        level, bout = m.activity(t_ns)
        t_s = t_ns / NS_PER_S
        sway = math.radians(25) * math.sin(2 * math.pi * 0.013 * t_s) + math.radians(8) * math.sin(
            2 * math.pi * 0.21 * t_s
        )
        x, y, z = 0.0, -1000 * math.cos(sway), 1000 * math.sin(sway)
        if level > 0.05:
            f_hz = 2.6 if bout is not None and bout.running else 1.6
            amp = 150 + 450 * level
            y += amp * math.sin(2 * math.pi * f_hz * t_s)
            x += 0.4 * amp * math.sin(math.pi * f_hz * t_s)
        return (round(x + noise(0, 15)), round(y + noise(0, 15)), round(z + noise(0, 15)))

    def steps_per_s(self, t_ns: int) -> float:
        """Step rate while walking/running (0 otherwise), for step counters."""
        if not self._model.worn(t_ns):
            return 0.0
        level, bout = self._model.activity(t_ns)
        if level <= 0.1:
            return 0.0
        return (2.6 if bout is not None and bout.running else 1.6) * min(1.0, level + 0.2)
