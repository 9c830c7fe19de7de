"""bench/depresjon.py: nested fold logic, the model, the metrics and the `days` window."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy.optimize import minimize

from processing.features.io import read_activity
from tests.unit.features_data import require

BENCH = Path(__file__).resolve().parents[2] / "bench" / "depresjon.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_depresjon", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_depresjon"] = mod
    spec.loader.exec_module(mod)
    return mod


dep = _load()


def _labels(n_pos: int = 23, n_neg: int = 32) -> np.ndarray:
    return np.array([1] * n_pos + [0] * n_neg)


def test_outer_folds_leave_exactly_one_subject_out_and_inner_splits_partition_the_rest() -> None:
    y = _labels()
    plan = dep.nested_plan(y, 5, np.random.default_rng(0))
    n = y.size
    assert plan.shape == (n, n)
    for f in range(n):
        assert np.flatnonzero(plan[f] == -1).tolist() == [f]  # test subject f only
        train = np.flatnonzero(plan[f] >= 0)
        assert f not in train and train.size == n - 1
        splits = [np.flatnonzero(plan[f] == j) for j in range(5)]
        assert sorted(np.concatenate(splits).tolist()) == train.tolist()
        pos = [int(y[s].sum()) for s in splits]
        neg = [int((1 - y[s]).sum()) for s in splits]
        assert max(pos) - min(pos) <= 1 and max(neg) - min(neg) <= 1  # stratified


def test_every_fit_of_an_outer_fold_excludes_its_test_subject_rows() -> None:
    """Day-level layout: several rows per subject, each fit's rows are whole subjects."""
    rng = np.random.default_rng(1)
    y = _labels(6, 9)
    owner = np.repeat(np.arange(y.size), rng.integers(3, 8, size=y.size))
    x = rng.normal(size=(owner.size, 3))
    plan = dep.nested_plan(y, 3, rng)
    design = dep.build_design(x, owner, plan, 3, dep.L2_GRID)
    fits = design.train.reshape(y.size, 4, owner.size)  # [fold][3 inner + outer][row]
    for f in range(y.size):
        test_rows = owner == f
        assert not fits[f][:, test_rows].any()
        for j in range(3):
            val_rows = np.isin(owner, np.flatnonzero(plan[f] == j))
            assert not (fits[f, j] & val_rows).any()
            assert (fits[f, j] | val_rows | test_rows).all()
        assert (fits[f, 3] == ~test_rows).all()


def test_the_l2_choice_and_fits_of_a_fold_never_see_its_test_subject() -> None:
    """Garbage features and a flipped label for subject 0 change nothing fold 0 learns."""
    rng = np.random.default_rng(2)
    y = _labels(10, 14)
    x = rng.normal(size=(y.size, 3)) + 0.8 * y[:, None]
    owner = np.arange(y.size)
    plan = dep.nested_plan(y, 4, rng)

    def fold0(xx: np.ndarray, yy: np.ndarray) -> tuple[float, np.ndarray]:
        design = dep.build_design(xx, owner, plan, 4, dep.L2_GRID)
        res = dep.run_nested(design, yy)
        beta = dep.fit_logistic(design.z, yy, design.train, design.grid)
        return float(res.l2[0]), beta[:5]  # fold 0 = fits 0..4

    l2, beta = fold0(x, y)
    x_bad, y_bad = x.copy(), y.copy()
    x_bad[0] = [1e6, np.nan, -1e6]
    y_bad[0] = 1 - y_bad[0]
    l2_bad, beta_bad = fold0(x_bad, y_bad)
    assert l2_bad == l2
    # equal up to rounding: the batch stops iterating when all its fits converge
    np.testing.assert_allclose(beta_bad, beta, rtol=0, atol=1e-12)
    # the same change to a training subject does move fold 0: the check can fail
    x_tr = x.copy()
    x_tr[1] = [1e6, np.nan, -1e6]
    assert np.max(np.abs(fold0(x_tr, y)[1] - beta)) > 1e-3


