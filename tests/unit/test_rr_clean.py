"""RR artefact handling: strong RSA is kept, ectopic/missed/extra beats are rejected,
agreement with NeuroKit2's Lipponen & Tarvainen classification on real records."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from processing.features.hrv import hrv_windows
from processing.features.io import read_rr
from processing.features.rr_clean import (
    Reason,
    artefact_reasons,
    classify_beats,
    clean_rr,
)
from tests.unit.features_data import require


def sinus_rsa(base_ms: float, rsa: float, breath_hz: float, duration_s: float, seed: int):
    """Sinus rhythm whose RR follows the breath: RR = base (1 + rsa sin(2 pi f t)) + N(0, 10 ms)."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi)
    t, out = 0.0, []
    while t < duration_s:
        rr = base_ms * (1 + rsa * np.sin(2 * np.pi * breath_hz * t + phase)) + rng.normal(0, 10)
        t += rr / 1000.0
        out.append(rr)
    return np.array(out)


def inject_ectopics(rr: np.ndarray, n: int, early: float, seed: int):
    """Premature beats ``early`` x RR early with a full compensatory pause (sum kept)."""
    rng = np.random.default_rng(seed)
    x = rr.copy()
    pos = np.sort(rng.choice(np.arange(20, x.size - 20, 12), n, replace=False))
    total = x[pos] + x[pos + 1]
    x[pos] *= 1 - early
    x[pos + 1] = total - x[pos]
    return x, pos


RSA_CASES = [
    (b, a, f) for b in (800.0, 1000.0, 1200.0) for a in (0.2, 0.3) for f in (0.1, 0.15, 0.25)
]


@pytest.mark.parametrize(("base", "rsa", "breath_hz"), RSA_CASES)
def test_strong_rsa_is_kept(base: float, rsa: float, breath_hz: float) -> None:
    rr = sinus_rsa(base, rsa, breath_hz, 900.0, seed=int(base + 100 * rsa + 1000 * breath_hz))
    t = np.cumsum(rr) / 1000.0
    assert clean_rr(rr, t).kept_fraction >= 0.98
    win = hrv_windows(t, rr)
    full = win.n_beats > 200
    assert np.all(win.kept_fraction[full] >= 0.98)
    assert np.all(np.isfinite(win.features["rmssd_ms"][full]))


def test_the_former_20pct_rule_rejects_strong_rsa() -> None:
    """Why the default changed: malik20 drops the top of each breath."""
    rr = sinus_rsa(1000.0, 0.2, 0.15, 900.0, seed=4)
    assert clean_rr(rr, method="malik20").kept_fraction < 0.8
    assert clean_rr(rr).kept_fraction == 1.0


@pytest.mark.parametrize(
    ("rsa", "breath_hz", "early"),
    [(0.0, 0.25, 0.2), (0.0, 0.1, 0.3), (0.2, 0.1, 0.3), (0.2, 0.15, 0.4), (0.3, 0.1, 0.4)],
)
def test_injected_ectopic_beats_are_caught(rsa: float, breath_hz: float, early: float) -> None:
    rr = sinus_rsa(900.0, rsa, breath_hz, 1800.0, seed=7)
    x, pos = inject_ectopics(rr, 40, early, seed=1)
    clean = clean_rr(x, np.cumsum(x) / 1000.0)
    both = (clean.reason[pos] != Reason.KEPT) & (clean.reason[pos + 1] != Reason.KEPT)
    assert both.mean() >= 0.95
    # no successive difference crosses a caught ectopic beat
    t_kept = np.round(clean.t_s, 9)
    after = np.searchsorted(t_kept, np.round(np.cumsum(x)[pos[both] + 2] / 1000.0, 9))
    assert not clean.successive[after].any()


def test_each_artefact_class_and_what_is_rejected() -> None:
    rng = np.random.default_rng(0)
    rr = 800 + rng.normal(0, 15, 400)
    rr[100], rr[101] = 560.0, 1040.0  # premature beat + compensatory pause
    rr[200] = 1600.0  # a beat not detected
    rr[300], rr[301] = 300.0, 500.0  # a spurious beat splits one interval
    cls = classify_beats(rr)
    assert cls[101] == Reason.ECTOPIC
    assert cls[200] == Reason.MISSED
    assert cls[300] == Reason.EXTRA
    reason = artefact_reasons(cls)
    assert list(reason[[100, 101]]) == [Reason.ECTOPIC] * 2
    assert reason[200] == Reason.MISSED and reason[199] == reason[201] == 0
    assert list(reason[[300, 301]]) == [Reason.EXTRA] * 2
    assert np.count_nonzero(reason) == 5
    clean = clean_rr(rr)
    assert clean.rr_ms.size == 395
    # intervals after a rejected one start a new run of successive beats
    kept_idx = np.flatnonzero(clean.reason == Reason.KEPT)
    assert not clean.successive[np.searchsorted(kept_idx, [102, 201, 302])].any()


