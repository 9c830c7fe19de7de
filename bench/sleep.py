"""Benchmark: sleep scoring agreement on Depresjon counts, and the HR rest detector on RR records.

Usage: ``.venv/bin/python bench/sleep.py [--json-only] [--files N]``

1. **Scoring agreement, per minute, all 55 Depresjon files** (minute counts;
   missing minutes, i.e. the DST hour, set to 0 as pyActigraphy would need a
   regular series). ``processing.features.sleep`` against literal,
   loop-based transcriptions (``tests/unit/sleep_reference.py``) in two
   conventions: ``paper`` (the formulas as published) and ``pyactigraphy``
   (the choices pyActigraphy 1.2.2 makes where it differs). The peer is
   pyActigraphy's algorithm; pyActigraphy itself is not installed (its
   dependency ``accelerometer`` pins scikit-learn 1.0.1: no Python 3.11
   wheel, a source build that would replace the installed scikit-learn), so
   its conventions were transcribed and the transcription checked once
   against pyActigraphy's own scoring functions loaded from its wheel
   (docs/features.md): ``--pyactigraphy-src DIR`` (an unpacked
   pyActigraphy wheel, e.g. from ``pip download --no-deps pyactigraphy``)
   repeats that check, running its ``_cole_kripke``, ``_sadeh`` and
   ``rescore`` with numba replaced by a no-op decorator.
   Reported per algorithm: % of equal minutes and Cohen's kappa, median and
   minimum over files, and the pooled count of minutes.
2. **HR rest detector on 24-h Holter RR records** (nsr2db, chf2db): minute HR
   (mean of 60/RR over in-range beats, >= 20 beats), no steps; the record is
   the noon-to-noon stretch. No clock times or sleep labels exist in these
   files, so this checks plausibility only: share of records with a period,
   its duration, HR dip, and overlap with the record's lowest-HR 6 h.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing.features import sleep
from processing.features.hr_dip import hr_dip_pct
from processing.features.io import read_activity
from processing.features.rest_hr import rest_period, smoothed_hr
from tests.unit import sleep_reference as ref


def data_root() -> Path:
    env = os.environ.get("WELLSENSE_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def scorings(c: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(ours, reference) per comparison; the edges pyActigraphy leaves unscored are cut."""
    ck = sleep.sleep_wake(c)
    ck_mean = sleep.sleep_wake(c / 30.0, weights=sleep.CK_MEAN_WEIGHTS, scale=sleep.CK_MEAN_SCALE)
    py_ck = ref.cole_kripke(
        c / 30.0, sleep.CK_MEAN_WEIGHTS, sleep.CK_MEAN_SCALE, convention="pyactigraphy"
    )
    i = np.arange(c.size)
    py_ck_edges = np.where((i < 4) | (i >= c.size - 4), 0.0, ck_mean)
    inner = slice(4, -4)
    return {
        "cole_kripke_vs_paper": (
            ck,
            ref.cole_kripke(c, sleep.CK_WEIGHTS, sleep.CK_SCALE, convention="paper"),
        ),
        "cole_kripke_mean_vs_pyactigraphy": (ck_mean[inner], py_ck[inner]),
        "webster_vs_paper": (sleep.webster_rescore(ck), ref.webster(ck, convention="paper")),
        "webster_vs_pyactigraphy": (
            sleep.webster_rescore(py_ck_edges),
            ref.webster(py_ck, convention="pyactigraphy"),
        ),
        "sadeh_vs_paper": (sleep.sadeh(c), ref.sadeh(c, convention="paper")),
        "sadeh_vs_pyactigraphy": (sleep.sadeh(c), ref.sadeh(c, convention="pyactigraphy")),
    }


def scoring_agreement(root: Path, max_files: int | None) -> dict[str, dict[str, float]]:
    files = sorted((root / "depresjon").glob("*/*.csv.gz"))[:max_files]
    per: dict[str, list[tuple[float, float, int]]] = {}
    for path in files:
        c = np.nan_to_num(np.asarray(read_activity(path).activity, dtype=np.float64))
        for name, (ours, theirs) in scorings(c).items():
            per.setdefault(name, []).append(ref.agreement(ours, theirs))
    out: dict[str, dict[str, float]] = {}
    for name, rows in per.items():
        pct = np.array([r[0] for r in rows])
        kappa = np.array([r[1] for r in rows])
        out[name] = {
            "files": len(rows),
            "minutes": int(sum(r[2] for r in rows)),
            "pct_equal_median": round(float(np.median(pct)), 4),
            "pct_equal_min": round(float(pct.min()), 4),
            "kappa_median": round(float(np.nanmedian(kappa)), 4),
            "kappa_min": round(float(np.nanmin(kappa)), 4),
        }
    return out


