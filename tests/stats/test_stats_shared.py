"""Known-answer tests for the shared statistics."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from probes import stats


def test_bootstrap_mean_ci_covers_true_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    sample = rng.normal(3.0, 1.0, size=400)
    first = stats.bootstrap_mean_ci(sample, rng=np.random.default_rng(1))
    second = stats.bootstrap_mean_ci(sample, rng=np.random.default_rng(1))
    assert first == second
    assert first.low < 3.0 < first.high
    # width close to the normal-theory interval 2 * 1.96 * sd / sqrt(n)
    assert abs((first.high - first.low) - 2 * 1.96 * sample.std() / math.sqrt(400)) < 0.03


def test_binomial_and_wilson_match_scipy():
    assert stats.binomial_test(60, 100) == pytest.approx(scipy_stats.binomtest(60, 100).pvalue)
    low, high = stats.wilson_interval(60, 100)
    reference = scipy_stats.binomtest(60, 100).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((reference.low, reference.high))


def test_mcnemar_counts_discordant_pairs():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 0], dtype=bool)
    b = np.array([0, 0, 0, 1, 0, 1, 1, 0], dtype=bool)
    only_b, only_a, p = stats.mcnemar(a, b)
    assert (only_b, only_a) == (1, 3)
    assert p == pytest.approx(scipy_stats.binomtest(3, 4).pvalue)


def test_paired_bootstrap_detects_shift_and_not_its_absence():
    rng = np.random.default_rng(2)
    base = rng.normal(size=300)
    shifted, p_shift = stats.paired_bootstrap_diff(base + 0.5 + rng.normal(0, 0.1, 300), base, rng=rng)
    assert shifted.low > 0.4 and p_shift < 0.01
    same, p_same = stats.paired_bootstrap_diff(base + rng.normal(0, 0.1, 300), base, rng=rng)
    assert same.low < 0 < same.high and p_same > 0.05


def test_exact_permutation_test_on_separated_groups():
    values = np.array([10.0, 11.0, 12.0, 0.0, 1.0, 2.0])

    def mean_gap(masks):
        return (masks * values).sum(1) / 3 - (~masks * values).sum(1) / 3

    # observed partition is the most extreme of C(6,3)=20 partitions
    assert stats.permutation_test(mean_gap, 6, 3, rng=np.random.default_rng(0)) == pytest.approx(1 / 20)


def test_multiple_testing_corrections_known_values():
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
