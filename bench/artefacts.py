"""Benchmark: RR artefact classification, WellSense vs NeuroKit2, on real records.

Usage: ``.venv/bin/python bench/artefacts.py [--records N] [--out FILE]``

Per record of nsr2db, chf2db and healthy-irurzun (all by default; ``--records N``
takes the first N of each set), on its in-range intervals (300..2000 ms, the
same series ``clean_rr`` classifies):

* ``ours``: ``processing.features.rr_clean.classify_beats`` (Lipponen &
  Tarvainen 2019 with this project's 10 % threshold floor);
* ``paper``: the same code with the floor off (``min_threshold_frac=1e-9``),
  i.e. the published rule;
* ``neurokit2``: ``signal_fixpeaks(method="kubios", iterative=False)``, whose
  classes are mapped to our interval index (NeuroKit2 prepends one interval).

For each: flagged beats (any class), agreement with NeuroKit2 (both, only
ours, only NeuroKit2, Jaccard, Cohen's kappa) over all beats and over the
beats whose interval jumps by >= 15 % of the 11-beat median (where an artefact
is physiologically plausible), the median jump |dRR| / median of the beats only
NeuroKit2 flags, and the kept fraction of ``clean_rr`` on the
raw record with the default method and with ``method="malik20"``.

``synthetic``: sinus rhythm with respiratory sinus arrhythmia, RR = base (1 +
rsa sin(2 pi f t)) + N(0, 10 ms), 30 min per case: the kept fraction of both
methods (no artefacts in it), and the share of injected premature beats
(``early`` x RR early, full compensatory pause, 40 per series) whose two
intervals are both rejected. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing.features.io import read_rr
from processing.features.rr_clean import (
    MAX_RR_MS,
    MIN_RR_MS,
    _rolling_quantiles,
    classify_beats,
    clean_rr,
)

SETS = (
    ("nsr2db", "*.txt.gz", "s", True),
    ("chf2db", "*.txt.gz", "s", True),
    ("healthy-irurzun", "*.txt", "ms", False),
)
PLAUSIBLE_JUMP = 0.15  # |dRR| / 11-beat median


def data_root() -> Path:
    env = os.environ.get("WELLSENSE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def neurokit_flags(x: np.ndarray) -> np.ndarray:
    from neurokit2.signal.signal_fixpeaks import signal_fixpeaks

    peaks = np.concatenate(([0.0], np.cumsum(x)))
    info, _ = signal_fixpeaks(peaks, sampling_rate=1000, iterative=False, method="kubios")
    flags = np.zeros(x.size, dtype=bool)
    for key in ("ectopic", "missed", "extra", "longshort"):
        i = np.asarray(info[key], dtype=np.int64) - 1
        flags[i[i >= 0]] = True
    return flags


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """a = a method's flags, b = NeuroKit2's."""
    n = a.size
    both, only_a, only_b = int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b))
    po = float(np.mean(a == b)) if n else float("nan")
    pa, pb = (float(a.mean()), float(b.mean())) if n else (0.0, 0.0)
    pe = pa * pb + (1 - pa) * (1 - pb)
    union = both + only_a + only_b
    return {
        "beats": n,
        "flagged": int(a.sum()),
        "neurokit2_flagged": int(b.sum()),
        "both": both,
        "only_ours": only_a,
        "only_neurokit2": only_b,
        "jaccard": both / union if union else 1.0,
        "kappa": (po - pe) / (1 - pe) if pe < 1 else 1.0,
    }


def one_record(path: Path, unit: str, skip: bool) -> dict[str, Any]:
    rec = read_rr(path, unit=unit, skip_first=skip)
    raw = rec.rr_ms
    x = raw[np.isfinite(raw) & (raw >= MIN_RR_MS) & (raw <= MAX_RR_MS)]
    t0 = time.perf_counter()
    ours = classify_beats(x) > 0
    ours_s = time.perf_counter() - t0
    with np.errstate(divide="ignore", invalid="ignore"):
        paper = classify_beats(x, min_threshold_frac=1e-9) > 0
    t0 = time.perf_counter()
    nk = neurokit_flags(x)
    nk_s = time.perf_counter() - t0
    (med,) = _rolling_quantiles(x, 11, (0.5,))
    rel_jump = np.abs(np.diff(x, prepend=x[0])) / med
    jump = rel_jump >= PLAUSIBLE_JUMP
    return {
        "record": f"{path.parent.name}/{path.name}",
        "ours": agreement(ours, nk),
        "ours_plausible": agreement(ours[jump], nk[jump]),
        "paper": agreement(paper, nk),
        "neurokit2_only_median_jump": float(np.median(rel_jump[nk & ~ours]))
        if np.any(nk & ~ours)
        else None,
        "kept_fraction": clean_rr(raw).kept_fraction,
        "kept_fraction_malik20": clean_rr(raw, method="malik20").kept_fraction,
        "seconds": {"ours": round(ours_s, 3), "neurokit2": round(nk_s, 3)},
    }


def sinus_rsa(base_ms: float, rsa: float, breath_hz: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi)
    t, out = 0.0, []
    while t < 1800.0:
        rr = base_ms * (1 + rsa * np.sin(2 * np.pi * breath_hz * t + phase)) + rng.normal(0, 10)
        t += rr / 1000.0
        out.append(rr)
    return np.array(out)


def synthetic() -> dict[str, Any]:
    kept: list[dict[str, Any]] = []
    caught: list[dict[str, Any]] = []
    for base in (800.0, 1000.0, 1200.0):
        for rsa in (0.2, 0.3):
            for f in (0.1, 0.15, 0.25):
                rr = sinus_rsa(base, rsa, f, seed=int(base + 100 * rsa + 1000 * f))
                kept.append(
                    {
                        "base_ms": base,
                        "rsa": rsa,
                        "breath_hz": f,
                        "kept_fraction": clean_rr(rr).kept_fraction,
                        "kept_fraction_malik20": clean_rr(rr, method="malik20").kept_fraction,
                    }
                )
    rng = np.random.default_rng(1)
    for rsa in (0.0, 0.2, 0.3):
        for f in (0.1, 0.15, 0.25):
            rr = sinus_rsa(900.0, rsa, f, seed=7)
            pos = np.sort(rng.choice(np.arange(20, rr.size - 20, 12), 40, replace=False))
            for early in (0.2, 0.3, 0.4):
                x = rr.copy()
                x[pos] *= 1 - early
                x[pos + 1] = rr[pos] + rr[pos + 1] - x[pos]
                row: dict[str, Any] = {"rsa": rsa, "breath_hz": f, "early": early}
                for method in ("lipponen2019", "malik20"):
                    reason = clean_rr(x, method=method).reason  # type: ignore[arg-type]
                    row[method] = float(np.mean((reason[pos] != 0) & (reason[pos + 1] != 0)))
                caught.append(row)
    return {"rsa_kept": kept, "ectopic_caught": caught}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def q(values: list[float]) -> dict[str, float]:
        v = np.asarray(values, dtype=float)
        return {
            "min": float(v.min()),
            "median": float(np.median(v)),
            "max": float(v.max()),
        }

    return {
        "records": len(rows),
        "kappa_all_beats": q([r["ours"]["kappa"] for r in rows]),
        "kappa_plausible_beats": q([r["ours_plausible"]["kappa"] for r in rows]),
        "recall_of_neurokit2_plausible": q(
            [
                r["ours_plausible"]["both"] / max(r["ours_plausible"]["neurokit2_flagged"], 1)
                for r in rows
            ]
        ),
        "paper_rule_kappa": q([r["paper"]["kappa"] for r in rows]),
        "neurokit2_only_median_jump": q(
            [r["neurokit2_only_median_jump"] for r in rows if r["neurokit2_only_median_jump"]]
        ),
        "flagged_fraction_ours": q([r["ours"]["flagged"] / r["ours"]["beats"] for r in rows]),
        "flagged_fraction_neurokit2": q(
            [r["ours"]["neurokit2_flagged"] / r["ours"]["beats"] for r in rows]
        ),
        "kept_fraction": q([r["kept_fraction"] for r in rows]),
        "kept_fraction_malik20": q([r["kept_fraction_malik20"] for r in rows]),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=0, help="records per set (0 = all)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    root = data_root() / "rr"
    if not root.is_dir():
        print(f"RR data not found under {root} (set WELLSENSE_SHARED_DATA)", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore")
    out: dict[str, Any] = {"plausible_jump": PLAUSIBLE_JUMP, "sets": {}, "records": []}
    for folder, pattern, unit, skip in SETS:
        paths = sorted((root / folder).glob(pattern))
        if args.records:
            paths = paths[: args.records]
        rows = [one_record(p, unit, skip) for p in paths]
        out["records"] += rows
        out["sets"][folder] = summarise(rows)
    out["synthetic"] = synthetic()
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