def test_range_missing_and_gap_rules_unchanged() -> None:
    rr = np.array([800.0, 810, np.nan, 790, 250, 805, 2500, 800, 795, 802, 798, 801])
    t = np.cumsum(np.nan_to_num(rr)) / 1000.0
    t[9:] += 30.0  # signal loss before beat 9
    clean = clean_rr(rr, t)
    assert clean.reason[2] == Reason.MISSING
    assert clean.reason[4] == clean.reason[6] == Reason.OUT_OF_RANGE
    kept = np.flatnonzero(clean.reason == Reason.KEPT)
    succ = dict(zip(kept.tolist(), clean.successive.tolist(), strict=True))
    assert succ[1] and not succ[3] and not succ[5] and not succ[7] and succ[8]
    assert not succ[9] and succ[10]


def test_constant_series_with_one_premature_beat() -> None:
    """The 10 % floor: a threshold exists even where the quartile deviation is 0."""
    rr = np.full(300, 800.0)
    rr[150], rr[151] = 560.0, 1040.0
    reason = clean_rr(rr).reason
    assert np.flatnonzero(reason).tolist() == [150, 151]


def test_unknown_method_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown artefact method"):
        clean_rr(np.full(20, 800.0), method="nope")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real data

YOUNG = ["healthy-irurzun/009.txt", "healthy-irurzun/006.txt"]  # 24 y F, 32 y M


@pytest.mark.parametrize("name", YOUNG)
def test_young_healthy_records_keep_98pct(name: str) -> None:
    rec = read_rr(require("rr") / name, unit="ms")
    assert clean_rr(rec.rr_ms).kept_fraction >= 0.98


def _in_range(name: str, unit: str, skip: bool, n: int) -> np.ndarray:
    rec = read_rr(require("rr") / name, unit=unit, skip_first=skip)
    x = rec.rr_ms[np.isfinite(rec.rr_ms) & (rec.rr_ms >= 300) & (rec.rr_ms <= 2000)]
    return x[:n]


def _neurokit_classes(x: np.ndarray) -> np.ndarray:
    nk_fix = pytest.importorskip("neurokit2.signal.signal_fixpeaks")
    peaks = np.concatenate(([0.0], np.cumsum(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info, _ = nk_fix.signal_fixpeaks(
            peaks, sampling_rate=1000, iterative=False, method="kubios"
        )
    cls = np.zeros(x.size, dtype=np.int64)
    for key, code in (("longshort", 6), ("missed", 4), ("extra", 5), ("ectopic", 3)):
        i = np.asarray(info[key], dtype=np.int64) - 1  # NeuroKit2 prepends one interval
        cls[i[i >= 0]] = code
    return cls


@pytest.mark.parametrize(
    ("name", "unit", "skip"),
    [("nsr2db/nsr002_rr_secs.txt.gz", "s", True), ("chf2db/chf202_rr_secs.txt.gz", "s", True)],
)
def test_agrees_with_neurokit_where_an_artefact_is_plausible(name: str, unit: str, skip: bool):
    """First 20,000 in-range beats. The paper's rule (our code with the floor at ~0)
    gives NeuroKit2's class on 99.7 % (nsr002) and 99.9 % (chf202) of beats, the rest
    being stretches where NeuroKit2's threshold is 0. With the floor, on beats whose
    interval jumps by >= 15 % of the 11-beat median (where an artefact is plausible)
    Cohen's kappa is 0.91 and 0.89 here (0.72-1.00 over all 83 records of both sets,
    bench/artefacts.py); 0.8 fails if the classification drifts from the paper's."""
    x = _in_range(name, unit, skip, 20_000)
    nk_cls = _neurokit_classes(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        paper = classify_beats(x, min_threshold_frac=1e-9)
    exact = nk_cls > 0
    # differences: stretches where the quartile deviation is 0 (NeuroKit2: NaN, no class)
    assert np.mean(paper == nk_cls) >= 0.995
    ours = classify_beats(x) > 0
    med = np.array([np.median(x[max(0, k - 5) : k + 6]) for k in range(x.size)])
    jump = np.abs(np.diff(x, prepend=x[0])) >= 0.15 * med
    a, b = ours[jump], exact[jump]
    assert b.sum() >= 20
    po = np.mean(a == b)
    pe = a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean())
    assert (po - pe) / (1 - pe) >= 0.8


def test_emulator_ectopic_beats_are_caught_and_its_sinus_rhythm_kept() -> None:
    """wellsense_sim marks its ectopic beats (55-75 % premature, compensatory pause) and
    has RSA, Mayer waves, activity and day/night HRV: measured 99.4 % / 100 % caught,
    99.9 % of the other beats kept (seeds 1, 2; 100,000 beats each)."""
    from wellsense_sim.physiology import BeatGenerator, Model, Profile

    gen = BeatGenerator(Model(Profile(), 1), 1_764_000_000 * 10**9)
    beats = [gen.next_beat() for _ in range(30_000)]
    rr = np.array([b.rr_ms for b in beats])
    pos = np.flatnonzero([b.ectopic for b in beats])
    pos = pos[pos + 1 < rr.size]
    reason = clean_rr(rr).reason
    assert pos.size >= 30
    assert np.mean((reason[pos] != 0) & (reason[pos + 1] != 0)) >= 0.95
    normal = np.ones(rr.size, dtype=bool)
    normal[pos] = normal[pos + 1] = False
    assert np.mean(reason[normal] == 0) >= 0.99
