"""Benchmark: WellSense HRV vs NeuroKit2 on >= 2,000 real five-minute windows.

Usage: ``.venv/bin/python bench/hrv.py [--records N] [--min-windows 2000]``

Both implementations see the same NN intervals: the records are cleaned once
with ``processing.features.rr_clean.clean_rr`` and NeuroKit2 gets each usable
window's kept intervals with their beat times (so it, too, leaves out
differences across gaps). Timed: for WellSense ``hrv_windows`` over whole
records, cleaning included (best of 3); for NeuroKit2 ``hrv_time`` +
``hrv_frequency(normalize=False)`` + Poincaré SD1/SD2 + ``fractal_dfa``
(scales 4..11; ours is run with the same ``DFA_SCALES_NEUROKIT``, not its
default 4..16) + ``entropy_sample`` (m=2, r=0.2 SD) per window. Prints JSON.

Comparison notes (see processing/features/hrv.py):
* pNN50: NeuroKit2 divides by len(diff)+1; its value is rescaled to our
  denominator before comparing.
* DFA alpha1 and SampEn: compared on windows without gaps or rejected beats
  (we skip segments/templates across gaps; NeuroKit2 concatenates).
* LF/HF: two conventions differ (module docstring of processing/features/hrv.py):
  the spline that bridges a rejected beat or gap (ours natural cubic at 4 Hz,
  NeuroKit2 quadratic at 100 Hz), and NeuroKit2's Welch layout, which in
  windows where its segment length is odd fits 2 segments and skips the last
  quarter. ``relative_difference_comparable`` covers the windows where the
  conventions coincide (no bridged hole, NeuroKit2 uses 3 segments, as we do);
  ``relative_difference`` all windows; ``relative_difference_by_class`` each
  combination. ``lf_hf_all_windows`` is the distribution of the LF, HF and
  LF/HF relative differences over every compared window (median, p90, max,
  fraction within 10 %): the number the docs quote.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing.features.hrv import DFA_SCALES_NEUROKIT, HRV_KEYS, HRVWindows, hrv_windows
from processing.features.io import read_rr
from processing.features.rr_clean import CleanRR, clean_rr


def data_root() -> Path:
    env = os.environ.get("WELLSENSE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load_records(root: Path, n_per_set: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for folder, pattern, unit, skip in (
        ("nsr2db", "*.txt.gz", "s", True),
        ("chf2db", "*.txt.gz", "s", True),
        ("healthy-irurzun", "*.txt", "ms", False),
    ):
        for path in sorted((root / "rr" / folder).glob(pattern))[:n_per_set]:
            rec = read_rr(path, unit=unit, skip_first=skip)
            t = np.cumsum(rec.rr_ms) / 1000.0
            out.append((f"{folder}/{path.name}", t, rec.rr_ms))
    return out


def neurokit_window(rr: np.ndarray, t: np.ndarray) -> dict[str, float]:
    import neurokit2 as nk
    from neurokit2.hrv.hrv_nonlinear import _hrv_nonlinear_poincare
    from neurokit2.hrv.hrv_utils import _hrv_format_input

    d = {"RRI": rr, "RRI_Time": t}
    td = nk.hrv_time(d)
    fd = nk.hrv_frequency(d, normalize=False)
    rri, rri_t, missing = _hrv_format_input(d)
    pc = _hrv_nonlinear_poincare(rri, rri_time=rri_t, rri_missing=missing, out={})
    alpha1, _ = nk.fractal_dfa(rr, scale=np.arange(4, 12))
    sampen, _ = nk.entropy_sample(rr, delay=1, dimension=2, tolerance=0.2 * np.std(rr, ddof=1))
    return {
        "mean_nn_ms": float(td["HRV_MeanNN"].iloc[0]),
        "sdnn_ms": float(td["HRV_SDNN"].iloc[0]),
        "rmssd_ms": float(td["HRV_RMSSD"].iloc[0]),
        "pnn50_pct": float(td["HRV_pNN50"].iloc[0]),
        "sd1_ms": float(pc["SD1"]),
        "sd2_ms": float(pc["SD2"]),
        "lf_ms2": float(fd["HRV_LF"].iloc[0]),
        "hf_ms2": float(fd["HRV_HF"].iloc[0]),
        "lf_hf": float(fd["HRV_LFHF"].iloc[0]),
        "dfa_alpha1": float(alpha1),
        "sampen": float(sampen),
    }


def nk_welch_segments(t: np.ndarray) -> int:
    """Number of Welch segments NeuroKit2 uses for a window (its own arithmetic)."""
    n = np.arange(t[0], t[-1] + 0.01, 0.01).size
    min_f = (2 * 100) / (n / 2)
    nperseg = min(int((2 / min_f) * 100), int(n / 2))
    step = nperseg - nperseg // 2
    return (n - nperseg) // step + 1


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=3, help="records per data set (default 3)")
    ap.add_argument("--min-windows", type=int, default=2000)
    args = ap.parse_args(argv)
    root = data_root()
    if not (root / "rr").is_dir():
        print(f"RR data not found under {root} (set WELLSENSE_SHARED_DATA)", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore")
    records = load_records(root, args.records)

    ours_s = 0.0
    results: list[tuple[HRVWindows, CleanRR]] = []
    for _, t, rr in records:
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            win = hrv_windows(t, rr, window_s=300.0, dfa_scales=DFA_SCALES_NEUROKIT)
            best = min(best, time.perf_counter() - t0)
        ours_s += best
        results.append((win, clean_rr(rr, t)))
    n_windows = sum(len(w) for w, _ in results)

    nk_s = 0.0
    rel: dict[str, list[float]] = {k: [] for k in HRV_KEYS if k != "mean_hr_bpm"}
    freq_keys = ("lf_ms2", "hf_ms2", "lf_hf")
    classes = ("gap_free_nk3", "bridged_nk3", "gap_free_nk2", "bridged_nk2")
    rel_class: dict[str, dict[str, list[float]]] = {c: {k: [] for k in freq_keys} for c in classes}
    n_compared = n_gapfree = 0
    for win, clean in results:
        for i in np.flatnonzero(win.flags == 0):
            sel = (clean.t_s >= win.start_s[i]) & (clean.t_s < win.end_s[i])
            rr_w, t_w = clean.rr_ms[sel], clean.t_s[sel]
            t0 = time.perf_counter()
            ref = neurokit_window(rr_w, t_w)
            nk_s += time.perf_counter() - t0
            n_compared += 1
            succ = clean.successive[sel][1:]
            n_diff = int(succ.sum())
            ref["pnn50_pct"] *= (n_diff + 1) / n_diff  # NeuroKit2 -> our denominator
            gapfree = bool(succ.all())
            n_gapfree += gapfree
            cls = ("gap_free" if gapfree else "bridged") + (
                "_nk3" if nk_welch_segments(t_w) == 3 else "_nk2"
            )
            for key, value in ref.items():
                if key in ("dfa_alpha1", "sampen") and not gapfree:
                    continue
                ours = float(win.features[key][i])
                diff = abs(ours - value) / abs(value) if value != 0 else abs(ours)
                rel[key].append(diff)
                if key in freq_keys:
                    rel_class[cls][key].append(diff)

    def summary(values: list[float]) -> dict[str, float | int]:
        arr = np.asarray(values)
        if arr.size == 0:
            return {"n": 0}
        return {
            "n": int(arr.size),
            "max": float(np.nanmax(arr)),
            "median": float(np.nanmedian(arr)),
            "p90": float(np.nanquantile(arr, 0.9)),
            "within_10pct": float(np.mean(arr <= 0.10)),
        }

    out = {
        "records": [name for name, _, _ in records],
        "windows_total": n_windows,
        "windows_compared": n_compared,
        "windows_gap_free": n_gapfree,
        "wellsense_seconds": round(ours_s, 4),
        "neurokit2_seconds": round(nk_s, 3),
        "wellsense_seconds_per_compared_window": ours_s / max(n_compared, 1),
        "neurokit2_seconds_per_window": nk_s / max(n_compared, 1),
        "speed_ratio": round(nk_s / ours_s, 1) if ours_s > 0 else None,
        "max_relative_difference": {k: summary(v).get("max") for k, v in rel.items()},
        "relative_difference": {k: summary(v) for k, v in rel.items()},
        "lf_hf_all_windows": {k: summary(rel[k]) for k in freq_keys},
        "relative_difference_comparable": {
            k: summary(v) for k, v in rel_class["gap_free_nk3"].items()
        },
        "relative_difference_by_class": {
            c: {k: summary(v) for k, v in d.items()} for c, d in rel_class.items()
        },
    }
    print(json.dumps(out, indent=2))
    if n_compared < args.min_windows:
        print(f"only {n_compared} windows compared (< {args.min_windows})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
