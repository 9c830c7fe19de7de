"""Wearable descriptions from TOML tables or command-line options."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from wellsense_sim.physiology import Profile
from wellsense_sim.wearable import WearableConfig

_WEARABLE_FIELDS = {f.name for f in dataclasses.fields(WearableConfig)}
_PROFILE_FIELDS = {f.name for f in dataclasses.fields(Profile)}


class ConfigError(ValueError):
    """A wearable description is invalid; the message names the option."""


def wearable_from_dict(table: dict[str, Any], where: str = "wearable") -> WearableConfig:
    """Build a :class:`WearableConfig` from a TOML-like table.

    Keys are the :class:`WearableConfig` fields; ``profile`` is a sub-table of
    :class:`~wellsense_sim.physiology.Profile` fields.
    """
    unknown = set(table) - _WEARABLE_FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {sorted(unknown)}")
    if "address" not in table:
        raise ConfigError(f"{where}: 'address' is required")
    values = dict(table)
    values["address"] = str(values["address"]).upper()
    profile = values.pop("profile", {})
    bad = set(profile) - _PROFILE_FIELDS
    if bad:
        raise ConfigError(f"{where}.profile: unknown option(s) {sorted(bad)}")
    try:
        return WearableConfig(profile=Profile(**profile), **values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def participant_wearables(count: int, *, rsc: bool = True) -> list[WearableConfig]:
    """``count`` chest straps, one per participant, with different physiology."""
    out = []
    for i in range(1, count + 1):
        profile = Profile(rest_hr_day_bpm=62.0 + 4.0 * (i % 5),
                          rest_hr_night_bpm=50.0 + 3.0 * (i % 5),
                          sleep_start_h=22.5 + 0.5 * (i % 3),
                          sleep_end_h=6.5 + 0.5 * (i % 3))
        out.append(WearableConfig(
            address=f"C0:FF:EE:00:00:{i:02X}", name=f"WellSense HR P{i:02d}", seed=i,
            profile=profile, rsc=rsc, battery_pct=100.0 - 7.0 * (i % 4),
            rssi_dbm=-55 - 4 * (i % 6)))
    return out


def load_toml(path: str | Path) -> tuple[dict[str, Any], list[WearableConfig]]:
    """Read ``[emulator]`` options and ``[[wearable]]`` tables from a TOML file."""
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    unknown = set(doc) - {"emulator", "wearable"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {sorted(unknown)}")
    tables = [dict(t) for t in doc.get("wearable", [])]
    for t in tables:  # a relative recording path is relative to the TOML file
        if t.get("replay") and not Path(str(t["replay"])).is_absolute():
            t["replay"] = str(Path(path).parent / str(t["replay"]))
    wearables = [wearable_from_dict(t, f"wearable[{i}]") for i, t in enumerate(tables)]
    return dict(doc.get("emulator", {})), wearables
