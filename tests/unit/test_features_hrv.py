"""HRV: agreement with NeuroKit2 on real RR windows, own formulas, thin/bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.interpolate
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from processing.features.hrv import (
    DFA_SCALES,
    DFA_SCALES_NEUROKIT,
    HRV_KEYS,
    hrv_features,
    hrv_summary,
    hrv_windows,
)
from processing.features.io import read_rr
from processing.features.rr_clean import Quality, clean_rr
from tests.unit.features_data import require

nk = pytest.importorskip("neurokit2")

RECORDS = [
    ("nsr2db/nsr001_rr_secs.txt.gz", "s", True),
    ("chf2db/chf201_rr_secs.txt.gz", "s", True),
    ("healthy-irurzun/008.txt", "ms", False),  # the file with the stray '@' line
]


def _windows(name: str, unit: str, skip: bool, n_windows: int = 16, scales=DFA_SCALES_NEUROKIT):
    rec = read_rr(require("rr") / name, unit=unit, skip_first=skip)
    rr = rec.rr_ms[: n_windows * 450]
    t = np.cumsum(rr) / 1000.0
    win = hrv_windows(t, rr, dfa_scales=scales)
    clean = clean_rr(rr, t)
    for i in np.flatnonzero(win.flags == 0):
        sel = (clean.t_s >= win.start_s[i]) & (clean.t_s < win.end_s[i])
        yield win, i, clean.rr_ms[sel], clean.t_s[sel], clean.successive[sel][1:]


FREQ_RECORDS = [  # whole records: every window with LF/HF is compared
    ("nsr2db/nsr001_rr_secs.txt.gz", "s", True),
    ("nsr2db/nsr002_rr_secs.txt.gz", "s", True),
    ("chf2db/chf201_rr_secs.txt.gz", "s", True),
    ("chf2db/chf202_rr_secs.txt.gz", "s", True),
    ("healthy-irurzun/005.txt", "ms", False),
    ("healthy-irurzun/008.txt", "ms", False),
]


def _nk_layout(t: np.ndarray) -> tuple[int, int]:
    """NeuroKit2's resampled length (100 Hz) and Welch segment length, its own arithmetic."""
    n = np.arange(t[0], t[-1] + 0.01, 0.01).size
    return n, min(int((2 / ((2 * 100) / (n / 2))) * 100), int(n / 2))


def _nk_segments(t: np.ndarray) -> int:
    n, nperseg = _nk_layout(t)
    return (n - nperseg) // (nperseg - nperseg // 2) + 1


def _bands(sig: np.ndarray, fs: float, nperseg: int) -> tuple[float, float]:
    f, p = scipy.signal.welch(
        sig - sig.mean(),
        fs=fs,
        window="hann",
        nperseg=nperseg,
        noverlap=nperseg // 2,
        nfft=2 * nperseg,
        detrend=False,
    )
    lf, hf = ((f >= lo) & (f < hi) for lo, hi in ((0.04, 0.15), (0.15, 0.40)))
    return float(np.trapezoid(p[lf], f[lf])), float(np.trapezoid(p[hf], f[hf]))


