"""What a condition may read: feature names from the catalogue and the engine's status variables.

Nothing here is a copy of the feature list: daily feature names come from
:mod:`processing.features.catalog` at import time, so a feature added there
is usable in rules at once. On top of the catalogue:

* ``<feature>_z`` and ``<feature>_robust_z`` for every numeric catalogue
  feature: the deviation from the participant's own baseline, as defined by
  the catalogue's ``z`` and ``robust_z`` entries
  (:mod:`processing.features.baseline`). The engine computes them from the
  daily history it is given when the caller does not supply them.
* derived daily variables (:data:`DERIVED_DAILY`) and status variables
  (:data:`STATUS`), documented in docs/rules.md.

Each variable has a type (``number`` or ``bool``), a kind (``daily``: one
value per participant and calendar day; ``status``: the current state of a
participant, device or gateway) and the range its values can take, which the
linter uses to flag impossible thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from processing.features.catalog import CATALOG, FeatureSpec

Type = Literal["number", "bool", "label"]
Kind = Literal["daily", "status"]
Scope = Literal["participant", "device", "gateway"]
INF: Final = math.inf


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    type: Type
    kind: Kind
    unit: str
    lo: float
    hi: float
    scopes: frozenset[str]
    doc: str


_PARTICIPANT = frozenset({"participant"})

# Catalogue entries that are not numbers a rule can compare.
_NON_NUMERIC_UNITS: Final = frozenset({"label", "local time"})
# Catalogue entries that are transforms of other features, not features themselves.
_TRANSFORMS: Final = ("z", "robust_z")
# Ranges by unit; names override below where the unit alone does not say.
_UNIT_RANGE: Final[dict[str, tuple[float, float]]] = {
    "%": (0.0, 100.0),
    "bpm": (0.0, 300.0),
    "ms": (0.0, INF),
    "ms^2": (0.0, INF),
    "min": (0.0, 1440.0),
    "steps": (0.0, INF),
    "counts/min": (0.0, INF),
    "steps/min": (0.0, INF),
    "h": (0.0, 24.0),
    "windows": (0.0, INF),
    "-100..100": (-100.0, 100.0),
    "SD": (-INF, INF),
}
_NAME_RANGE: Final[dict[str, tuple[float, float]]] = {
    "kept_fraction": (0.0, 1.0),
    "coverage": (0.0, 1.0),
    "completeness": (0.0, 1.0),
    "wear_fraction": (0.0, 1.0),
    "counts_zero_fraction": (0.0, 1.0),
    "steps_zero_fraction": (0.0, 1.0),
    "hrv_night_usable_fraction": (0.0, 1.0),
    "ln_rmssd_night": (0.0, 12.0),  # RMSSD 1 ms .. the wire's cap of 1e5 ms
    "sleep_efficiency": (0.0, 1.0),
    "is": (0.0, 1.0),
    "iv": (0.0, 2.0),
    "ra": (0.0, 1.0),
    "lf_hf": (0.0, INF),
    "sampen": (0.0, INF),
    "dfa_alpha1": (-INF, INF),
    "sleep_in_bed_min": (0.0, 1440.0),
    "sleep_asleep_min": (0.0, 1440.0),
    "sleep_onset_h": (-12.0, 12.0),
    "sleep_offset_h": (-12.0, 12.0),
    "sleep_midpoint_h": (-12.0, 12.0),
    "hr_dip_pct": (-100.0, 100.0),
    "sleep_nights_7d": (0.0, 7.0),
    "social_jetlag_h": (0.0, 12.0),
    **{
        f"{s}_{k}_7d": r
        for s in ("steps", "counts")
        for k, r in (("is", (0.0, 1.0)), ("iv", (0.0, 2.0)), ("ra", (0.0, 1.0)))
    },
}

#: Daily variables the engine derives (the InfluxDB runner computes them from stored points).
DERIVED_DAILY: Final = (
    Variable(
        "hrv_good_fraction",
        "number",
        "daily",
        "1",
        0.0,
        1.0,
        _PARTICIPANT,
        "share of the day's HRV windows (with RR data) whose RMSSD is defined (no "
        "too_few_beats, low_coverage, many_artefacts, no_beats or constant_rr flag)",
    ),
    Variable(
        "hrv_windows",
        "number",
        "daily",
        "windows",
        0.0,
        INF,
        _PARTICIPANT,
        "number of the day's HRV windows with RR data",
    ),
)

#: Status variables: the current state, evaluated on every update and on every tick.
STATUS: Final = (
    Variable(
        "minutes_since_last_sample",
        "number",
        "status",
        "min",
        0.0,
        INF,
        frozenset({"participant"}),
        "minutes since the newest heart-rate sample of any of the participant's devices "
        "(worn or not); grows on every tick while nothing arrives",
    ),
    Variable(
        "minutes_since_worn",
        "number",
        "status",
        "min",
        0.0,
        INF,
        frozenset({"participant"}),
        "minutes since the newest heart-rate sample taken while worn (hr_bpm > 0 and skin "
        "contact not reported lost)",
    ),
    Variable(
        "wear_hours_24h",
        "number",
        "status",
        "h",
        0.0,
        24.0,
        frozenset({"participant"}),
        "hours of the trailing 24 h with at least one worn heart-rate sample in the minute",
    ),
    Variable(
        "battery_pct",
        "number",
        "status",
        "%",
        0.0,
        100.0,
        frozenset({"device"}),
        "the device's latest reported battery level",
    ),
    Variable(
        "gateway_online",
        "bool",
        "status",
        "",
        0.0,
        1.0,
        frozenset({"gateway"}),
        "the gateway's retained state is 'online'",
    ),
    Variable(
        "minutes_since_gateway_seen",
        "number",
        "status",
        "min",
        0.0,
        INF,
        frozenset({"gateway"}),
        "minutes since the gateway's newest health report or 'online' state",
    ),
)

#: Engine inputs that are timestamps; the variable is (now - timestamp) in minutes.
TIMESTAMP_INPUTS: Final = {
    "last_sample_ns": "minutes_since_last_sample",
    "last_worn_ns": "minutes_since_worn",
    "gateway_seen_ns": "minutes_since_gateway_seen",
}


def _catalog_variables(catalog: tuple[FeatureSpec, ...]) -> list[Variable]:
    out: list[Variable] = []
    for spec in catalog:
        if spec.name in _TRANSFORMS:
            continue
        numeric = spec.unit not in _NON_NUMERIC_UNITS
        lo, hi = _NAME_RANGE.get(spec.name, _UNIT_RANGE.get(spec.unit, (-INF, INF)))
        doc = f"{spec.definition} ({spec.window}; catalogue v{spec.version})"
        out.append(
            Variable(
                spec.name,
                "number" if numeric else "label",  # labels are refused by the checker
                "daily",
                spec.unit,
                lo,
                hi,
                _PARTICIPANT,
                doc,
            )
        )
        if numeric:
            for suffix in _TRANSFORMS:
                out.append(
                    Variable(
                        f"{spec.name}_{suffix}",
                        "number",
                        "daily",
                        "SD",
                        -INF,
                        INF,
                        _PARTICIPANT,
                        f"{suffix} of {spec.name} against the participant's baseline",
                    )
                )
    return out


def build() -> dict[str, Variable]:
    """Every variable a rule may read, by name."""
    table: dict[str, Variable] = {}
    for var in (*_catalog_variables(CATALOG), *DERIVED_DAILY, *STATUS):
        table.setdefault(var.name, var)
    return table


VARIABLES: Final = build()

#: Whitelisted functions: name -> (minimum, maximum) number of arguments. All take
#: and return numbers; nothing else can be called.
FUNCTIONS: Final[dict[str, tuple[int, int]]] = {"abs": (1, 1), "min": (2, 8), "max": (2, 8)}

Z_SUFFIXES: Final = tuple(f"_{s}" for s in _TRANSFORMS)


def base_feature(name: str) -> tuple[str, str] | None:
    """``('rmssd_ms', 'z')`` for ``rmssd_ms_z``; None for a name that is not a z-score."""
    for suffix in sorted(_TRANSFORMS, key=len, reverse=True):
        if name.endswith(f"_{suffix}"):
            base = name[: -len(suffix) - 1]
            if base in VARIABLES and VARIABLES[base].kind == "daily":
                return base, suffix
    return None
