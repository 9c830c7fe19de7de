"""One name, one meaning: step- and count-based activity never share a name."""

from __future__ import annotations

import numpy as np
import pytest

from processing.dailyfeatures import ACTIVITY_FIELDS, BASELINE_FEATURES, OPTIONAL_FIELDS
from processing.features.activity import ACTIVITY_KEYS, activity_keys, daily_activity
from processing.features.catalog import BY_NAME, CATALOG
from processing.rules.vocabulary import VARIABLES

OLD_NAMES = ("activity_mean", "activity_sd", "zero_fraction", "mvpa_min", "sedentary_min")


def test_catalogue_names_are_unique_and_the_ambiguous_ones_are_gone() -> None:
    assert len(BY_NAME) == len(CATALOG)
    for name in OLD_NAMES:
        assert name not in BY_NAME
        assert name not in VARIABLES and f"{name}_z" not in VARIABLES


def test_activity_names_say_what_is_counted() -> None:
    for spec in (s for s in CATALOG if s.module == "activity" and s.name != "steps"):
        kind = spec.name.split("_", 1)[0]
        assert kind in ("counts", "steps"), spec.name
        if spec.unit.endswith("/min"):
            assert spec.unit == f"{kind}/min", spec.name


def test_depresjon_evidence_is_attached_to_count_features_only() -> None:
    # Garcia-Ceja et al. 2018 validated the three on Depresjon's accelerometer counts
    cited = {s.name for s in CATALOG if "Garcia-Ceja" in s.reference}
    assert cited == {"counts_mean_per_min", "counts_sd_per_min", "counts_zero_fraction"}


@pytest.mark.parametrize("kind", ["counts", "steps"])
def test_daily_activity_keys_carry_the_kind(kind: str) -> None:
    minute = np.datetime64("2025-11-26T00:00", "m") + np.arange(1440)
    values = np.where(np.arange(1440) % 2, 120.0, 0.0)
    out = daily_activity(minute, values, kind=kind)  # type: ignore[arg-type]
    assert set(out.features) == set(activity_keys(kind))  # type: ignore[arg-type]
    assert out.features[f"{kind}_mean_per_min"][0] == pytest.approx(60.0)
    assert out.features[f"{kind}_zero_fraction"][0] == pytest.approx(0.5)


def test_service_and_pipeline_use_their_own_names() -> None:
    assert all(name.startswith("steps_") for name in ACTIVITY_FIELDS)
    assert all(k.startswith("counts_") for k in ACTIVITY_KEYS if k != "steps")
    for name in (*BASELINE_FEATURES, *OPTIONAL_FIELDS):
        base = name.removesuffix("_robust_z").removesuffix("_z")
        assert base in BY_NAME or base in ("hr_mean", "hr_p5", "hr_p50", "hr_p95"), name


def test_rules_vocabulary_lists_the_daily_features() -> None:
    for name in ("ln_rmssd_night", "hrv_night_windows", "hrv_night_usable_fraction"):
        assert VARIABLES[name].kind == "daily"
    assert (
        VARIABLES["hrv_night_usable_fraction"].lo,
        VARIABLES["hrv_night_usable_fraction"].hi,
    ) == (
        0.0,
        1.0,
    )
    assert VARIABLES["ln_rmssd_night"].unit == "ln ms"
    for name in ("ln_rmssd_night_z", "steps_mean_per_min_z", "counts_mean_per_min_robust_z"):
        assert VARIABLES[name].unit == "SD"
