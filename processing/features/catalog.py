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
_EPOCH = "30-s or 60-s epoch of raw acceleration"
_BROND = "Brønd et al. 2017, Med Sci Sports Exerc 49:2351"
_NIGHT = "night ending on the day (noon to noon, local)"
_WEEK = "the 7 nights ending on days d-6 .. d"

_TF96 = "Task Force ESC/NASPE 1996, Circulation 93:1043"
_NK = "NeuroKit2: Makowski et al. 2021, Behav Res Methods 53:1689"

CATALOG: tuple[FeatureSpec, ...] = (
    # --- HRV (processing/features/hrv.py)
    FeatureSpec(
        "mean_nn_ms", "ms", _W5, "mean of the kept NN intervals", _TF96, version=2, module="hrv"
    ),
    FeatureSpec(
        "sdnn_ms",
        "ms",
        _W5,
        "sample SD (ddof=1) of the NN intervals",
        f"{_TF96}; {_NK}",
        version=2,
        module="hrv",
    ),
    FeatureSpec(
        "rmssd_ms",
        "ms",
        _W5,
        "sqrt(mean(dNN^2)) over successive differences that do not cross a gap",
        _TF96,
        version=2,
        module="hrv",
    ),
    FeatureSpec(
        "pnn50_pct",
        "%",
        _W5,
        "100 * #(|dNN| > 50 ms) / #successive differences (NeuroKit2 divides by len(diff)+1)",
        "Mietus et al. 2002, Heart 88:378",
        version=2,
        module="hrv",
    ),
    FeatureSpec("mean_hr_bpm", "bpm", _W5, "60000 / mean_nn_ms", _TF96, version=2, module="hrv"),
    FeatureSpec(
        "sd1_ms",
        "ms",
        _W5,
        "SD (ddof=1) of (NN_k - NN_k+1)/sqrt(2) over successive pairs",
        "Brennan et al. 2001, IEEE TBME 48:1342",
        version=2,
        module="hrv",
    ),
    FeatureSpec(
        "sd2_ms",
        "ms",
        _W5,
        "SD (ddof=1) of (NN_k + NN_k+1)/sqrt(2) over successive pairs",
        "Brennan et al. 2001, IEEE TBME 48:1342",
        version=2,
        module="hrv",
    ),
    FeatureSpec(
        "lf_ms2",
        "ms^2",
        _W5,
        "trapezoid of the Welch PSD over bins in [0.04, 0.15) Hz; NN resampled at 4 Hz by a "
        "natural cubic spline, 3 Hann segments of half the window, 50% overlap, nfft = 2 x "
        "segment; needs >= 120 s of beats and no gap > 10 s; the spline bridges rejected beats "
        "and gaps (NeuroKit2: a quadratic spline at 100 Hz, and on some windows 2 Welch "
        "segments that leave the last quarter out; agreement over all windows below)",
        f"{_TF96}; Welch 1967, IEEE Trans Audio Electroacoust 15:70",
        version=2,
        module="hrv",
    ),
    FeatureSpec(
        "hf_ms2", "ms^2", _W5, "as lf_ms2 over [0.15, 0.40) Hz", _TF96, version=2, module="hrv"
    ),
    FeatureSpec("lf_hf", "1", _W5, "lf_ms2 / hf_ms2", _TF96, version=2, module="hrv"),
    FeatureSpec(
        "dfa_alpha1",
        "1",
        _W5,
        "slope of log2 F(n) on log2 n, n = 4..16 beats (the short-term range of Peng et al.; "
        "hrv_windows(dfa_scales=DFA_SCALES_NEUROKIT) gives NeuroKit2's 4..11); profile = "
        "cumsum(NN - mean), segments of n beats every n//2 beats, linear detrending, F(n) = "
        "sqrt(mean residual variance); segments across gaps and exactly linear ones "
        "(variance <= 1e-8) are skipped",
        "Peng et al. 1995, Chaos 5:82",
        version=2,
        module="hrv",
    ),
    FeatureSpec(
        "sampen",
        "1",
        _W5,
        "-ln(A/B), m = 2, r = 0.2 x SDNN, Chebyshev distance <= r, N-m templates of each "
        "length, no template across a gap; NaN when A or B is 0",
        "Richman & Moorman 2000, Am J Physiol 278:H2039",
        version=2,
        module="hrv",
    ),
    FeatureSpec(
        "kept_fraction",
        "1",
        _W5,
        "kept NN intervals / input intervals. Rejected: missing values; RR outside 300-2000 ms; "
        "artefact beats by the adaptive classification of Lipponen & Tarvainen (dRR and RR - "
        "11-beat median, normalised by 5.2 x the quartile deviation over 91 beats, floored at "
        "10% of the median RR; ectopic, missed, extra, long/short): ectopic rejects both "
        "intervals around the beat, extra both short intervals, missed and long/short the "
        "interval itself (nothing is split, merged or interpolated). method='malik20' keeps the "
        "former 20%-from-the-11-beat-median rule",
        "Lipponen & Tarvainen 2019, J Med Eng Technol 43:173; Malik et al. 1989, Med Biol Eng "
        "Comput 27:603",
        version=2,
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
    # --- nocturnal HRV (the daily HRV feature)
    FeatureSpec(
        "ln_rmssd_night",
        "ln ms",
        "night (sleep period, else 00-06 h local), keyed by the morning date",
        "median over the night's usable 5-min windows (wholly inside the night; no flag that "
        "leaves RMSSD undefined) of ln(rmssd_ms); baseline and z-scores on this log scale",
        f"Plews et al. 2013, Sports Med 43:773; {_TF96}",
        module="night_hrv",
    ),
    FeatureSpec(
        "hrv_night_windows",
        "windows",
        "night, as ln_rmssd_night",
        "number of the night's HRV windows with RR data",
        "this project",
        module="night_hrv",
    ),
    FeatureSpec(
        "hrv_night_usable_fraction",
        "1",
        "night, as ln_rmssd_night",
        "share of the night's windows whose RMSSD is defined (no too_few_beats, low_coverage, "
        "many_artefacts, no_beats, clock_step or constant_rr flag)",
        "this project",
        module="night_hrv",
    ),
    # --- heart rate
    FeatureSpec(
        "resting_hr_bpm",
        "bpm",
        "night (00-06 h or detected sleep), keyed by the morning date",
        "lowest mean of 5-min bins with HR SD <= 5 bpm and a sample in >= 80% of their minutes "
        "(coverage counted per bin, not from the record's sample spacing, so beat-level HR at a "
        "low night HR is not rated as thin)",
        f"this project; {_TF96}",
        version=2,
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
    # --- activity: accelerometer counts (actigraphy files, e.g. Depresjon)
    FeatureSpec(
        "counts_mean_per_min",
        "counts/min",
        _DAY,
        "mean accelerometer counts per worn minute (>= 600 worn minutes); was activity_mean",
        "Garcia-Ceja et al. 2018, ACM MMSys 472",
        version=3,
        module="activity",
    ),
    FeatureSpec(
        "counts_sd_per_min",
        "counts/min",
        _DAY,
        "sample SD (ddof=1) of the worn minutes' counts; was activity_sd",
        "Garcia-Ceja et al. 2018, ACM MMSys 472",
        version=3,
        module="activity",
    ),
    FeatureSpec(
        "counts_zero_fraction",
        "1",
        _DAY,
        "share of worn minutes with count 0; was zero_fraction",
        "Garcia-Ceja et al. 2018, ACM MMSys 472",
        version=2,
        module="activity",
    ),
    FeatureSpec(
        "counts_sedentary_min",
        "min",
        _DAY,
        "worn minutes with count < 100 (device-specific cut point); was sedentary_min",
        "Troiano et al. 2008, Med Sci Sports Exerc 40:181",
        version=2,
        module="activity",
    ),
    FeatureSpec(
        "counts_mvpa_min",
        "min",
        _DAY,
        "worn minutes with count >= 2020 (device-specific cut point); was mvpa_min",
        "Troiano et al. 2008, Med Sci Sports Exerc 40:181",
        version=3,
        module="activity",
    ),
    # --- activity: steps of a step-counting wearable (the service's daily point)
    FeatureSpec(
        "steps_mean_per_min",
        "steps/min",
        _DAY,
        "mean steps per worn minute with a step count (>= 600 such minutes; steps summed per "
        "minute; worn = a valid HR sample in the minute); was the daily point's activity_mean",
        "this project; Troiano et al. 2008 (600-min valid day)",
        module="activity",
    ),
    FeatureSpec(
        "steps_sd_per_min",
        "steps/min",
        _DAY,
        "sample SD (ddof=1) of the worn minutes' steps/min; was the daily point's activity_sd",
        "this project",
        module="activity",
    ),
    FeatureSpec(
        "steps_zero_fraction",
        "1",
        _DAY,
        "share of worn minutes without a step; was the daily point's zero_fraction",
        "this project",
        module="activity",
    ),
    FeatureSpec(
        "steps_mvpa_min",
        "min",
        _DAY,
        "worn minutes with >= 100 steps/min (about 3 METs); was the daily point's mvpa_min",
        "Tudor-Locke et al. 2018, Br J Sports Med 52:776",
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
    # --- the service's daily sleep and rhythm (processing/dailysleep.py)
    FeatureSpec(
        "sleep_method",
        "label",
        _NIGHT,
        "source of the night's sleep period: hdcza (z-angle), cole_kripke (counts) or hr_rest "
        "(HR + steps heuristic, not validated against PSG); absent without a period",
        "this project",
        module="dailysleep",
    ),
    FeatureSpec(
        "sleep_onset_h",
        "h from midnight",
        _NIGHT,
        "start of the night's sleep period, hours from local midnight of the day (-12..12; "
        "23:30 = -0.5); hdcza: HDCZA window; cole_kripke: longest Cole-Kripke + Webster period "
        "(wake gaps <= 30 min, >= 60 min); hr_rest: longest low-HR no-step run (3-12 h)",
        "van Hees et al. 2018, Sci Rep 8:12975; Cole et al. 1992, Sleep 15:461; Webster et al. "
        "1982, Sleep 5:389; this project (hr_rest)",
        module="dailysleep",
    ),
    FeatureSpec(
        "sleep_offset_h",
        "h from midnight",
        _NIGHT,
        "end of that period",
        "as sleep_onset_h",
        module="dailysleep",
    ),
    FeatureSpec(
        "sleep_midpoint_h",
        "h from midnight",
        _NIGHT,
        "(sleep_onset_h + sleep_offset_h) / 2",
        "Roenneberg et al. 2003, J Biol Rhythms 18:80",
        module="dailysleep",
    ),
    FeatureSpec(
        "sleep_period_min",
        "min",
        _NIGHT,
        "offset - onset (elapsed minutes)",
        "as sleep_onset_h",
        module="dailysleep",
    ),
    FeatureSpec(
        "sleep_tst_min",
        "min",
        _NIGHT,
        "minutes asleep inside the period: sustained inactivity (angle change <= 5 deg for >= 5 "
        "min), Cole-Kripke + Webster sleep, or hr_rest rest minutes",
        "van Hees et al. 2015, PLoS ONE 10:e0142533; Cole et al. 1992",
        module="dailysleep",
    ),
    FeatureSpec(
        "sleep_waso_min",
        "min",
        _NIGHT,
        "minutes scored awake (not at rest) between the first and last asleep minute of the "
        "period; minutes without data count as neither",
        "Cole et al. 1992; van Hees et al. 2015",
        module="dailysleep",
    ),
    FeatureSpec(
        "hr_dip_pct",
        "%",
        _NIGHT,
        "100 (HR_day - HR_night) / HR_day on minute HR: night = the sleep period, day = the other "
        "worn minutes from noon to noon (>= 60 min each); negative = reverse dipping",
        "Ben-Dov et al. 2007, Arch Intern Med 167:2116",
        module="dailysleep",
    ),
    FeatureSpec(
        "sleep_nights_7d",
        "nights",
        _WEEK,
        "nights with a sleep period among the 7",
        "this project",
        module="dailysleep",
    ),
    FeatureSpec(
        "sleep_midpoint_sd_h",
        "h",
        _WEEK,
        "sample SD (ddof=1) of sleep_midpoint_h over the nights with a period (>= 4)",
        "this project; Phillips et al. 2017, Sci Rep 7:3216",
        module="dailysleep",
    ),
    FeatureSpec(
        "social_jetlag_h",
        "h",
        _WEEK,
        "|mean midpoint of nights before Sat/Sun mornings - mean midpoint before Mon-Fri "
        "mornings| (local calendar; >= 1 night each)",
        "Wittmann et al. 2006, Chronobiol Int 23:497",
        module="dailysleep",
    ),
    FeatureSpec(
        "sri_7d",
        "-100..100",
        "7 noon-to-noon days ending at noon of the day",
        "SRI on minute states: 1 inside a sleep period, 0 with data outside, NaN without data; "
        ">= 3 days of valid pairs",
        "Phillips et al. 2017, Sci Rep 7:3216",
        module="dailysleep",
    ),
    *(
        FeatureSpec(
            f"{src}_{key}_7d",
            unit,
            "local days d-6 .. d",
            f"{key} of {src} per minute (circadian.{key}; missing minutes left out)",
            ref,
            module="dailysleep",
        )
        for src in ("steps", "counts")
        for key, unit, ref in (
            ("is", "1", "Witting et al. 1990, Biol Psychiatry 27:563"),
            ("iv", "1", "Witting et al. 1990, Biol Psychiatry 27:563"),
            ("ra", "1", "Van Someren et al. 1999, Chronobiol Int 16:505"),
            ("l5", f"{src}/min", "Van Someren et al. 1999, Chronobiol Int 16:505"),
            ("m10", f"{src}/min", "Van Someren et al. 1999, Chronobiol Int 16:505"),
            ("l5_onset_h", "h", "Van Someren et al. 1999"),
            ("m10_onset_h", "h", "Van Someren et al. 1999"),
        )
    ),
    *(
        FeatureSpec(
            name,
            unit,
            _DAY,
            f"{what} of the single-component 24-h cosinor y = M + b cos(2 pi t/24) + "
            f"g sin(2 pi t/24) fitted by least squares to the day's minute {src} (>= 16 clock "
            "hours with data)",
            "Cornelissen 2014, Theor Biol Med Model 11:16",
            module="dailysleep",
        )
        for src, pre, unit_y in (("HR", "hr", "bpm"), ("steps", "steps", "steps/min"))
        for name, unit, what in (
            (f"{pre}_mesor_{'bpm' if pre == 'hr' else 'per_min'}", unit_y, "mesor M"),
            (f"{pre}_amplitude_{'bpm' if pre == 'hr' else 'per_min'}", unit_y, "sqrt(b^2 + g^2)"),
            (f"{pre}_acrophase_h", "h", "clock hour of the peak, atan2(g, b) 24/(2 pi) mod 24"),
        )
    ),
    FeatureSpec(
        "steps_peak30_per_min",
        "steps/min",
        _DAY,
        "mean of the 30 highest steps/min of the day's worn minutes with a step count (not "
        "necessarily consecutive; >= 600 minutes)",
        "Tudor-Locke et al. 2012, J Phys Act Health 9:1125",
        module="dailysleep",
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


def _md_table(header: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_ARTEFACT_TABLE = _md_table(
    (
        "set",
        "records",
        "flagged: NeuroKit2",
        "flagged: ours",
        "kappa, all beats",
        "kappa, plausible beats",
        "paper rule vs NeuroKit2, kappa",
        "kept (ours)",
        "kept (malik20)",
    ),
    (
        (
            "nsr2db",
            "54",
            "3.4 % [0.9-7.1]",
            "0.36 % [0.01-4.8]",
            "0.23 [0.02-0.89]",
            "0.93 [0.72-1.00]",
            "0.99 [0.85-1.00]",
            "99.4 % [93.7-99.9]",
            "99.6 % [90.7-99.96]",
        ),
        (
            "chf2db",
            "29",
            "5.1 % [2.1-10.7]",
            "2.1 % [0.2-8.9]",
            "0.56 [0.13-0.98]",
            "0.97 [0.78-1.00]",
            "0.98 [0.81-1.00]",
            "97.3 % [89.4-99.8]",
            "98.4 % [80.1-99.9]",
        ),
        (
            "healthy-irurzun",
            "9",
            "1.4 % [0.7-2.9]",
            "0.45 % [0.10-1.6]",
            "0.59 [0.10-0.83]",
            "0.96 [0.83-0.99]",
            "1.00 [1.00-1.00]",
            "99.4 % [97.5-99.8]",
            "99.8 % [99.1-99.99]",
        ),
    ),
)

# Markdown printed under a module's table: measured facts a table row cannot hold.
# Every number comes from a benchmark named in the text.
MODULE_NOTES: dict[str, str] = {
    "dailysleep": """
Sleep scoring against its peer (`bench/sleep.py`, all 55 Depresjon files,
1,571,706 minutes; per-file % of equal minutes and Cohen's kappa, median
[minimum]). Literal loop-based transcriptions (`tests/unit/sleep_reference.py`)
of the papers: Cole-Kripke, Webster rescoring and Sadeh 100 % [100 %], kappa
1. pyActigraphy 1.2.2 was not installed into the project environment: its
dependency `accelerometer` pins scikit-learn 1.0.1, for which pip found no
Python 3.11 wheel and started a source build that would replace the installed
scikit-learn. So its conventions were transcribed, and the transcription was
checked against pyActigraphy's own scoring functions loaded from its wheel
(numba stubbed; `bench/sleep.py --pyactigraphy-src DIR`): identical on every
minute of the 55 files. Against
pyActigraphy's conventions: Cole-Kripke (`settings="mean"`, minute sums / 30,
P = 0.001) identical except its 4 unscored minutes at each end; Webster 99.96 %
[99.90 %], kappa 0.9992 [0.998] (pyActigraphy leaves a sleep run shorter than 3
or 4 minutes after 10 or 15 wake minutes alone); Sadeh 98.26 % [95.26 %], kappa
0.958 [0.904] (it counts 50 < A < 100 in NAT, takes ln(A + 1) of the next
minute and scores PS > 0). The service's default Cole-Kripke weights
(404 ... 350, P = 1e-5) are not among pyActigraphy's four settings.

HR + steps rest detector (`hr_rest`) on 24-h Holter RR records without steps
(`bench/sleep.py`; no clock times or sleep labels in these files, so this is a
plausibility check, not a validation): nsr2db: a period on 50 of 54 records,
3.6-10.6 h (median 6.75 h), HR dip median 24.3 % (min 11.2 %), the record's
lowest-HR 6 h inside it (>= half) on 98 %, WASO median 0 min (the 31-min
running median hides short awakenings); chf2db (heart failure): 17 of 29,
dip median 15.1 %, 82 %.
""",
    "rr_clean": """
Artefact classification against NeuroKit2 (`bench/artefacts.py`, all 92 records,
in-range intervals; NeuroKit2 = `signal_fixpeaks(method="kubios", iterative=False)`).
Median [min-max] per record. "Plausible" beats are those whose interval jumps by
>= 15 % of the 11-beat median; "paper rule" is our code without the 10 % floor.

"""
    + _ARTEFACT_TABLE
    + """

Our code without the floor reproduces NeuroKit2 (kappa 0.98-1.00 median); the
differences left are stretches where the quartile deviation is 0 and NeuroKit2
classifies nothing. The beats only NeuroKit2 flags are small jumps of
quantised (128 Hz) intervals, a median 4.2 % of the median RR on nsr2db and
chf2db and 8.0 % on healthy-irurzun, which the floor keeps; where an artefact
is plausible the two agree (kappa 0.93-0.97). The real records keep slightly
fewer beats than with malik20: an ectopic beat costs two intervals, and
premature beats under 20 % are caught. Synthetic sinus rhythm with
+-20 % and +-30 % RSA at 0.1-0.25 Hz breathing (base 800-1200 ms) is kept in
full (malik20: 33-96 %). Injected premature beats with a full compensatory pause:
both intervals rejected for 100 % of beats 20-40 % early without RSA; with
+-20 % RSA at 0.1 Hz for >= 30 % early, at 0.15 Hz (or +-30 % at 0.1 Hz) for
40 % early; not reliably where the RSA's own beat-to-beat swing is as large as
the prematurity (+-20-30 % RSA at 0.25 Hz: 0-75 %).
""",
    "hrv": """
LF/HF against NeuroKit2 over **all** 2,284 compared 5-min windows of
`bench/hrv.py` (9 records), relative difference:

| feature | median | p90 | max | within 10 % |
| --- | --- | --- | --- | --- |
| `lf_ms2` | 0.3 % | 15 % | 810 % | 87 % |
| `hf_ms2` | 2.2 % | 9.6 % | 161 % | 90 % |
| `lf_hf` | 2.1 % | 13 % | 532 % | 88 % |

On the 1,866 windows where NeuroKit2 also fits three Welch segments, LF is
within 10 % on 98-100 % (max 29 %, over a bridged hole), HF on >= 99.7 %
(max 16 %). The large differences are the 418 windows where NeuroKit2's
segment arithmetic fits two segments and leaves the last quarter of the
window out of its spectrum (LF within 10 % on 34 % of them). Time domain,
Poincare, SampEn and DFA alpha1 (with NeuroKit2's scales 4..11) agree to
2e-14 (`bench/hrv.py`).
""",
}


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
        if module in MODULE_NOTES:
            lines += [MODULE_NOTES[module].strip("\n"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
