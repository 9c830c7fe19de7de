"""Column names and types of every measurement researchers read (see docs/storage.md).

Types are fixed per measurement, not guessed from each query, so every chunk
of a long export has the same columns in the same order and the same dtypes
(a Parquet file needs one schema; a CSV needs one header).
"""

from __future__ import annotations

from typing import Final

from processing.features.hrv import HRV_KEYS

# field kinds: "int" -> pandas Int64 (nullable), "float" -> float64,
# "bool" -> pandas boolean (nullable), "str" -> object (str)
Kind = str

TAGS: Final[dict[str, tuple[str, ...]]] = {
    "hr": ("participant", "device"),
    "rr": ("participant", "device"),
    "activity": ("participant", "device"),
    "device_status": ("participant", "device", "event"),
    "hrv_window": ("participant", "window"),
    "daily": ("participant", "tz"),
    "alert": ("participant", "rule", "severity"),
    "self_report": ("participant", "instrument"),
}

DAILY_COMPLETENESS_KEYS: Final = ("hr_samples", "hr_valid_samples", "wear_min", "rr_beats")
DAILY_HR_KEYS: Final = ("hr_mean", "hr_p5", "hr_p50", "hr_p95")

FIELDS: Final[dict[str, tuple[tuple[str, Kind], ...]]] = {
    "hr": (("hr_bpm", "int"), ("contact", "bool"), ("energy_kj", "int"), ("seq", "int")),
    "rr": (("rr_ms", "float"), ("seq", "int")),
    "activity": (
        ("cadence_spm", "float"),
        ("speed_mps", "float"),
        ("steps", "int"),
        ("counts", "int"),
        ("seq", "int"),
    ),
    "device_status": (
        ("battery_pct", "int"),
        ("rssi_dbm", "int"),
        ("detail", "str"),
        ("seq", "int"),
    ),
    "hrv_window": (
        *((k, "float") for k in HRV_KEYS),
        ("n_beats", "int"),
        ("n_rr", "int"),
        ("coverage", "float"),
        ("kept_fraction", "float"),
        ("flags", "int"),
        ("quality", "str"),
    ),
    "daily": (
        *((k, "int") for k in DAILY_COMPLETENESS_KEYS),
        ("steps_total", "int"),
        *((k, "float") for k in DAILY_HR_KEYS),
    ),
    "alert": (("message", "str"), ("value", "float")),
}

RAW: Final = ("hr", "rr", "activity", "device_status")
FEATURES: Final = ("hrv_window", "daily")
# self_report has one field per questionnaire item, so it is read in long form:
SELF_REPORT_COLUMNS: Final = ("time", "participant", "instrument", "item", "value")


def columns(measurement: str) -> list[str]:
    """Column order of a wide DataFrame: ``time``, the tags, the fields."""
    return ["time", *TAGS[measurement], *(name for name, _ in FIELDS[measurement])]


def kinds(measurement: str) -> dict[str, Kind]:
    out: dict[str, Kind] = {"time": "time"}
    out.update({tag: "str" for tag in TAGS[measurement]})
    out.update(dict(FIELDS[measurement]))
    return out
