"""The ε lower bounds of probes.privacy.dp_bounds against cases worked out by hand from the papers' formulas."""

from __future__ import annotations

import math

import pytest

from probes.privacy.dp_bounds import (
    clopper_pearson,
    one_run_epsilon_lower_bound,
    one_run_p_value,
    tpr_fpr_epsilon_lower_bound,
)


def test_p_value_without_delta_is_the_binomial_tail():
    # ε = log 3: q = 3/4. r = 2 guesses, both right: P[Bin(2, 3/4) >= 2] = 9/16.
    assert one_run_p_value(m=4, r=2, v=2, epsilon=math.log(3), delta=0.0) == pytest.approx(9 / 16)
    # one right of two: P[Bin(2, 3/4) >= 1] = 1 - 1/16
    assert one_run_p_value(m=4, r=2, v=1, epsilon=math.log(3), delta=0.0) == pytest.approx(15 / 16)


def test_p_value_with_delta_adds_the_steinke_term():
    # m = 4, r = v = 2, q = 3/4: f(2) = 9/16, f(1) = 15/16, f(0) = 1.
    # max over i of (f(2 - i) - f(2)) / i = max(6/16, (7/16) / 2) = 3/8; p = 9/16 + 2·4·δ·3/8 = 9/16 + 3δ.
    assert one_run_p_value(m=4, r=2, v=2, epsilon=math.log(3), delta=0.01) == pytest.approx(9 / 16 + 0.03)


def test_all_guesses_right_gives_the_closed_form_bound():
    # δ = 0, r = v = 10: the bound solves q^10 = 0.05, q = 0.05^(1/10) = 0.741134, ε = log(q / (1 - q)) = 1.05187.
    q = 0.05 ** 0.1
    assert one_run_epsilon_lower_bound(m=10, r=10, v=10, delta=0.0) == pytest.approx(math.log(q / (1 - q)),
                                                                                     abs=1e-9)
    assert math.log(q / (1 - q)) == pytest.approx(1.05187, abs=1e-5)


def test_delta_makes_the_bound_smaller_and_few_guesses_give_none():
    without = one_run_epsilon_lower_bound(m=1000, r=100, v=95, delta=0.0)
    assert 0 < one_run_epsilon_lower_bound(m=1000, r=100, v=95, delta=1e-5) < without
    # One right guess of one: p = q >= 1/2 for every ε >= 0, nothing rejected.
    assert one_run_epsilon_lower_bound(m=10, r=1, v=1, delta=0.0) == 0.0
    # Half right is what chance gives: no bound.
    assert one_run_epsilon_lower_bound(m=100, r=100, v=50, delta=0.0) == 0.0


def test_bound_is_valid_at_its_own_epsilon():
    bound = one_run_epsilon_lower_bound(m=200, r=60, v=55, delta=1e-5)
    assert one_run_p_value(m=200, r=60, v=55, epsilon=bound, delta=1e-5) == pytest.approx(0.05, abs=1e-6)


def test_clopper_pearson_at_the_extremes():
    # All n successes: the one-sided lower limit solves p^n = alpha; none: the upper limit 1 - alpha^(1/n).
    assert clopper_pearson(100, 100, alpha=0.025)[0] == pytest.approx(0.025 ** 0.01)
    assert clopper_pearson(0, 100, alpha=0.025)[1] == pytest.approx(1 - 0.025 ** 0.01)
    assert clopper_pearson(0, 100, alpha=0.025)[0] == 0.0 and clopper_pearson(100, 100, alpha=0.025)[1] == 1.0


def test_tpr_fpr_bound_from_a_perfect_attack():
    # TPR 100/100, FPR 0/100, each one-sided at 2.5%: TPR_lo = 0.963783, FPR_hi = 0.036217,
    # ε >= log(0.963783 / 0.036217) = log(26.611) = 3.2813 (the complementary test gives the same).
    bound = tpr_fpr_epsilon_lower_bound(true_positives=100, positives=100, false_positives=0, negatives=100,
                                        delta=0.0)
    assert bound == pytest.approx(3.2813, abs=1e-4)
    assert tpr_fpr_epsilon_lower_bound(true_positives=50, positives=100, false_positives=50, negatives=100,
                                       delta=0.0) == 0.0


def test_tpr_fpr_bound_takes_the_complementary_test_when_it_is_stronger():
    # 50 of 50 positives flagged, 0 of 10 negatives: TPR_lo = 0.025^(1/50) = 0.928878, FPR_hi = 1 - 0.025^(1/10)
    # = 0.308497. With δ = 0.01: log((TPR_lo - δ) / FPR_hi) = log(2.97856) = 1.0914; the complementary test gives
    # log((1 - FPR_hi - δ) / (1 - TPR_lo)) = log(0.681503 / 0.071122) = log(9.5822) = 2.2599, the larger.
    tpr_low, fpr_high = 0.025 ** (1 / 50), 1 - 0.025 ** (1 / 10)
    assert (tpr_low, fpr_high) == pytest.approx((0.928878, 0.308497), abs=1e-6)
    bound = tpr_fpr_epsilon_lower_bound(true_positives=50, positives=50, false_positives=0, negatives=10,
                                        delta=0.01)
    assert bound == pytest.approx(math.log((1 - fpr_high - 0.01) / (1 - tpr_low)), abs=1e-9)
    assert bound == pytest.approx(2.2599, abs=1e-4)


def test_clopper_pearson_one_below_the_extremes():
    # n - 1 successes of n: the upper limit solves P[Bin(n, p) <= n - 1] = 1 - p^n = alpha, p = (1 - alpha)^(1/n);
    # one success: the lower limit solves P[Bin(n, p) >= 1] = 1 - (1 - p)^n = alpha, p = 1 - (1 - alpha)^(1/n).
    assert clopper_pearson(19, 20, alpha=0.05)[1] == pytest.approx(0.95 ** (1 / 20))
    assert clopper_pearson(1, 20, alpha=0.05)[0] == pytest.approx(1 - 0.95 ** (1 / 20))