def test_newton_fit_matches_a_generic_optimiser() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(40) < 0.4).astype(int)
    x = rng.normal(size=(40, 2)) + y[:, None]
    z = np.column_stack([np.ones(40), x])[None]
    mask = np.ones((1, 40), dtype=bool)
    mask[0, :5] = False
    lam = 0.3
    beta = dep.fit_logistic(z, y, mask, [lam])[0, 0]
    m = mask[0]
    w = np.where(y == 1, m.sum() / (2 * y[m].sum()), m.sum() / (2 * (1 - y[m]).sum())) * m

    def objective(b: np.ndarray) -> float:
        eta = z[0] @ b
        return float(np.sum(w * (np.logaddexp(0, eta) - y * eta)) + lam / 2 * np.sum(b[1:] ** 2))

    ref = minimize(objective, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(beta, ref, atol=1e-5)


def test_metrics_on_known_values() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    pred = np.array([1, 1, 0, 0, 0, 0, 1])
    c = dep.confusion(y, pred)[:, 0]
    assert c.tolist() == [2, 3, 1, 1]  # tp, tn, fp, fn
    mcc, f1 = dep.mcc_f1(c)
    assert mcc == pytest.approx((2 * 3 - 1 * 1) / np.sqrt(3 * 3 * 4 * 4))
    assert f1 == pytest.approx(4 / 6)
    score = np.array([0.9, 0.8, 0.3, 0.3, 0.1, 0.2, 0.85])
    # pairs pos > neg: 0.9 beats 4, 0.8 beats 3, 0.3 beats 2 and ties 1
    assert dep.auc(y, score)[0] == pytest.approx((4 + 3 + 2.5) / 12)
    m = dep.bootstrap_multiplicities(y, 50, np.random.default_rng(0))
    assert (m[:, y == 1].sum(axis=1) == 3).all() and (m[:, y == 0].sum(axis=1) == 4).all()
    # multiplicity weights equal an explicit resample
    idx = np.repeat(np.arange(y.size), m[0].astype(int))
    assert dep.auc(y, score, m[:1])[0] == pytest.approx(dep.auc(y[idx], score[idx])[0])


def test_the_window_is_the_first_days_complete_days_of_scores_csv() -> None:
    root = require("depresjon")
    listed = dep.read_days(root / "scores.csv")
    assert sum(listed.values()) == 693  # the paper's total
    for name in ("condition_1", "control_6", "control_1"):  # control_1 spans a DST change
        group = name.split("_")[0]
        rec = read_activity(root / group / f"{name}.csv.gz")
        minute, _ = dep.first_complete_days(rec.minute, rec.activity, listed[name])
        first_date = rec.minute.min().astype("datetime64[D]")
        assert minute.min() == (first_date + np.timedelta64(1, "D")).astype("datetime64[m]")
        assert np.unique(rec.minute.astype("datetime64[D]")).size > listed[name]  # file longer
        for remove in (True, False):
            subject = dep.load_subject(root, name, listed[name], remove_nonwear=remove)
            assert subject.label == int(group == "condition")
            assert len(subject.days) == listed[name]
            assert all(d["observed_min"] in (1380, 1440) for d in subject.days)  # DST: 23 h
        whole = dep.load_subject(root, name, listed[name], remove_nonwear=True, whole_file=True)
        assert len(whole.days) > listed[name]


def test_without_nonwear_removal_no_minute_is_nonwear() -> None:
    root = require("depresjon")
    listed = dep.read_days(root / "scores.csv")
    kept = dep.load_subject(root, "control_6", 37, remove_nonwear=False, whole_file=True)
    removed = dep.load_subject(root, "control_6", 37, remove_nonwear=True, whole_file=True)
    assert kept.summary["nonwear_min"] == 0 < removed.summary["nonwear_min"]
    assert listed["control_6"] == 13
