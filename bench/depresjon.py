"""Benchmark: WellSense activity features on Depresjon (23 depressed patients, 32 controls).

Usage: ``.venv/bin/python bench/depresjon.py [--permutations N] [--day-permutations N]
[--json-only]`` (about 5 min).

Data window. ``scores.csv`` has a ``days`` column, described by the dataset's
authors as "days (number of days of measurements)" (Depresjon dataset
description, Garcia-Ceja et al. 2018); the files run longer (controls' files
more so: control_6 lists 13 days in 37 calendar dates). The description does
not say which days; we take the first ``days`` complete calendar days
(midnight to midnight) after the recording starts: every file starts in the
middle of a day, so its first calendar date is partial and left out. The
``days`` sum to 693 (the paper's "693 days" per the data folder's SOURCE.md;
the paper's text was not read here). Whole files are a sensitivity analysis.

Features are WellSense's own (``processing.features.pipeline.activity_report``
on the window). Two non-wear policies, both reported (declared, not chosen):
``nonwear_removed`` is the service's policy (minutes inside a run of >= 90 zero
counts, Choi et al. 2011, are missing); ``nonwear_kept`` counts every observed
minute as worn. A day is valid with >= 600 worn minutes.

Feature sets (fixed before this evaluation was run; see FEATURE SETS below):
Garcia-Ceja's 3 per-day features; a nonparametric rest-activity rhythm set;
and the 10 features the previous version of this bench used, kept unchanged
so that no set is chosen after seeing results.

Model: L2 logistic regression (NumPy Newton-Raphson), features z-scored on the
training subjects only (a missing value sits at the training mean), balanced
class weights, predicted "patient" when the logit is > 0. The L2 strength is
chosen inside each outer fold from ``L2_GRID`` by stratified ``INNER_K``-fold
cross-validation over the outer training subjects only (criterion: pooled
class-balanced log loss; ties go to the stronger penalty). Outer loop:
leave-one-subject-out. Day level: one row per valid day, folds by subject
(a subject's days are never in both training and test), plus a subject
prediction by majority vote of its days (tie: mean logit > 0).

Uncertainty: 95 % percentile intervals from ``N_BOOT`` bootstrap resamples of
subjects, stratified by class (day level: a resampled subject brings all its
days), seeded; they treat the out-of-fold predictions as fixed, so they leave
out the variance of refitting. Permutation test: the subject labels are
shuffled and the whole nested pipeline (inner tuning included) is rerun;
p = (1 + #{MCC_perm >= MCC}) / (1 + N).

Per-feature AUC (P(patient > control), Mann-Whitney) is reported for every
feature of the sets with a bootstrap interval; the single best feature is
picked post hoc, so its AUC is optimistic.

Published results (primary sources, quoted in ``PUBLISHED``): Garcia-Ceja E et
al. (2018) Proc ACM MMSys 472-477; Jakobsen P et al. (2020) PLoS ONE
15(8):e0231995.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing.features.io import read_activity
from processing.features.pipeline import activity_report

SEED = 20261129
N_BOOT = 2000
N_PERM = 1000
#: Day level: each permutation refits 330 x 5 models on ~690 days (~0.5 s on
#: a shared 2-core machine), so 1000 would take ~10 min per policy; 200 give a
#: p-value resolution of 1/201.
N_PERM_DAY = 200
#: Draws of the inner splits reported to show how much the nested result
#: depends on that random choice.
INNER_SEEDS = 20
L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
INNER_K = 5
NEWTON_ITERS = 50

# --- FEATURE SETS, fixed before the results were seen -----------------------
#: Garcia-Ceja et al. 2018 (and Jakobsen et al. 2020): mean, SD and proportion
#: of zero counts per day. Day level uses them per day; subject level their
#: mean over the subject's valid days.
GARCIA_CEJA_DAILY = ("counts_mean_per_min", "counts_sd_per_min", "counts_zero_fraction")
GARCIA_CEJA_3 = tuple(f"{k}_daily_mean" for k in GARCIA_CEJA_DAILY)
#: Nonparametric rest-activity rhythm (Witting 1990; Van Someren 1999): the
#: standard set, computed over the whole window (subject level only: IS needs
#: several days).
RHYTHM_5 = ("is", "iv", "ra", "l5", "m10")
#: The previous bench's 10 features, unchanged: the two sets above plus the
#: sleep regularity index and the mean main-sleep time in bed.
ALL_10 = GARCIA_CEJA_3 + RHYTHM_5 + ("sri", "sleep_in_bed_min_mean")
SUBJECT_SETS = {"garcia_ceja_3": GARCIA_CEJA_3, "rhythm_5": RHYTHM_5, "all_10": ALL_10}
POLICIES = {"nonwear_removed": True, "nonwear_kept": False}

PUBLISHED = {
    "garcia_ceja_2018": {
        "source": "Garcia-Ceja E et al. (2018) Depresjon: a motor activity database of "
        "depression episodes in unipolar and bipolar patients. Proc 9th ACM MMSys, 472-477. "
        "doi:10.1145/3204949.3208125",
        "quote_abstract": "We apply machine learning to classify patients into depressed and "
        "nondepressed. For evaluation of the algorithms, leave one patient out validation is "
        "performed. The best results achieved are an F1 score of 0.73 and a MCC of 0.44.",
        "f1": 0.73,
        "mcc": 0.44,
        "validation": "leave one patient out",
        "not_verified": "the abstract was read (as reproduced on the dataset's page); the "
        "paper's results table was not accessible here, so the classifier, the unit "
        "(day or subject) and the F1 averaging behind 0.73 / 0.44 are not verified",
    },
    "jakobsen_2020": {
        "source": "Jakobsen P et al. (2020) Applying machine learning in motor activity time "
        "series of depressed bipolar and unipolar patients compared to healthy controls. "
        "PLoS ONE 15(8):e0231995. doi:10.1371/journal.pone.0231995",
        "validation": "leave-one-user-out, subject level, mean / SD / proportion of zero activity",
        "all_patients_table2_1st_run": {
            "subjects": "23 patients vs 32 controls",
            "best": "weighted convolutional neural network, no oversampling",
            "mcc": 0.44,
            "accuracy": 0.73,
            "sensitivity": 0.65,
            "specificity": 0.78,
            "others_mcc": {
                "random_forest_no_oversampling": 0.19,
                "random_forest_smote": 0.36,
                "deep_neural_network_no_oversampling": 0.31,
                "deep_neural_network_random_oversampling": 0.35,
                "deep_neural_network_smote": 0.32,
            },
        },
        "motor_retarded_subset_table5_2nd_run": {
            "subjects": "17 motor-retarded patients vs 32 controls",
            "best": "deep neural network + SMOTE",
            "mcc": 0.65,
            "accuracy": 0.84,
            "sensitivity": 0.82,
            "specificity": 0.84,
            "note": "the MCC 0.65 of the abstract; not comparable with 23 vs 32",
        },
    },
}


def data_root() -> Path:
    env = os.environ.get("WELLSENSE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


# --- data -------------------------------------------------------------------


def read_days(path: Path) -> dict[str, int]:
    """``number -> days`` from Depresjon's ``scores.csv``."""
    with path.open(newline="") as f:
        return {row["number"]: int(row["days"]) for row in csv.DictReader(f)}


