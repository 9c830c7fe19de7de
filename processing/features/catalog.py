"""The feature catalogue: one entry per feature, the single source of docs/features.md.

Regenerate the docs with ``python -m processing.features.catalog > docs/features.md``;
a unit test fails when the committed file differs. Bump an entry's ``version``
whenever its definition or defaults change, so stored values stay traceable.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    unit: str
    window: str
    definition: str
    reference: str
    version: int = 1
    module: str = ""


_W5 = "5-min window (configurable) or the whole series given"
_DAY = "calendar day (local time)"
_SPAN = "multi-day span (whole file, or a rolling span)"
_PER_MIN = "counts/min or steps/min"
_EPOCH = "30-s or 60-s epoch of raw acceleration"
_BROND = "Brønd et al. 2017, Med Sci Sports Exerc 49:2351"

_TF96 = "Task Force ESC/NASPE 1996, Circulation 93:1043"
_NK = "NeuroKit2: Makowski et al. 2021, Behav Res Methods 53:1689"

CATALOG: tuple[FeatureSpec, ...] = (
    # --- HRV (processing/features/hrv.py)
    FeatureSpec("mean_nn_ms", "ms", _W5, "mean of the kept NN intervals", _TF96, module="hrv"),
    FeatureSpec(
        "sdnn_ms",
        "ms",
        _W5,
        "sample SD (ddof=1) of the NN intervals",
        f"{_TF96}; {_NK}",
        module="hrv",
    ),
    FeatureSpec(
        "rmssd_ms",
        "ms",
        _W5,
        "sqrt(mean(dNN^2)) over successive differences that do not cross a gap",
        _TF96,
        module="hrv",
    ),
    FeatureSpec(
        "pnn50_pct",
        "%",
        _W5,
        "100 * #(|dNN| > 50 ms) / #successive differences (NeuroKit2 divides by len(diff)+1)",
        "Mietus et al. 2002, Heart 88:378",
        module="hrv",
    ),
    FeatureSpec("mean_hr_bpm", "bpm", _W5, "60000 / mean_nn_ms", _TF96, module="hrv"),
    FeatureSpec(
        "sd1_ms",
        "ms",
        _W5,
        "SD (ddof=1) of (NN_k - NN_k+1)/sqrt(2) over successive pairs",
        "Brennan et al. 2001, IEEE TBME 48:1342",
        module="hrv",
    ),
    FeatureSpec(
        "sd2_ms",
        "ms",
        _W5,
        "SD (ddof=1) of (NN_k + NN_k+1)/sqrt(2) over successive pairs",
        "Brennan et al. 2001, IEEE TBME 48:1342",
        module="hrv",
    ),
    FeatureSpec(
        "lf_ms2",
        "ms^2",
        _W5,
        "trapezoid of the Welch PSD over bins in [0.04, 0.15) Hz; NN resampled at 4 Hz by a "
        "natural cubic spline, 3 Hann segments of half the window, 50% overlap, nfft = 2 x "
        "segment; needs >= 120 s of beats and no gap > 10 s; the spline bridges rejected beats "
        "and gaps (NeuroKit2: quadratic spline at 100 Hz, so LF/HF agree within 10% only on "
        "windows without such a bridge)",
        f"{_TF96}; Welch 1967, IEEE Trans Audio Electroacoust 15:70",
        module="hrv",
    ),
    FeatureSpec("hf_ms2", "ms^2", _W5, "as lf_ms2 over [0.15, 0.40) Hz", _TF96, module="hrv"),
    FeatureSpec("lf_hf", "1", _W5, "lf_ms2 / hf_ms2", _TF96, module="hrv"),
    FeatureSpec(
        "dfa_alpha1",
        "1",
        _W5,
        "slope of log2 F(n) on log2 n, n = 4..11 beats; profile = cumsum(NN - mean), segments "
        "every n//2 beats, linear detrending, F(n) = sqrt(mean residual variance); segments "
        "across gaps are skipped",
        "Peng et al. 1995, Chaos 5:82",
        module="hrv",
    ),
    FeatureSpec(
        "sampen",
        "1",
        _W5,
        "-ln(A/B), m = 2, r = 0.2 x SDNN, Chebyshev distance <= r, N-m templates of each "
        "length, no template across a gap; NaN when A or B is 0",
        "Richman & Moorman 2000, Am J Physiol 278:H2039",
        module="hrv",
    ),
    FeatureSpec(
        "kept_fraction",
        "1",
        _W5,
        "kept NN intervals / input intervals (range 300-2000 ms; 20% deviation from the "
        "11-beat running median rejected as ectopic)",
        "Malik et al. 1989, Med Biol Eng Comput 27:603",
        module="rr_clean",
    ),
    FeatureSpec(
        "coverage",
        "1",
        _W5,
        "sum of kept NN intervals / window length; < 0.5 blanks the window",
        "this project",
        module="rr_clean",
    ),
    # --- heart rate
    FeatureSpec(
        "resting_hr_bpm",
        "bpm",
        "night (00-06 h or detected sleep), keyed by the morning date",
        "lowest mean of 5-min bins with >= 80% coverage and HR SD <= 5 bpm",
        f"this project; {_TF96}",
        module="heart_rate",
    ),
    FeatureSpec("hr_mean", "bpm", _DAY, "mean HR of the day's samples", _TF96, module="heart_rate"),
    FeatureSpec("hr_p5", "bpm", _DAY, "5th percentile of HR", _TF96, module="heart_rate"),
    FeatureSpec("hr_p50", "bpm", _DAY, "median HR", _TF96, module="heart_rate"),
    FeatureSpec("hr_p95", "bpm", _DAY, "95th percentile of HR", _TF96, module="heart_rate"),
    FeatureSpec(
        "hr_sleep_bpm",
        "bpm",
        "sleep period",
        "mean HR inside the sleep periods",
        _TF96,
        module="heart_rate",
    ),
    # --- activity
    FeatureSpec(
        "activity_mean",
        _PER_MIN,
        _DAY,
        "mean activity per worn minute (>= 600 worn minutes): accelerometer counts/min for "
        "actigraphy files; steps/min in the service's daily point (steps summed per minute; "
        "worn = a valid HR sample in the minute)",
        "Garcia-Ceja et al. 2018, ACM MMSys 472",
        version=2,
        module="activity",
    ),
    FeatureSpec(
        "activity_sd",
        _PER_MIN,
        _DAY,
        "sample SD of the worn minutes' counts (or steps/min, as activity_mean)",
        "Garcia-Ceja et al. 2018, ACM MMSys 472",
        version=2,
        module="activity",
    ),
    FeatureSpec(
        "zero_fraction",
        "1",
        _DAY,
        "share of worn minutes with count 0",
        "Garcia-Ceja et al. 2018, ACM MMSys 472",
        module="activity",
    ),
    FeatureSpec(
        "sedentary_min",
        "min",
        _DAY,
        "worn minutes with count < 100 (device-specific cut point)",
        "Troiano et al. 2008, Med Sci Sports Exerc 40:181",
        module="activity",
    ),
    FeatureSpec(
        "mvpa_min",
        "min",
        _DAY,
        "worn minutes with count >= 2020 (device-specific cut point); in the service's daily "
        "point >= 100 steps/min (about 3 METs)",
        "Troiano et al. 2008, Med Sci Sports Exerc 40:181; Tudor-Locke et al. 2018, Br J Sports "
        "Med 52:776",
        version=2,
        module="activity",
    ),
    FeatureSpec("steps", "steps", _DAY, "sum of device step counts", "device", module="activity"),
    # --- adherence
    FeatureSpec(
        "wear_min",
        "min",
        _DAY,
        "minutes with data not inside a non-wear run (>= 90 zero minutes, 2-min spikes with 30 "
        "zero minutes either side tolerated)",
        "Choi et al. 2011, Med Sci Sports Exerc 43:357",
        module="adherence",
    ),
    FeatureSpec(
        "completeness", "1", _DAY, "minutes with data / 1440", "this project", module="adherence"
    ),
    FeatureSpec("wear_fraction", "1", _DAY, "wear_min / 1440", "this project", module="adherence"),
    FeatureSpec(
        "missing_cause",
        "label",
        "per slot",
        "ok / not_worn / out_of_range / sensor_battery / gateway_down / uplink_down / unknown, "
        "decided from gateway, uplink, connection, battery and wear evidence",
        "this project",
        module="adherence",
    ),
    # --- circadian
    FeatureSpec(
        "is",
        "1",
        _SPAN,
        "N sum_h n_h (xbar_h - xbar)^2 / (p sum_i (x_i - xbar)^2) on clock-hour means",
        "Witting et al. 1990, Biol Psychiatry 27:563",
        module="circadian",
    ),
    FeatureSpec(
        "iv",
        "1",
        _SPAN,
        "N sum (x_i - x_i-1)^2 / ((N-1) sum (x_i - xbar)^2) on consecutive valid hours",
        "Witting et al. 1990, Biol Psychiatry 27:563",
        module="circadian",
    ),
    FeatureSpec(
        "l5",
        "counts/min",
        _SPAN,
        "lowest 5-h running mean of the average 24-h minute profile (circular)",
        "Van Someren et al. 1999, Chronobiol Int 16:505",
        module="circadian",
    ),
    FeatureSpec(
        "m10",
        "counts/min",
        _SPAN,
        "highest 10-h running mean of the average 24-h profile",
        "Van Someren et al. 1999, Chronobiol Int 16:505",
        module="circadian",
    ),
    FeatureSpec(
        "l5_onset_h",
        "h",
        _SPAN,
        "clock time of the L5 window start",
        "Van Someren et al. 1999",
        module="circadian",
    ),
    FeatureSpec(
        "m10_onset_h",
        "h",
        _SPAN,
        "clock time of the M10 window start",
        "Van Someren et al. 1999",
        module="circadian",
    ),
    FeatureSpec(
        "ra", "1", _SPAN, "(M10 - L5) / (M10 + L5)", "Van Someren et al. 1999", module="circadian"
    ),
    # --- sleep
    FeatureSpec(
        "sleep_onset",
        "local time",
        "sleep day (noon to noon)",
        "start of the longest merged sleep period (Cole-Kripke minutes, wake gaps <= 30 min,"
        " >= 60 min)",
        "Cole et al. 1992, Sleep 15:461",
        module="sleep",
    ),
    FeatureSpec(
        "sleep_offset",
        "local time",
        "sleep day",
        "end of that period",
        "Cole et al. 1992",
        module="sleep",
    ),
    FeatureSpec(
        "sleep_in_bed_min", "min", "sleep day", "offset - onset", "Cole et al. 1992", module="sleep"
    ),
    FeatureSpec(
        "sleep_asleep_min",
        "min",
        "sleep day",
        "minutes scored asleep inside the period",
        "Cole et al. 1992",
        module="sleep",
    ),
    FeatureSpec(
        "sleep_efficiency",
        "1",
        "sleep day",
        "sleep_asleep_min / sleep_in_bed_min",
        "Cole et al. 1992",
        module="sleep",
    ),
    FeatureSpec(
        "sri",
        "-100..100",
        _SPAN,
        "-100 + 200 x share of valid minute pairs 24 h apart with the same sleep/wake state",
        "Phillips et al. 2017, Sci Rep 7:3216",
        module="sleep",
    ),
    # --- raw acceleration epochs, computed on the gateway (processing/features/accel.py)
    FeatureSpec(
        "enmo_mg",
        "mg",
        _EPOCH,
        "1000 * mean over the epoch of max(0, sqrt(x^2 + y^2 + z^2) - 1), acceleration in g",
        "van Hees et al. 2013, PLoS ONE 8:e61691",
        module="accel",
    ),
    FeatureSpec(
        "mad_mg",
        "mg",
        _EPOCH,
        "1000 * mean over the epoch of |r_i - mean(r)|, r = vector magnitude in g",
        "Vähä-Ypyä et al. 2015, Clin Physiol Funct Imaging 35:64",
        module="accel",
    ),
    *(
        FeatureSpec(
            f"counts_{axis}",
            "counts/epoch",
            _EPOCH,
            f"ActiGraph-compatible activity counts of the {axis} axis: resample to 30 Hz,"
            " published band-pass, x17.127, trim to [4, 128], 10-Hz means, epoch sum;"
            " equal to the agcounts package at 30-100 Hz",
            _BROND,
            module="accel",
        )
        for axis in ("x", "y", "z")
    ),
    FeatureSpec(
        "counts_vm",
        "counts/epoch",
        _EPOCH,
        "sqrt(counts_x^2 + counts_y^2 + counts_z^2) (ActiLife vector magnitude)",
        _BROND,
        module="accel",
    ),
    FeatureSpec(
        "angle_z_deg",
        "deg",
        _EPOCH,
        "mean of arctan(z / sqrt(x^2 + y^2)) * 180/pi on 5-s rolling medians of each axis",
        "van Hees et al. 2015, PLoS ONE 10:e0142533",
        module="accel",
    ),
    FeatureSpec(
        "nonwear_acc",
        "1",
        "15-min block, judged on the centred 60-min window",
        "1 when >= 2 axes have SD < 13 mg and range < 50 mg (GGIR defaults; the 2011"
        " paper used SD < 3 mg)",
        "van Hees et al. 2011, PLoS ONE 6:e22922; 2013, PLoS ONE 8:e61691",
        module="accel",
    ),
    # --- baselines
    FeatureSpec(
        "z",
        "SD",
        "previous 28 days (>= 7 valid)",
        "(x - mean) / SD of the baseline days",
        "this project",
        module="baseline",
    ),
    FeatureSpec(
        "robust_z",
        "SD",
        "previous 28 days (>= 7 valid)",
        "0.6745 (x - median) / MAD of the baseline days",
        "Iglewicz & Hoaglin 1993; Leys et al. 2013, J Exp Soc Psychol 49:764",
        module="baseline",
    ),
)

BY_NAME = {spec.name: spec for spec in CATALOG}


def render_markdown() -> str:
    """The text of docs/features.md."""
    lines = [
        "# WellSense feature catalogue",
        "",
        "<!-- Generated by `python -m processing.features.catalog > docs/features.md`;"
        " do not edit. -->",
        "",
        "Every feature is a pure function of arrays in `processing/features/`. NaN means",
        '"not computable from this data" and always comes with a quality flag or a',
        "validity column. Units are in the names where they are physical.",
        "",
    ]
    modules: list[str] = []
    for spec in CATALOG:
        if spec.module not in modules:
            modules.append(spec.module)
    for module in modules:
        lines += [
            f"## `{module}`",
            "",
            "| name | unit | window | definition | reference | version |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for s in (s for s in CATALOG if s.module == module):
            cells = [f"`{s.name}`", s.unit, s.window, s.definition, s.reference, str(s.version)]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
