"""Cole-Kripke, Webster rescoring and Sadeh: hand cases and agreement with literal
transcriptions (tests/unit/sleep_reference.py) on real Depresjon minute counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from processing.features import sleep
from processing.features.io import read_activity
from tests.unit import sleep_reference as ref
from tests.unit.features_data import require

W, S = 0.0, 1.0


def _state(*runs: tuple[float, int]) -> np.ndarray:
    return np.concatenate([np.full(n, v) for v, n in runs])


def test_webster_rule_a_rescored_first_sleep_minute_after_4_wake() -> None:
    s = _state((W, 4), (S, 30))
    out = sleep.webster_rescore(s)
    assert out[4] == W and np.all(out[5:] == S)
    # 3 wake minutes are not enough
    assert np.all(sleep.webster_rescore(_state((W, 3), (S, 30)))[3:] == S)


@pytest.mark.parametrize(("wake", "rescored"), [(9, 1), (10, 3), (14, 3), (15, 4), (40, 4)])
def test_webster_rules_b_c_after_long_wake(wake: int, rescored: int) -> None:
    out = sleep.webster_rescore(_state((W, wake), (S, 30)))
    assert np.all(out[wake : wake + rescored] == W)
    assert np.all(out[wake + rescored :] == S)


def test_webster_rules_d_e_short_sleep_between_long_wake() -> None:
    # (d): <= 6 sleep minutes between >= 10 wake minutes on both sides become wake
    assert np.all(sleep.webster_rescore(_state((W, 10), (S, 6), (W, 10))) == W)
    out = sleep.webster_rescore(_state((W, 10), (S, 7), (W, 10)))
    assert np.count_nonzero(out == S) == 7 - 3  # only rule (b) touches it
    # (e): <= 10 between >= 20 on both sides
    assert np.all(sleep.webster_rescore(_state((W, 20), (S, 10), (W, 20))) == W)
    assert np.count_nonzero(sleep.webster_rescore(_state((W, 19), (S, 10), (W, 20))) == S) == 6


def test_webster_keeps_nan_and_agrees_with_reference_on_random_scoring() -> None:
    rng = np.random.default_rng(3)
    s = np.repeat(rng.integers(0, 2, 400), rng.integers(1, 25, 400)).astype(float)
    assert np.array_equal(sleep.webster_rescore(s), ref.webster(s, convention="paper"))
    s[50:60] = np.nan
    assert np.all(np.isnan(sleep.webster_rescore(s)[50:60]))


def test_sadeh_hand_computed_minute() -> None:
    # minute 5 of 11: window = all 11, last six = minutes 0..5
    counts = np.array([0, 60, 0, 80, 0, 10, 0, 0, 200, 0, 0], dtype=float)
    mean = counts.mean()
    nat = 2  # 60 and 80
    sd = np.std(counts[:6], ddof=1)
    ps = 7.601 - 0.065 * mean - 1.08 * nat - 0.056 * sd - 0.703 * math.log(11)
    assert ps == pytest.approx(-0.3086, abs=1e-4)
    assert sleep.sadeh(counts)[5] == 0.0
    counts[8] = 20.0  # mean drops by 180/11: PS = -0.309 + 1.064 > 0
    assert sleep.sadeh(counts)[5] == 1.0
    assert np.isnan(sleep.sadeh(np.zeros(30))[0])  # no SD from one minute
    assert np.all(sleep.sadeh(np.zeros(30))[1:] == 1.0)  # PS = 7.601
    assert sleep.sadeh(np.full(30, 400.0))[10] == 0.0


def test_cole_kripke_weights_and_lags() -> None:
    c = np.zeros(20)
    c[10] = 250.0  # D_t = 1e-5 * w * 250: 1408 -> 3.52, 508 -> 1.27, 404 -> 1.01, 350 -> 0.875
    s = sleep.sleep_wake(c)
    assert s[10] == 0.0  # A_t
    assert s[9] == 0.0  # A_{t+1}
    assert s[14] == 0.0  # A_{t-4}
    assert s[8] == 1.0  # A_{t+2}: 0.875 < 1
    assert s[15] == 1.0 and s[7] == 1.0  # out of the window
    c[3] = np.nan
    assert np.isnan(sleep.sleep_wake(c)[3])


@pytest.fixture(scope="module")
def depresjon_counts() -> list[np.ndarray]:
    root = require("depresjon")
    files = [root / "condition" / "condition_1.csv.gz", root / "control" / "control_5.csv.gz"]
    return [np.nan_to_num(np.asarray(read_activity(f).activity, dtype=float)) for f in files]


def test_scoring_equals_the_paper_transcription_on_depresjon(
    depresjon_counts: list[np.ndarray],
) -> None:
    for c in depresjon_counts:
        ck = sleep.sleep_wake(c)
        assert np.array_equal(
            ck, ref.cole_kripke(c, sleep.CK_WEIGHTS, sleep.CK_SCALE, convention="paper")
        )
        assert np.array_equal(sleep.webster_rescore(ck), ref.webster(ck, convention="paper"))
        assert 0.1 < float(np.mean(ck)) < 0.9  # both states occur: the test can fail
        sd = sleep.sadeh(c)
        assert ref.agreement(sd, ref.sadeh(c, convention="paper"))[:2] == (100.0, 1.0)


def test_pyactigraphy_conventions_on_depresjon(depresjon_counts: list[np.ndarray]) -> None:
    """Cole-Kripke ("mean" setting) identical inside the edges; Webster and Sadeh
    differ only by the documented conventions, by little."""
    for c in depresjon_counts:
        ours = sleep.sleep_wake(c / 30, weights=sleep.CK_MEAN_WEIGHTS, scale=sleep.CK_MEAN_SCALE)
        theirs = ref.cole_kripke(
            c / 30, sleep.CK_MEAN_WEIGHTS, sleep.CK_MEAN_SCALE, convention="pyactigraphy"
        )
        assert np.array_equal(ours[4:-4], theirs[4:-4])
        ours[:4] = ours[-4:] = 0.0
        pct, kappa, _ = ref.agreement(
            sleep.webster_rescore(ours), ref.webster(theirs, convention="pyactigraphy")
        )
        assert pct > 99.8 and kappa > 0.99
        pct, kappa, _ = ref.agreement(sleep.sadeh(c), ref.sadeh(c, convention="pyactigraphy"))
        assert 90.0 < pct < 100.0 and kappa > 0.85


def test_tst_waso_inside_a_period() -> None:
    s = _state((W, 5), (S, 60), (W, 12), (S, 100), (W, 7))
    s[30] = np.nan
    res = sleep.tst_waso(s, 0, s.size)
    assert res.tst_min == 159 and res.waso_min == 12
