"""Agreement and bias indices equal hand computations on small synthetic sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processing.research.agreement import (
    agreement,
    pooled_agreement,
    repeated_measures_correlation,
)

# Sensed sleep (h) and self-reports with a known bias of +0.5 h plus small deviations.
SENSED = [7.0, 6.5, 8.0, 7.5, 6.0]
DEVIATION = [0.1, -0.1, 0.2, -0.2, 0.0]
SELF = [s + 0.5 + e for s, e in zip(SENSED, DEVIATION, strict=True)]


def test_bias_and_limits_of_agreement_by_hand() -> None:
    a = agreement(SELF, SENSED)
    # d = 0.6, 0.4, 0.7, 0.3, 0.5 -> mean 0.5; squared deviations .01+.01+.04+.04+0 = 0.1
    sd = math.sqrt(0.1 / 4)  # 0.158113883...
    assert a.n == 5
    assert a.bias == pytest.approx(0.5)
    assert a.sd_diff == pytest.approx(sd)
    assert a.loa_low == pytest.approx(0.5 - 1.96 * sd)  # 0.190097
    assert a.loa_high == pytest.approx(0.5 + 1.96 * sd)  # 0.809903
    t4 = 2.7764451051977987  # Student t, 0.975 quantile, 4 df
    assert a.bias_ci_low == pytest.approx(0.5 - t4 * sd / math.sqrt(5))
    assert a.loa_ci_halfwidth == pytest.approx(t4 * math.sqrt(3 * sd * sd / 5))
    assert a.mean_abs_diff == pytest.approx(0.5)
    assert a.mean_self - a.mean_sensed == pytest.approx(0.5)
    # r of x and y: y centred = 0, -.5, 1, .5, -1; x centred = .1-0, -.6, 1.2, .3, -1
    xc = np.array(SELF) - np.mean(SELF)
    yc = np.array(SENSED) - np.mean(SENSED)
    assert a.r_within == pytest.approx(float(xc @ yc / math.sqrt((xc @ xc) * (yc @ yc))))


def test_no_bias_no_spread() -> None:
    a = agreement([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert a.bias == 0 and a.sd_diff == 0 and a.loa_low == a.loa_high == 0
    assert a.r_within == pytest.approx(1.0)


def test_too_few_pairs_give_nan_not_errors() -> None:
    assert agreement([], []).n == 0 and math.isnan(agreement([], []).bias)
    one = agreement([2.0, math.nan], [1.0, 5.0])  # the NaN pair is dropped
    assert one.n == 1 and one.bias == 1.0 and math.isnan(one.sd_diff)
    with pytest.raises(ValueError):
        agreement([1.0], [1.0, 2.0])
    rm = repeated_measures_correlation(["a", "b"], [1.0, 2.0], [1.0, 2.0])
    assert math.isnan(rm.r) and rm.df == 0


def test_proportional_bias_is_the_slope_of_differences_on_means() -> None:
    sensed = np.array([10.0, 20.0, 30.0, 40.0])
    a = agreement(sensed * 1.5, sensed)  # d = 0.5 y, mean = 1.25 y -> slope 0.4
    assert a.proportional_slope == pytest.approx(0.4)


def test_repeated_measures_correlation_by_hand() -> None:
    # Two people; within-person centred values:
    # a: x' = -1, 0, 1;      y' = -5/6, -1/3, 7/6
    # b: x' = -4/3, -1/3, 5/3; y' = -4/3, -1/3, 5/3
    subject = ["a", "a", "a", "b", "b", "b"]
    x = [1.0, 2.0, 3.0, 2.0, 3.0, 5.0]
    y = [1.5, 2.0, 3.5, 1.0, 2.0, 4.0]
    sxy = (5 / 6 + 7 / 6) + (16 / 9 + 1 / 9 + 25 / 9)
    sxx = 2 + (16 / 9 + 1 / 9 + 25 / 9)
    syy = (25 / 36 + 1 / 9 + 49 / 36) + (16 / 9 + 1 / 9 + 25 / 9)
    rm = repeated_measures_correlation(subject, x, y)
    r = sxy / math.sqrt(sxx * syy)
    assert rm.r == pytest.approx(r)  # 0.98773
    assert rm.slope == pytest.approx(sxy / sxx)
    assert rm.df == 6 - 2 - 1
    t = r * math.sqrt(3 / (1 - r * r))
    from scipy.stats import t as student

    assert rm.p == pytest.approx(2 * student.sf(t, 3))


def test_pooled_limits_with_repeated_measures_by_hand() -> None:
    subject = ["a", "a", "a", "b", "b", "b"]
    x = [1.0, 2.0, 3.0, 2.0, 3.0, 5.0]
    y = [1.5, 2.0, 3.5, 1.0, 2.0, 4.0]
    # d: a = -.5, 0, -.5 (mean -1/3); b = 1, 1, 1 (mean 1); grand mean 1/3
    ms_within = ((1 / 6) ** 2 + (1 / 3) ** 2 + (1 / 6) ** 2) / 4
    ms_between = 3 * (2 / 3) ** 2 + 3 * (2 / 3) ** 2  # / (k - 1) = 1
    lam = (36 - 18) / (1 * 6)
    sd_total = math.sqrt((ms_between - ms_within) / lam + ms_within)
    p = pooled_agreement(subject, x, y)
    assert p.bias == pytest.approx(1 / 3)
    assert p.sd_within == pytest.approx(math.sqrt(ms_within))
    assert p.sd_total == pytest.approx(sd_total)
    assert p.loa_high == pytest.approx(1 / 3 + 1.96 * sd_total)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-50, 50), min_size=3, max_size=30),
    st.floats(-5, 5),
)
def test_a_constant_bias_is_recovered_exactly(values: list[float], bias: float) -> None:
    a = agreement(np.array(values) + bias, values)
    assert a.bias == pytest.approx(bias, abs=1e-9)
    assert a.sd_diff == pytest.approx(0.0, abs=1e-9)