def first_complete_days(
    minute: np.ndarray, values: np.ndarray, n_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """The minutes of the first ``n_days`` complete calendar days after the start.

    The day the recording starts counts only if it starts at midnight.
    """
    m = np.asarray(minute, dtype="datetime64[m]")
    start = m.min().astype("datetime64[D]")
    if m.min() != start.astype("datetime64[m]"):
        start = start + np.timedelta64(1, "D")
    end = start + np.timedelta64(n_days, "D")
    sel = (m >= start.astype("datetime64[m]")) & (m < end.astype("datetime64[m]"))
    return m[sel], np.asarray(values)[sel]


@dataclass(frozen=True)
class Subject:
    name: str
    label: int  # 1 = patient ("condition")
    days_listed: int
    summary: dict[str, Any]
    days: list[dict[str, Any]]  # per calendar day of the window


def load_subject(
    root: Path, name: str, days_listed: int, *, remove_nonwear: bool, whole_file: bool = False
) -> Subject:
    """One subject's report on its window (``whole_file``: the entire recording)."""
    group = name.split("_")[0]
    rec = read_activity(root / group / f"{name}.csv.gz")
    minute, counts = rec.minute, rec.activity
    if not whole_file:
        minute, counts = first_complete_days(minute, counts, days_listed)
    rep = activity_report(minute, counts, remove_nonwear=remove_nonwear)
    label = int(group == "condition")
    return Subject(name, label, days_listed, rep["summary"], rep["days"])


def load_subjects(root: Path, *, remove_nonwear: bool, whole_file: bool = False) -> list[Subject]:
    listed = read_days(root / "scores.csv")
    names = [f"condition_{k}" for k in range(1, 24)] + [f"control_{k}" for k in range(1, 33)]
    return [
        load_subject(root, n, listed[n], remove_nonwear=remove_nonwear, whole_file=whole_file)
        for n in names
    ]


def subject_matrix(subjects: Sequence[Subject], feats: Sequence[str]) -> np.ndarray:
    return np.array([[float(s.summary[f]) for f in feats] for s in subjects])


def day_matrix(subjects: Sequence[Subject], feats: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of valid days and the subject index of each row."""
    rows, owner = [], []
    for i, s in enumerate(subjects):
        for d in s.days:
            if d["valid"]:
                rows.append([float(d[f]) for f in feats])
                owner.append(i)
    return np.array(rows).reshape(-1, len(feats)), np.array(owner, dtype=np.int64)


# --- folds ------------------------------------------------------------------


def nested_plan(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold assignment of a nested leave-one-subject-out run, shape (folds, subjects).

    Outer fold f leaves subject f out: ``plan[f, f] == -1``. Every other
    subject gets its inner validation split 0..k-1, stratified by class (the
    training subjects of each class are shuffled and dealt round-robin). Inner
    split j fits on ``plan[f] >= 0 & plan[f] != j`` and validates on
    ``plan[f] == j``; the outer fit uses ``plan[f] >= 0``.
    """
    n = y.size
    key = rng.random((n, n)) + 2.0 * (np.asarray(y) == 0)[None, :]  # patients first
    key[np.arange(n), np.arange(n)] = np.inf  # the outer test subject last
    rank = np.empty((n, n), dtype=np.int64)
    np.put_along_axis(rank, np.argsort(key, axis=1), np.arange(n)[None, :], axis=1)
    plan = rank % k
    plan[np.arange(n), np.arange(n)] = -1
    return plan


# --- model ------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """Every fit of one nested run, stacked in the order [fold][split].

    Split 0..k-1 are the inner fits, split k the outer fit on all training
    subjects; each is fitted for every L2 value of ``grid``. ``z`` holds the
    rows z-scored with the mean/SD of that fit's own training rows (a missing
    value becomes 0, the training mean), with a leading column of ones.
    """

    z: np.ndarray  # (M, N, q)
    train: np.ndarray  # (M, N) bool
    assign: np.ndarray  # (folds, N) nested_plan of each row's subject
    k: int
    grid: tuple[float, ...]


def build_design(
    x: np.ndarray, owner: np.ndarray, plan: np.ndarray, k: int, grid: Sequence[float]
) -> Design:
    """Stack every fit of the nested run; row i belongs to subject ``owner[i]``."""
    a = plan[:, owner]  # (F, N)
    n_folds, n = a.shape
    splits = np.arange(k)[None, :, None]
    fit = np.concatenate(
        [(a[:, None, :] >= 0) & (a[:, None, :] != splits), (a >= 0)[:, None, :]], axis=1
    )
    fit = fit.reshape(n_folds * (k + 1), n)
    obs = np.isfinite(x)
    x0 = np.where(obs, x, 0.0)
    fw = fit.astype(float)
    cnt = fw @ obs
    mu = (fw @ x0) / np.maximum(cnt, 1)
    var = np.maximum((fw @ (x0 * x0)) / np.maximum(cnt, 1) - mu * mu, 0.0)
    sd = np.sqrt(var)
    sd = np.where((sd > 1e-12) & (cnt > 0), sd, 1.0)
    z = np.where(obs[None], (x0[None] - mu[:, None]) / sd[:, None], 0.0)
    z = np.concatenate([np.ones((*z.shape[:2], 1)), z], axis=2)
    return Design(z=z, train=fit, assign=a, k=k, grid=tuple(grid))


def fit_logistic(z: np.ndarray, y: np.ndarray, mask: np.ndarray, l2: Sequence[float]) -> np.ndarray:
    """Batched class-balanced L2 logistic regression by Newton-Raphson.

    z: (M, N, q) with a leading column of ones (not penalised); y: (N,)
    labels; mask: (M, N) training rows of each of the M fits; every fit is
    solved for every value of ``l2`` (G values). Minimises
    sum_i w_i logloss_i + l2/2 |beta_1..|^2 with w = n / (2 n_class) on the
    training rows. Returns beta (M, G, q).
    """
    yv = np.asarray(y, dtype=float)
    m, n, q = z.shape
    n_pos = mask @ yv
    n_neg = mask.sum(axis=1) - n_pos
    tot = (n_pos + n_neg)[:, None]
    w = mask * np.where(
        yv[None] == 1,
        tot / (2 * np.maximum(n_pos, 1))[:, None],
        tot / (2 * np.maximum(n_neg, 1))[:, None],
    )  # (M, N)
    lam = np.asarray(l2, dtype=float)
    g = lam.size
    pen = lam[:, None] * np.concatenate([[0.0], np.ones(q - 1)])[None, :]  # (G, q)
    pen_mat = pen[:, :, None] * np.eye(q)[None] + 1e-12 * np.eye(q)[None]  # (G, q, q)
    zt = z.transpose(0, 2, 1)
    zz = (z[:, :, :, None] * z[:, :, None, :]).reshape(m, n, q * q)
    beta = np.zeros((m, g, q))
    for _ in range(NEWTON_ITERS):
        eta = z @ beta.transpose(0, 2, 1)  # (M, N, G)
        p = 1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30)))
        grad = (zt @ (w[:, :, None] * (p - yv[None, :, None]))).transpose(0, 2, 1) + pen * beta
        hess = (((w[:, :, None] * p * (1 - p)).transpose(0, 2, 1)) @ zz).reshape(m, g, q, q)
        step = np.linalg.solve(hess + pen_mat[None], grad[..., None])[..., 0]
        beta -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return beta


@dataclass(frozen=True)
class NestedResult:
    logit: np.ndarray  # out-of-fold logit per row
    l2: np.ndarray  # chosen L2 per outer fold


def run_nested(design: Design, y_rows: np.ndarray) -> NestedResult:
    """Fit everything, choose L2 per outer fold on its inner splits, predict its test rows.

    The choice uses only the inner validation rows of that fold (pooled
    class-balanced log loss); ties go to the stronger penalty.
    """
    a, k, g = design.assign, design.k, len(design.grid)
    n_folds, n = a.shape
    beta = fit_logistic(design.z, y_rows, design.train, design.grid)
    logits = (design.z @ beta.transpose(0, 2, 1)).reshape(n_folds, k + 1, n, g)
    val = (a[:, :, None] == np.arange(k)[None, None, :]).astype(float)  # (F, N, k)
    pooled = np.einsum("fkng,fnk->fng", logits[:, :k], val)
    p = 1.0 / (1.0 + np.exp(-np.clip(pooled, -30, 30)))
    train = a >= 0
    pos = (train & (y_rows == 1))[:, :, None]
    neg = (train & (y_rows == 0))[:, :, None]
    loss = 0.5 * (
        np.sum(-np.log(p + 1e-12) * pos, axis=1) / np.maximum(pos.sum(axis=1), 1)
        + np.sum(-np.log(1 - p + 1e-12) * neg, axis=1) / np.maximum(neg.sum(axis=1), 1)
    )  # (F, G)
    best = g - 1 - np.argmin(loss[:, ::-1], axis=1)
    outer = logits[np.arange(n_folds), k, :, best]  # (F, N)
    test = a == -1
    return NestedResult(np.sum(np.where(test, outer, 0.0), axis=0), np.asarray(design.grid)[best])


# --- metrics ----------------------------------------------------------------


def confusion(y: np.ndarray, pred: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """(tp, tn, fp, fn) weighted by multiplicities ``m`` (shape (B, N) or None)."""
    mm = np.ones((1, y.size)) if m is None else np.atleast_2d(m)
    tp = mm @ ((pred == 1) & (y == 1))
    tn = mm @ ((pred == 0) & (y == 0))
    fp = mm @ ((pred == 1) & (y == 0))
    fn = mm @ ((pred == 0) & (y == 1))
    return np.array([tp, tn, fp, fn], dtype=float)


def mcc_f1(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tp, tn, fp, fn = c
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        mcc = np.where(den > 0, (tp * tn - fp * fn) / np.where(den > 0, den, 1), 0.0)
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return mcc, f1


def auc(y: np.ndarray, score: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """Mann-Whitney AUC P(score_pos > score_neg) + 0.5 P(tie); NaN scores left out."""
    ok = np.isfinite(score)
    pos, neg = ok & (y == 1), ok & (y == 0)
    mm = np.ones((1, y.size)) if m is None else np.atleast_2d(m)
    d = score[pos][:, None] - score[neg][None, :]
    cmp = (d > 0) + 0.5 * (d == 0)
    mp, mn = mm[:, pos], mm[:, neg]
    num = np.einsum("bi,ij,bj->b", mp, cmp, mn)
    den = mp.sum(axis=1) * mn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def bootstrap_multiplicities(
    y_subj: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_boot, n_subjects) counts of each subject in class-stratified resamples."""
    m = np.zeros((n_boot, y_subj.size))
    for cls in (0, 1):
        idx = np.flatnonzero(y_subj == cls)
        draws = rng.integers(0, idx.size, size=(n_boot, idx.size))
        for b in range(n_boot):
            np.add.at(m[b], idx[draws[b]], 1)
    return m


def ci95(values: np.ndarray) -> list[float]:
    v = values[np.isfinite(values)]
    return [round(float(np.percentile(v, 2.5)), 3), round(float(np.percentile(v, 97.5)), 3)]


def summarise(
    y: np.ndarray, logit: np.ndarray, m: np.ndarray, perm_mcc: np.ndarray | None
) -> dict[str, Any]:
    """Point metrics, bootstrap intervals (``m``: multiplicities per row) and permutation p."""
    pred = (logit > 0).astype(int)
    c = confusion(y, pred)[:, 0]
    mcc, f1 = mcc_f1(c)
    a = auc(y, logit)[0]
    cb = confusion(y, pred, m)
    mcc_b, f1_b = mcc_f1(cb)
    auc_b = auc(y, logit, m)
    tp, tn, fp, fn = (int(v) for v in c)
    out: dict[str, Any] = {
        "mcc": round(float(mcc), 3),
        "mcc_ci95": ci95(mcc_b),
        "f1": round(float(f1), 3),
        "f1_ci95": ci95(f1_b),
        "auc": round(float(a), 3),
        "auc_ci95": ci95(auc_b),
        "accuracy": round((tp + tn) / max(tp + tn + fp + fn, 1), 3),
        "sensitivity": round(tp / max(tp + fn, 1), 3),
        "specificity": round(tn / max(tn + fp, 1), 3),
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
    }
    if perm_mcc is not None:
        out["permutation_p_mcc"] = round(
            float((1 + np.sum(perm_mcc >= mcc)) / (1 + perm_mcc.size)), 4
        )
        out["permutation_mcc_median"] = round(float(np.median(perm_mcc)), 3)
        out["n_permutations"] = int(perm_mcc.size)
    return out


def votes(logit: np.ndarray, owner: np.ndarray, n_subj: int) -> np.ndarray:
    """Per subject a logit-like score whose sign is the majority vote of its days.

    Returns (share of positive days - 0.5) + tiny * mean logit, so > 0 means a
    majority of positive days, and a tie is broken by the mean logit; NaN for a
    subject without valid days.
    """
    out = np.full(n_subj, np.nan)
    for i in range(n_subj):
        lg = logit[owner == i]
        if lg.size:
            out[i] = (np.mean(lg > 0) - 0.5) + 1e-6 * np.tanh(np.mean(lg))
    return out


# --- analyses ---------------------------------------------------------------


def nested_with_permutations(
    x: np.ndarray,
    owner: np.ndarray,
    y_subj: np.ndarray,
    n_perm: int,
    seed: int,
    extra: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> tuple[NestedResult, np.ndarray | None, np.ndarray | None]:
    """Observed nested LOSO result and the MCC of ``n_perm`` label permutations.

    Each permutation shuffles the subject labels and reruns the whole nested
    pipeline, inner stratification and L2 choice included.
    ``extra(logit, permuted_subject_labels)`` gives a second statistic.
    """
    rng = np.random.default_rng(seed)
    plan = nested_plan(y_subj, INNER_K, rng)
    observed = run_nested(build_design(x, owner, plan, INNER_K, L2_GRID), y_subj[owner])
    if n_perm == 0:
        return observed, None, None
    perm = np.zeros(n_perm)
    perm_extra = np.zeros(n_perm)
    for b in range(n_perm):
        yp = rng.permutation(y_subj)
        plan_p = nested_plan(yp, INNER_K, rng)
        res = run_nested(build_design(x, owner, plan_p, INNER_K, L2_GRID), yp[owner])
        perm[b] = mcc_f1(confusion(yp[owner], (res.logit > 0).astype(int))[:, 0])[0]
        if extra is not None:
            perm_extra[b] = extra(res.logit, yp)
    return observed, perm, (perm_extra if extra is not None else None)


def inner_split_spread(
    x: np.ndarray, owner: np.ndarray, y_subj: np.ndarray, seed: int, n_seeds: int = INNER_SEEDS
) -> dict[str, float]:
    """MCC of the nested run over ``n_seeds`` draws of the inner splits (no label change)."""
    vals = []
    for s in range(n_seeds):
        plan = nested_plan(y_subj, INNER_K, np.random.default_rng(seed + 1000 + s))
        res = run_nested(build_design(x, owner, plan, INNER_K, L2_GRID), y_subj[owner])
        vals.append(float(mcc_f1(confusion(y_subj[owner], (res.logit > 0).astype(int))[:, 0])[0]))
    v = np.array(vals)
    return {
        "n_draws": n_seeds,
        "mcc_min": round(float(v.min()), 3),
        "mcc_median": round(float(np.median(v)), 3),
        "mcc_max": round(float(v.max()), 3),
    }


def l2_counts(chosen: np.ndarray) -> dict[str, int]:
    vals, cnt = np.unique(chosen, return_counts=True)
    return {f"{v:g}": int(c) for v, c in zip(vals, cnt, strict=True)}


def subject_level(
    subjects: Sequence[Subject], n_perm: int, boot_m: np.ndarray, seed: int
) -> dict[str, Any]:
    y = np.array([s.label for s in subjects])
    owner = np.arange(y.size)
    out = {}
    for k, (name, feats) in enumerate(SUBJECT_SETS.items()):
        x = subject_matrix(subjects, feats)
        res, perm, _ = nested_with_permutations(x, owner, y, n_perm, seed + k)
        r = summarise(y, res.logit, boot_m, perm)
        r["features"] = list(feats)
        r["l2_chosen"] = l2_counts(res.l2)
        r["inner_split_spread"] = inner_split_spread(x, owner, y, seed + k)
        out[name] = r
    return out


def day_level(
    subjects: Sequence[Subject], n_perm: int, boot_m: np.ndarray, seed: int
) -> dict[str, Any]:
    y_subj = np.array([s.label for s in subjects])
    x, owner = day_matrix(subjects, GARCIA_CEJA_DAILY)
    n = y_subj.size

    def vote_mcc(logit: np.ndarray, yp: np.ndarray) -> float:
        v = votes(logit, owner, n)
        ok = np.isfinite(v)
        return float(mcc_f1(confusion(yp[ok], (v[ok] > 0).astype(int))[:, 0])[0])

    res, perm, perm_votes = nested_with_permutations(x, owner, y_subj, n_perm, seed, vote_mcc)
    days = summarise(y_subj[owner], res.logit, boot_m[:, owner], perm)
    days["n_days"] = int(owner.size)
    days["features"] = list(GARCIA_CEJA_DAILY)
    days["l2_chosen"] = l2_counts(res.l2)
    days["inner_split_spread"] = inner_split_spread(x, owner, y_subj, seed, n_seeds=5)
    v = votes(res.logit, owner, n)
    ok = np.isfinite(v)
    vote = summarise(y_subj[ok], v[ok], boot_m[:, ok], perm_votes)
    vote["n_subjects"] = int(ok.sum())
    return {"garcia_ceja_3": {"days": days, "subject_votes": vote}}


def feature_aucs(subjects: Sequence[Subject], boot_m: np.ndarray) -> dict[str, Any]:
    y = np.array([s.label for s in subjects])
    out = {}
    for f in ALL_10:
        v = np.array([float(s.summary[f]) for s in subjects])
        out[f] = {
            "auc": round(float(auc(y, v)[0]), 3),
            "auc_ci95": ci95(auc(y, v, boot_m)),
            "median_condition": round(float(np.nanmedian(v[y == 1])), 4),
            "median_control": round(float(np.nanmedian(v[y == 0])), 4),
        }
    return out


def best_post_hoc(aucs: dict[str, Any]) -> dict[str, Any]:
    """The feature farthest from 0.5, labelled as picked after looking."""
    f = max(aucs, key=lambda k: abs(aucs[k]["auc"] - 0.5))
    return {"feature": f, **aucs[f], "note": f"picked post hoc from {len(aucs)} features"}


def labels(subjects: Sequence[Subject]) -> np.ndarray:
    return np.array([s.label for s in subjects])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--json-only", action="store_true")
    ap.add_argument("--permutations", type=int, default=N_PERM, help="subject level")
    ap.add_argument("--day-permutations", type=int, default=N_PERM_DAY)
    args = ap.parse_args(argv)
    root = data_root() / "depresjon"
    if not root.is_dir():
        print(f"Depresjon data not found under {root} (set WELLSENSE_SHARED_DATA)", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    out: dict[str, Any] = {
        "protocol": {
            "window": "first `days` complete calendar days per subject (scores.csv)",
            "outer": "leave-one-subject-out",
            "inner": f"stratified {INNER_K}-fold on the outer training subjects",
            "l2_grid": list(L2_GRID),
            "l2_choice": "pooled class-balanced log loss on the inner validation subjects",
            "threshold": "logit > 0 (balanced class weights)",
            "bootstrap": f"{N_BOOT} class-stratified subject resamples, seed {SEED}",
            "permutations_subject_level": args.permutations,
            "permutations_day_level": args.day_permutations,
            "positive_class": "patients (condition)",
            "auc_direction": "P(patient value > control value); < 0.5 = lower in patients",
        },
    }
    level: dict[str, Any] = {}
    days_level: dict[str, Any] = {}
    aucs: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    for p_i, (policy, remove) in enumerate(POLICIES.items()):
        subjects = load_subjects(root, remove_nonwear=remove)
        y = labels(subjects)
        boot_m = bootstrap_multiplicities(y, N_BOOT, np.random.default_rng(SEED))
        counts[policy] = {
            "valid_days_condition": sum(
                sum(d["valid"] for d in s.days) for s in subjects if s.label
            ),
            "valid_days_control": sum(
                sum(d["valid"] for d in s.days) for s in subjects if not s.label
            ),
            "window_days_short": [s.name for s in subjects if len(s.days) < s.days_listed],
            "nonwear_min": int(sum(s.summary["nonwear_min"] for s in subjects)),
        }
        aucs[policy] = feature_aucs(subjects, boot_m)
        aucs[policy]["best_post_hoc"] = best_post_hoc(aucs[policy])
        seed = SEED + 100 * p_i
        level[policy] = subject_level(subjects, args.permutations, boot_m, seed)
        days_level[policy] = day_level(subjects, args.day_permutations, boot_m, seed + 50)
    whole = load_subjects(root, remove_nonwear=True, whole_file=True)
    y = labels(whole)
    boot_m = bootstrap_multiplicities(y, N_BOOT, np.random.default_rng(SEED))
    out["data"] = {
        "subjects": {"condition": int(y.sum()), "control": int((1 - y).sum())},
        "days_listed": {
            "condition": sum(s.days_listed for s in whole if s.label),
            "control": sum(s.days_listed for s in whole if not s.label),
        },
        **counts,
    }
    out["feature_auc"] = aucs
    out["subject_level"] = level
    out["day_level"] = days_level
    whole_kept = load_subjects(root, remove_nonwear=False, whole_file=True)
    out["sensitivity_whole_files"] = {
        "note": "the previous protocol's window; no permutation test",
        "feature_auc_nonwear_removed": feature_aucs(whole, boot_m),
        "feature_auc_nonwear_kept": feature_aucs(whole_kept, boot_m),
        "subject_level_nonwear_removed": subject_level(whole, 0, boot_m, SEED + 900),
    }
    out["published"] = PUBLISHED
    out["runtime_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out, indent=2))
    if not args.json_only:
        print(render(out), file=sys.stderr)
    return 0


def _fmt(r: dict[str, Any], key: str) -> str:
    lo, hi = r[f"{key}_ci95"]
    return f"{r[key]:.2f} [{lo:.2f}, {hi:.2f}]"


def render(out: dict[str, Any]) -> str:
    lines = []
    cols = ("MCC [95% CI]", "F1 [95% CI]", "AUC [95% CI]")
    head = f"{'nested LOSO':<28} " + " ".join(f"{c:>19}" for c in cols) + f" {'perm p':>7}"
    for policy in POLICIES:
        lines.append(f"== {policy}: first `days` complete days per subject")
        lines.append(f"{'feature (AUC: patient > control)':<34} {'AUC [95% CI]':>19}")
        for f in ALL_10:
            lines.append(f"{f:<34} {_fmt(out['feature_auc'][policy][f], 'auc'):>19}")
        lines.append(head)
        rows = [(f"subject {k}", r) for k, r in out["subject_level"][policy].items()]
        d = out["day_level"][policy]["garcia_ceja_3"]
        rows += [("day g3: days", d["days"]), ("day g3: votes per subject", d["subject_votes"])]
        for name, r in rows:
            lines.append(
                f"{name:<28} {_fmt(r, 'mcc'):>19} {_fmt(r, 'f1'):>19} {_fmt(r, 'auc'):>19} "
                f"{r['permutation_p_mcc']:>7.3f}"
            )
        lines.append("")
    sens = out["sensitivity_whole_files"]
    lines.append("== sensitivity: whole files (no permutation test)")
    f = "counts_zero_fraction_daily_mean"
    for policy in POLICIES:
        lines.append(f"{f + ' ' + policy:<48} AUC {_fmt(sens['feature_auc_' + policy][f], 'auc')}")
    for k, r in sens["subject_level_nonwear_removed"].items():
        lines.append(
            f"{'subject ' + k:<28} {_fmt(r, 'mcc'):>19} {_fmt(r, 'f1'):>19} {_fmt(r, 'auc'):>19}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