def minute_hr(path: Path) -> np.ndarray:
    v = np.loadtxt(path)
    rr_s = v[1:]
    t = v[0] + np.cumsum(rr_s)
    ok = (rr_s > 0.3) & (rr_s < 2.0)
    minute = (t[ok] // 60).astype(np.int64)
    n = int(minute.max()) + 1
    cnt = np.bincount(minute, minlength=n)
    tot = np.bincount(minute, weights=60.0 / rr_s[ok], minlength=n)
    return np.where(cnt >= 20, tot / np.maximum(cnt, 1), np.nan)


def lowest_hr_window(hr: np.ndarray, width: int = 360) -> int:
    """Start of the lowest-mean ``width``-minute window of the smoothed HR."""
    h = smoothed_hr(hr)
    cs = np.concatenate(([0.0], np.cumsum(np.nan_to_num(h))))
    cc = np.concatenate(([0], np.cumsum(np.isfinite(h))))
    n_ok = cc[width:] - cc[:-width]
    mean = (cs[width:] - cs[:-width]) / np.maximum(n_ok, 1)
    return int(np.argmin(np.where(n_ok >= width // 2, mean, np.inf)))


def rest_on_rr(root: Path, sets: tuple[str, ...]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in sets:
        rows = []
        files = sorted((root / "rr" / name).glob("*.txt.gz"))
        for path in files:
            hr = minute_hr(path)
            p = rest_period(hr, np.full(hr.size, np.nan))
            if p is None:
                continue
            inside = np.zeros(hr.size, dtype=bool)
            inside[p.onset : p.offset] = True
            low = lowest_hr_window(hr)
            rows.append(
                (
                    (p.offset - p.onset) / 60.0,
                    hr_dip_pct(hr, inside),
                    float(inside[low : low + 360].mean()),
                    p.waso_min,
                )
            )
        a = np.array(rows)
        out[name] = {
            "records": len(files),
            "with_period": len(rows),
            "duration_h_median": round(float(np.median(a[:, 0])), 2),
            "duration_h_min": round(float(a[:, 0].min()), 2),
            "duration_h_max": round(float(a[:, 0].max()), 2),
            "hr_dip_pct_median": round(float(np.median(a[:, 1])), 1),
            "hr_dip_pct_min": round(float(np.nanmin(a[:, 1])), 1),
            "lowest_hr_6h_inside_median": round(float(np.median(a[:, 2])), 3),
            "lowest_hr_6h_mostly_inside_share": round(float(np.mean(a[:, 2] >= 0.5)), 3),
            "waso_min_median": float(np.median(a[:, 3])),
        }
    return out


def load_pyactigraphy(src: Path) -> dict[str, Any]:
    """pyActigraphy's scoring functions from an unpacked wheel, without its dependencies."""
    numba = types.ModuleType("numba")
    numba.jit = lambda *a, **k: lambda f: f  # type: ignore[attr-defined]
    numba.prange = range  # type: ignore[attr-defined]
    sys.modules.setdefault("numba", numba)
    base = src / "pyActigraphy" / "sleep"
    utils: dict[str, Any] = {}
    exec(compile((base / "scoring" / "utils.py").read_text(), "pyact_utils", "exec"), utils)
    tree = ast.parse((base / "scoring_base.py").read_text())
    wanted = {"_window_convolution", "_cole_kripke", "_sadeh"}
    body: list[ast.stmt] = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted
    ]
    funcs: dict[str, Any] = {"np": np, "pd": pd}
    exec(compile(ast.Module(body=body, type_ignores=[]), "pyact_base", "exec"), funcs)
    return {"cole_kripke": funcs["_cole_kripke"], "sadeh": funcs["_sadeh"],
            "rescore": utils["rescore"]}  # fmt: skip


def against_pyactigraphy(root: Path, src: Path, max_files: int | None) -> dict[str, float]:
    """Transcription (pyactigraphy convention) vs pyActigraphy's own code, minute by minute."""
    py = load_pyactigraphy(src)
    window = np.array([*sleep.CK_MEAN_WEIGHTS, 0, 0])
    differ = {"cole_kripke": 0, "webster": 0, "sadeh": 0}
    minutes = 0
    for path in sorted((root / "depresjon").glob("*/*.csv.gz"))[:max_files]:
        c = np.nan_to_num(np.asarray(read_activity(path).activity, dtype=np.float64))
        series = pd.Series(c, index=pd.date_range("2000-01-01", periods=c.size, freq="60s"))
        ck = py["cole_kripke"](series / 30, sleep.CK_MEAN_SCALE, window, 1.0)
        ck = ck.to_numpy(dtype=np.float64)
        ours_ck = ref.cole_kripke(
            c / 30.0, sleep.CK_MEAN_WEIGHTS, sleep.CK_MEAN_SCALE, convention="pyactigraphy"
        )
        web = ck * py["rescore"](ck.astype(int), sleep_score=1)
        sd = py["sadeh"](series, sleep.SADEH_OFFSET, np.array(sleep.SADEH_WEIGHTS), 0.0)
        differ["cole_kripke"] += int(np.sum(ours_ck != ck))
        differ["webster"] += int(np.sum(ref.webster(ck, convention="pyactigraphy") != web))
        differ["sadeh"] += int(np.sum(ref.sadeh(c, convention="pyactigraphy") != sd.to_numpy()))
        minutes += c.size
    return {"minutes": minutes, **{f"{k}_minutes_differing": v for k, v in differ.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json-only", action="store_true")
    ap.add_argument("--files", type=int, default=None, help="only the first N Depresjon files")
    ap.add_argument(
        "--pyactigraphy-src",
        type=Path,
        default=None,
        help="unpacked pyActigraphy wheel: check the transcription against it",
    )
    args = ap.parse_args()
    root = data_root()
    result: dict[str, Any] = {
        "peer": "pyActigraphy 1.2.2 conventions (transcribed) and the published formulas",
        "scoring_agreement_depresjon": scoring_agreement(root, args.files),
        "hr_rest_detector_rr": rest_on_rr(root, ("nsr2db", "chf2db")),
    }
    if args.pyactigraphy_src is not None:
        result["transcription_vs_pyactigraphy_code"] = against_pyactigraphy(
            root, args.pyactigraphy_src, args.files
        )
    print(json.dumps(result, indent=2))
    if not args.json_only:
        for name, row in result["scoring_agreement_depresjon"].items():
            print(f"{name:36s} {row['pct_equal_median']:8.4f} % kappa {row['kappa_median']:.4f}",
                  file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
