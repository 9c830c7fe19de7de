"""Benchmark: WellSense activity features on Depresjon (23 depressed patients, 32 controls).

Usage: ``.venv/bin/python bench/depresjon.py [--json-only]``

Per subject, ``processing.features.pipeline.activity_report`` runs on the whole
file. Non-wear handling (the same as the service): minutes inside a run of
>= 90 zero counts (Choi et al. 2011 rule, 2-min spikes tolerated) are set to
missing before any feature is computed, the DST spring-forward hour is
missing, and daily features use only days with >= 600 worn minutes, so the
partial first/last days and whole zero days drop out. Subject-level features
are means over valid days plus whole-file IS, IV, L5, M10, RA and SRI.

Reported: per-feature AUC for condition vs control (Mann-Whitney; > 0.5 means
higher in patients), and leave-one-subject-out logistic regression (NumPy,
L2 = 1.0, z-scored on the training folds, balanced class weights, threshold
0.5) with MCC and F1 (patients = positive class) for two feature sets.
Prints JSON, then a table to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing.features.io import read_activity
from processing.features.pipeline import activity_report

FEATURES = (
    "counts_mean_per_min_daily_mean",
    "counts_sd_per_min_daily_mean",
    "counts_zero_fraction_daily_mean",
    "is",
    "iv",
    "l5",
    "m10",
    "ra",
    "sri",
    "sleep_in_bed_min_mean",
)
FEATURE_SETS = {
    "garcia_ceja_3": (
        "counts_mean_per_min_daily_mean",
        "counts_sd_per_min_daily_mean",
        "counts_zero_fraction_daily_mean",
    ),
    "all": FEATURES,
}


def data_root() -> Path:
    env = os.environ.get("WELLSENSE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney U / (n_pos n_neg))."""
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float((np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """Weighted L2 logistic regression by Newton-Raphson; returns [bias, weights...]."""
    xb = np.column_stack([np.ones(len(x)), x])
    w_cls = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    beta = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2)
    reg[0] = 0.0  # no penalty on the bias
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(xb @ beta)))
        grad = xb.T @ (w_cls * (p - y)) + reg * beta
        hess = (xb * (w_cls * p * (1 - p))[:, None]).T @ xb + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def loso(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    pred = np.zeros(len(y), dtype=int)
    for i in range(len(y)):
        train = np.arange(len(y)) != i
        xt = x[train]
        mu = np.nanmean(xt, axis=0)
        sd = np.nanstd(xt, axis=0)
        sd[sd == 0] = 1.0
        z = np.nan_to_num((xt - mu) / sd)  # a missing value sits at the training mean
        beta = fit_logistic(z, y[train])
        zi = np.nan_to_num((x[i] - mu) / sd)
        pred[i] = int(beta[0] + zi @ beta[1:] > 0)
    return pred


def mcc_f1(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    tp = int(np.sum((p == 1) & (y == 1)))
    tn = int(np.sum((p == 0) & (y == 0)))
    fp = int(np.sum((p == 1) & (y == 0)))
    fn = int(np.sum((p == 0) & (y == 1)))
    den = np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    mcc = (tp * tn - fp * fn) / den if den > 0 else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return float(mcc), float(f1)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json-only", action="store_true")
    args = ap.parse_args(argv)
    root = data_root() / "depresjon"
    if not root.is_dir():
        print(f"Depresjon data not found under {root} (set WELLSENSE_SHARED_DATA)", file=sys.stderr)
        return 1
    subjects: list[tuple[str, int, dict[str, float]]] = []
    for group, label, n in (("condition", 1, 23), ("control", 0, 32)):
        for k in range(1, n + 1):
            rec = read_activity(root / group / f"{group}_{k}.csv.gz")
            summary = activity_report(rec.minute, rec.activity)["summary"]
            subjects.append((f"{group}_{k}", label, summary))
    y = np.array([s[1] for s in subjects])
    table = {f: np.array([float(s[2][f]) for s in subjects]) for f in FEATURES}
    aucs = {f: auc(v[y == 1], v[y == 0]) for f, v in table.items()}
    models = {}
    for name, feats in FEATURE_SETS.items():
        x = np.column_stack([table[f] for f in feats])
        pred = loso(x, y)
        mcc, f1 = mcc_f1(y, pred)
        models[name] = {
            "features": list(feats),
            "mcc": round(mcc, 3),
            "f1": round(f1, 3),
            "accuracy": round(float(np.mean(pred == y)), 3),
        }
    out = {
        "subjects": {"condition": int(y.sum()), "control": int((1 - y).sum())},
        "valid_days": {
            "condition": int(sum(s[2]["n_valid_days"] for s in subjects if s[1] == 1)),
            "control": int(sum(s[2]["n_valid_days"] for s in subjects if s[1] == 0)),
        },
        "nonwear_minutes_total": int(sum(s[2]["nonwear_min"] for s in subjects)),
        "auc_condition_vs_control": {f: round(a, 3) for f, a in aucs.items()},
        "median_condition": {f: float(np.nanmedian(v[y == 1])) for f, v in table.items()},
        "median_control": {f: float(np.nanmedian(v[y == 0])) for f, v in table.items()},
        "loso_logistic_regression": models,
        "published": {
            "garcia_ceja_2018_day_level_10fold": {"f1": 0.73, "mcc": 0.44},
            "jakobsen_2020_subject_level_loso_best_mcc": 0.44,
        },
    }
    print(json.dumps(out, indent=2))
    if not args.json_only:
        lines = [f"{'feature':<28} {'AUC':>6} {'median patients':>16} {'median controls':>16}"]
        for f in FEATURES:
            lines.append(
                f"{f:<28} {aucs[f]:>6.3f} {out['median_condition'][f]:>16.3f} "
                f"{out['median_control'][f]:>16.3f}"
            )
        lines.append("")
        lines.append(f"{'LOSO logistic regression':<28} {'MCC':>6} {'F1':>6} {'acc':>6}")
        for name, m in models.items():
            lines.append(f"{name:<28} {m['mcc']:>6.3f} {m['f1']:>6.3f} {m['accuracy']:>6.3f}")
        print("\n".join(lines), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