def _own_formula(rr: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Documented method with SciPy: natural cubic spline at 4 Hz, 3 Hann segments."""
    m = int(np.floor((t[-1] - t[0]) * 4 + 1e-9)) + 1
    sig = scipy.interpolate.CubicSpline(t, rr, bc_type="natural")(t[0] + np.arange(m) / 4.0)
    return _bands(sig, 4.0, 2 * (m // 4))


@pytest.fixture(scope="module")
def freq_windows():
    """(record, LF, HF, rr, t, bridged) for every window where we report LF/HF."""
    out = []
    for name, unit, skip in FREQ_RECORDS:
        rec = read_rr(require("rr") / name, unit=unit, skip_first=skip)
        t = np.cumsum(rec.rr_ms) / 1000.0
        win = hrv_windows(t, rec.rr_ms)
        clean = clean_rr(rec.rr_ms, t)
        lo = np.searchsorted(clean.t_s, win.start_s)
        hi = np.searchsorted(clean.t_s, win.end_s)
        for i in np.flatnonzero(np.isfinite(win.features["lf_ms2"])):
            s = slice(lo[i], hi[i])
            bridged = not clean.successive[s][1:].all()  # a rejected beat or gap inside
            lf, hf = win.features["lf_ms2"][i], win.features["hf_ms2"][i]
            out.append((name, lf, hf, clean.rr_ms[s], clean.t_s[s], bridged))
    return out


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_lf_hf_within_10pct_of_neurokit_where_conventions_coincide(freq_windows) -> None:
    """Every gap-free window where NeuroKit2 also tiles the window with 3 Welch segments."""
    worst = {"lf": 0.0, "hf": 0.0, "ratio": 0.0}
    per_record: dict[str, int] = {}
    for name, lf, hf, rr, t, bridged in freq_windows:
        if bridged or _nk_segments(t) != 3:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fd = nk.hrv_frequency({"RRI": rr, "RRI_Time": t}, normalize=False)
        nlf, nhf = float(fd["HRV_LF"].iloc[0]), float(fd["HRV_HF"].iloc[0])
        worst["lf"] = max(worst["lf"], _rel(lf, nlf))
        worst["hf"] = max(worst["hf"], _rel(hf, nhf))
        worst["ratio"] = max(worst["ratio"], _rel(lf / hf, nlf / nhf))
        per_record[name] = per_record.get(name, 0) + 1
    assert max(worst.values()) <= 0.10, worst
    assert len(per_record) == len(FREQ_RECORDS)
    assert sum(per_record.values()) >= 400


def test_lf_hf_two_segment_difference_is_neurokit_layout(freq_windows) -> None:
    """Gap-free windows where NeuroKit2 fits only 2 Welch segments: our spline with
    NeuroKit2's sampling and segment layout gives NeuroKit2's values."""
    checked = 0
    for _name, _lf, _hf, rr, t, bridged in freq_windows[::3]:
        if bridged or _nk_segments(t) == 3:
            continue
        n, nperseg = _nk_layout(t)
        grid = np.minimum(t[0] + np.arange(n) / 100.0, t[-1])
        sig = scipy.interpolate.CubicSpline(t, rr, bc_type="natural")(grid)
        lf, hf = _bands(sig, 100.0, nperseg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fd = nk.hrv_frequency({"RRI": rr, "RRI_Time": t}, normalize=False)
        nlf, nhf = float(fd["HRV_LF"].iloc[0]), float(fd["HRV_HF"].iloc[0])
        assert lf == pytest.approx(nlf, rel=0.10)
        assert hf == pytest.approx(nhf, rel=0.10)
        assert lf / hf == pytest.approx(nlf / nhf, rel=0.10)
        checked += 1
    assert checked >= 20


def test_frequency_equals_own_formula_with_scipy(freq_windows) -> None:
    """All windows, bridged ones included (there the spline convention is ours)."""
    n_bridged = 0
    for _name, lf, hf, rr, t, bridged in freq_windows:
        own_lf, own_hf = _own_formula(rr, t)
        assert lf == pytest.approx(own_lf, rel=1e-6)
        assert hf == pytest.approx(own_hf, rel=1e-6)
        n_bridged += bridged
    assert n_bridged >= 100


@pytest.fixture(scope="module")
def real_windows():
    return [w for rec in RECORDS for w in _windows(*rec)]


def test_time_domain_and_poincare_match_neurokit(real_windows) -> None:
    from neurokit2.hrv.hrv_nonlinear import _hrv_nonlinear_poincare
    from neurokit2.hrv.hrv_utils import _hrv_format_input

    assert len(real_windows) >= 30
    for win, i, rr, t, succ in real_windows:
        d = {"RRI": rr, "RRI_Time": t}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            td = nk.hrv_time(d)
            rri, rt, miss = _hrv_format_input(d)
            pc = _hrv_nonlinear_poincare(rri, rri_time=rt, rri_missing=miss, out={})
        f = {k: win.features[k][i] for k in HRV_KEYS}
        assert f["mean_nn_ms"] == pytest.approx(td["HRV_MeanNN"][0], rel=1e-6)
        assert f["sdnn_ms"] == pytest.approx(td["HRV_SDNN"][0], rel=1e-6)
        assert f["rmssd_ms"] == pytest.approx(td["HRV_RMSSD"][0], rel=1e-6)
        assert f["sd1_ms"] == pytest.approx(pc["SD1"], rel=1e-6)
        assert f["sd2_ms"] == pytest.approx(pc["SD2"], rel=1e-6)
        # deliberate difference: our denominator is the number of differences
        n_diff = int(succ.sum())
        assert f["pnn50_pct"] == pytest.approx(td["HRV_pNN50"][0] * (n_diff + 1) / n_diff, rel=1e-6)
        diffs = np.diff(rr)[succ]
        assert f["pnn50_pct"] == pytest.approx(100 * np.mean(np.abs(diffs) > 50), rel=1e-12)
        assert f["mean_hr_bpm"] == pytest.approx(60000 / np.mean(rr), rel=1e-12)


def test_dfa_and_sampen_match_neurokit_on_gap_free_windows(real_windows) -> None:
    """DFA with NeuroKit2's scales 4..11 (``DFA_SCALES_NEUROKIT``)."""
    checked = 0
    for win, i, rr, _t, succ in real_windows:
        if not succ.all():
            continue
        alpha, _ = nk.fractal_dfa(rr, scale=np.arange(4, 12))
        se, _ = nk.entropy_sample(rr, delay=1, dimension=2, tolerance=0.2 * np.std(rr, ddof=1))
        assert win.features["dfa_alpha1"][i] == pytest.approx(alpha, rel=1e-6)
        assert win.features["sampen"][i] == pytest.approx(se, rel=1e-6)
        checked += 1
    assert checked >= 10


def _ref_dfa_alpha1(rr: np.ndarray, scales: range) -> float:
    """DFA alpha1 as Peng et al. 1995 write it: integrate, cut into boxes of n beats
    (here every n//2 beats, as NeuroKit2), fit a line per box, F(n) = RMS residual.
    Boxes the line fits exactly (variance <= 1e-8: quantised RR, constant for n beats)
    are left out, as NeuroKit2 does."""
    y = np.cumsum(rr - rr.mean())
    log_f = []
    for n in scales:
        res = []
        for s in range(0, rr.size - n, n // 2):
            box = y[s : s + n]
            fit = np.polyval(np.polyfit(np.arange(n), box, 1), np.arange(n))
            var = np.mean((box - fit) ** 2)
            if var > 1e-8:
                res.append(var)
        log_f.append(0.5 * np.log2(np.mean(res)))
    return float(np.polyfit(np.log2(np.array(list(scales))), log_f, 1)[0])


def test_dfa_default_scales_4_to_16_equal_plain_formula() -> None:
    checked = 0
    for win, i, rr, _t, succ in _windows(*RECORDS[0], n_windows=8, scales=DFA_SCALES):
        if not succ.all():
            continue
        ours = win.features["dfa_alpha1"][i]
        assert ours == pytest.approx(_ref_dfa_alpha1(rr, range(4, 17)), rel=1e-9)
        assert ours != pytest.approx(_ref_dfa_alpha1(rr, range(4, 12)), rel=1e-3)
        checked += 1
    assert checked >= 5


def _ref_sampen(rr: np.ndarray, ok_template: np.ndarray, r: float) -> float:
    """Plain double loop over the allowed templates (start indices)."""
    idx = np.flatnonzero(ok_template)
    a = b = 0
    for p_i, i in enumerate(idx):
        for j in idx[p_i + 1 :]:
            if abs(rr[i] - rr[j]) <= r and abs(rr[i + 1] - rr[j + 1]) <= r:
                b += 1
                if abs(rr[i + 2] - rr[j + 2]) <= r:
                    a += 1
    return -np.log(a / b)


def test_gap_rules_against_own_formulas() -> None:
    rng = np.random.default_rng(3)
    rr = 800 + np.cumsum(rng.normal(0, 8, 400)) * 0.3 + rng.normal(0, 15, 400)
    t = np.cumsum(rr) / 1000.0
    t[200:] += 30.0  # a 30 s signal loss before beat 200
    assert np.all(clean_rr(rr, t).reason == 0)  # only the gap breaks the series
    res = hrv_summary(rr, t)
    succ = np.ones(400, dtype=bool)
    succ[0] = False
    succ[200] = False
    d = np.diff(rr)[succ[1:]]
    assert res.features["rmssd_ms"] == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-12)
    assert res.features["pnn50_pct"] == pytest.approx(100 * np.mean(np.abs(d) > 50), rel=1e-12)
    ok = np.zeros(400, dtype=bool)
    ok[:398] = succ[1:399] & succ[2:400]
    r = 0.2 * np.std(rr, ddof=1)
    assert res.features["sampen"] == pytest.approx(_ref_sampen(rr, ok, r), rel=1e-12)
    # DFA: same as two halves' segments pooled; check against a direct loop
    y = np.cumsum(rr - rr.mean())
    logf = []
    for n in range(4, 17):  # the default scales, 4..16 beats
        var = []
        for s in range(0, 400 - n, n // 2):
            if s < 200 < s + n:  # segment contains the gap
                continue
            seg = y[s : s + n]
            coef = np.polyfit(np.arange(n), seg, 1)
            v = np.var(seg - np.polyval(coef, np.arange(n)))
            if v > 1e-8:
                var.append(v)
        logf.append(0.5 * np.log2(np.mean(var)))
    alpha = np.polyfit(np.log2(np.arange(4, 17)), logf, 1)[0]
    assert res.features["dfa_alpha1"] == pytest.approx(alpha, rel=1e-9)
    assert np.isnan(res.features["lf_ms2"])
    assert res.flags & Quality.GAP_IN_WINDOW


def test_hrv_features_equals_single_window() -> None:
    rng = np.random.default_rng(1)
    rr = 900 + rng.normal(0, 30, 330)
    t = np.cumsum(rr) / 1000.0
    whole = hrv_features(rr)
    assert set(whole) == set(HRV_KEYS)
    win = hrv_windows(t, rr, window_s=float(np.ceil(t[-1])) + 1.0, origin_s=0.0)
    assert len(win) == 1 and win.flags[0] == 0
    for key in HRV_KEYS:
        assert whole[key] == pytest.approx(win.features[key][0], rel=1e-12, nan_ok=True)


@pytest.mark.parametrize(
    "rr",
    [
        np.array([]),
        np.array([800.0]),
        np.full(50, np.nan),
        np.full(300, 800.0),
        np.array([800.0, 810.0, 3_600_000.0, 790.0, 805.0]),
        np.array([np.inf, -5.0, 0.0, 1e9]),
    ],
    ids=["empty", "single", "all_nan", "constant", "huge_gap", "garbage"],
)
def test_thin_or_bad_input_gives_nan_and_flag(rr: np.ndarray) -> None:
    res = hrv_summary(rr)
    assert set(res.features) == set(HRV_KEYS)
    assert all(isinstance(v, float) for v in res.features.values())
    assert np.isnan(res.features["sdnn_ms"])
    assert res.flags != 0 and res.quality


def test_constant_rr_keeps_mean_but_flags() -> None:
    res = hrv_summary(np.full(300, 750.0))
    assert res.features["mean_nn_ms"] == 750.0
    assert res.features["mean_hr_bpm"] == 80.0
    assert res.flags & Quality.CONSTANT_RR


def test_windows_with_no_beats_are_reported() -> None:
    rr = np.full(400, 800.0) + np.tile([0.0, 20.0, -10.0, 5.0], 100)
    t = np.cumsum(rr) / 1000.0
    t[200:] += 3600.0
    win = hrv_windows(t, rr, window_s=300)
    assert len(win) > 12
    empty = win.n_beats == 0
    assert empty.sum() >= 10
    assert np.all(win.flags[empty] & Quality.NO_BEATS)
    assert np.all(np.isnan(win.features["sdnn_ms"][empty]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=400))
def test_never_raises(values: list[float]) -> None:
    out = hrv_features(np.array(values, dtype=float))
    assert set(out) == set(HRV_KEYS)
