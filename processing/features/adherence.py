"""Adherence: non-wear detection, wear time, completeness and why data is missing.

Non-wear (after Choi et al. 2011): a run of at least ``min_run`` minutes of
zero counts is non-wear; inside it, up to ``spike_minutes`` consecutive
non-zero minutes are tolerated when the ``spike_window`` minutes before and
after them are all zero (a knock on a device lying on a table). Missing minutes
(NaN) are neither wear nor zeros. Choi's algorithm was validated on hip-worn
ActiGraph counts; for wrist devices the defaults are a documented assumption.

Missing-data causes (one label per time slot), in the order they are decided:
``uplink_down`` (gateway alive but could not deliver), ``gateway_down`` (no
gateway heartbeat), ``sensor_battery`` (sensor not connected and its last
battery reading was low), ``out_of_range`` (gateway alive, sensor not
connected), ``not_worn`` (sensor connected but no skin contact / non-wear),
else ``ok`` when data is present and ``unknown`` when it is not.

References: Choi L, Liu Z, Matthews CE, Buchowski MS (2011) Med Sci Sports
Exerc 43:357-364. Troiano RP et al. (2008) Med Sci Sports Exerc 40:181-188
(valid day = at least 10 h wear).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ._types import BoolArray, FloatArray

NONWEAR_MIN_RUN = 90
SPIKE_MINUTES = 2
SPIKE_WINDOW = 30
LOW_BATTERY_PCT = 10.0
MINUTES_PER_DAY = 1440


class Missing(enum.IntEnum):
    """Label of one time slot."""

    OK = 0
    NOT_WORN = 1
    OUT_OF_RANGE = 2
    SENSOR_BATTERY = 3
    GATEWAY_DOWN = 4
    UPLINK_DOWN = 5
    UNKNOWN = 6


def _runs(mask: BoolArray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each run of True in ``mask``."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def nonwear_minutes(
    counts: FloatArray,
    *,
    min_run: int = NONWEAR_MIN_RUN,
    spike_minutes: int = SPIKE_MINUTES,
    spike_window: int = SPIKE_WINDOW,
) -> BoolArray:
    """Boolean mask of non-wear minutes in a regular minute series of counts."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    zero = c == 0  # NaN compares False: missing is not zero
    nonzero = np.isfinite(c) & ~zero
    zeroish = zero.copy()
    # tolerate short spikes that have all-zero surroundings on both sides
    zc = np.concatenate(([0], np.cumsum(zero)))
    starts, ends = _runs(nonzero)
    short = (ends - starts) <= spike_minutes
    for s, e in zip(starts[short], ends[short], strict=True):
        lo, hi = s - spike_window, e + spike_window
        if (
            lo >= 0
            and hi <= n
            and zc[s] - zc[lo] == spike_window
            and zc[hi] - zc[e] == spike_window
        ):
            zeroish[s:e] = True
    out = np.zeros(n, dtype=bool)
    starts, ends = _runs(zeroish)
    for s, e in zip(starts, ends, strict=True):
        if e - s >= min_run:
            out[s:e] = True
    return out


@dataclass(frozen=True, slots=True)
class DailyAdherence:
    day: np.ndarray  # datetime64[D]
    observed_min: np.ndarray  # minutes with a value
    wear_min: np.ndarray
    completeness: FloatArray  # observed / 1440
    wear_fraction: FloatArray  # wear / 1440


def daily_adherence(minute: np.ndarray, counts: FloatArray, wear: BoolArray) -> DailyAdherence:
    """Per calendar day: observed minutes, wear minutes and their share of 24 h."""
    m = np.asarray(minute, dtype="datetime64[m]")
    days = m.astype("datetime64[D]")
    uniq, idx = np.unique(days, return_inverse=True)
    observed = np.bincount(idx, weights=np.isfinite(counts), minlength=uniq.size)
    worn = np.bincount(idx, weights=wear & np.isfinite(counts), minlength=uniq.size)
    return DailyAdherence(
        day=uniq,
        observed_min=observed.astype(np.int64),
        wear_min=worn.astype(np.int64),
        completeness=observed / MINUTES_PER_DAY,
        wear_fraction=worn / MINUTES_PER_DAY,
    )


def label_missing(
    *,
    data_present: BoolArray,
    gateway_alive: BoolArray | None = None,
    uplink_ok: BoolArray | None = None,
    sensor_connected: BoolArray | None = None,
    battery_pct: FloatArray | None = None,
    worn: BoolArray | None = None,
    low_battery_pct: float = LOW_BATTERY_PCT,
) -> np.ndarray:
    """Label each slot with a :class:`Missing` code from aligned evidence arrays.

    Every argument is one value per slot (e.g. per minute). Absent evidence
    (``None``) is not used; ``battery_pct`` is the last known level (NaN if
    never seen). A slot with data can still be ``not_worn``.
    """
    present = np.asarray(data_present, dtype=bool)
    n = present.size

    def arr(x: BoolArray | None, default: bool) -> BoolArray:
        return np.full(n, default) if x is None else np.asarray(x, dtype=bool)

    gw = arr(gateway_alive, True)
    up = arr(uplink_ok, True)
    conn = arr(sensor_connected, True)
    wear = arr(worn, True)
    batt = np.full(n, np.nan) if battery_pct is None else np.asarray(battery_pct, dtype=float)
    label = np.where(present, Missing.OK, Missing.UNKNOWN).astype(np.int64)
    missing = ~present
    not_worn = conn & ~wear
    label[not_worn] = Missing.NOT_WORN
    out_of_range = missing & gw & ~conn
    label[out_of_range] = Missing.OUT_OF_RANGE
    with np.errstate(invalid="ignore"):
        label[out_of_range & (batt <= low_battery_pct)] = Missing.SENSOR_BATTERY
    label[missing & ~gw] = Missing.GATEWAY_DOWN
    label[missing & gw & ~up] = Missing.UPLINK_DOWN
    return label


def missing_summary(labels: np.ndarray) -> dict[str, int]:
    """Count of slots per label name."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(Missing))
    return {m.name.lower(): int(counts[m]) for m in Missing}
