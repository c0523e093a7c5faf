"""Statistics shared by all probes: bootstrap intervals, exact and permutation tests, paired comparisons and
multiple-testing corrections.

All functions take an explicit ``numpy.random.Generator`` (never global state) so results are reproducible.
Intervals are percentile bootstrap intervals (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def percentile_interval(replicates: np.ndarray, *, confidence: float = 0.95, axis: int = 0):
    """Percentile interval of bootstrap replicates along ``axis`` (NaN replicates ignored)."""
    alpha = (1.0 - confidence) / 2.0
    low = np.nanquantile(replicates, alpha, axis=axis)
    high = np.nanquantile(replicates, 1.0 - alpha, axis=axis)
    return low, high


def bootstrap_indices(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n) row indices drawn with replacement: draw once, reuse for every statistic."""
    return rng.integers(0, n, size=(n_resamples, n))


def bootstrap_mean_ci(
    values, *, rng: np.random.Generator, n_resamples: int = 1000, confidence: float = 0.95
) -> Interval:
    """Mean with a percentile bootstrap interval, vectorised (one matrix of resampled means)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap_mean_ci needs at least one value")
    indices = bootstrap_indices(values.size, n_resamples, rng)
    replicates = values[indices].mean(axis=1)
    low, high = percentile_interval(replicates, confidence=confidence)
    return Interval(float(values.mean()), float(low), float(high))


def binomial_test(successes: int, trials: int, *, p: float = 0.5) -> float:
    """Exact two-sided binomial test p-value (e.g. CrowS-Pairs preference against 50%)."""
    if trials == 0:
        return 1.0
    return float(scipy_stats.binomtest(int(successes), int(trials), p, alternative="two-sided").pvalue)


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (Wilson, JASA 1927); well-behaved near 0 and 1."""
    if trials == 0:
        return (0.0, 1.0)
    z = scipy_stats.norm.ppf(0.5 + confidence / 2.0)
    phat = successes / trials
    denominator = 1 + z * z / trials
    centre = (phat + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap_diff(
    a, b, *, rng: np.random.Generator, n_resamples: int = 2000, confidence: float = 0.95
) -> tuple[Interval, float]:
    """Mean of (a - b) over paired items with a bootstrap interval and a two-sided bootstrap p-value.

    The p-value is the share of resampled differences on the other side of zero, doubled (capped at 1).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must align: {a.shape} vs {b.shape}")
    difference = a - b
    interval = bootstrap_mean_ci(difference, rng=rng, n_resamples=n_resamples, confidence=confidence)
    replicates = difference[bootstrap_indices(difference.size, n_resamples, rng)].mean(axis=1)
    tail = min(np.mean(replicates <= 0.0), np.mean(replicates >= 0.0))
    return interval, float(min(1.0, 2.0 * tail))


def mcnemar(a, b) -> tuple[int, int, float]:
    """Exact McNemar test for paired binary outcomes (McNemar, Psychometrika 1947).

    Returns (b01, b10, p): counts where only ``b`` / only ``a`` is true, and the exact two-sided p-value, which is
    the binomial test of the discordant pairs against 1/2.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_b = int(np.sum(~a & b))
    only_a = int(np.sum(a & ~b))
    return only_b, only_a, binomial_test(only_a, only_a + only_b)


def permutation_test(
    statistic: Callable[[np.ndarray], np.ndarray],
    n_items: int,
    n_first: int,
    *,
    rng: np.random.Generator,
    n_permutations: int = 10_000,
    exact_limit: int = 50_000,
) -> float:
    """One-sided permutation p-value P(s(perm) >= s(observed)) for a two-group split of ``n_items`` items.

    ``statistic`` takes a boolean matrix (n_partitions, n_items) marking the first group and returns one value per
    row (vectorised). Exact over all C(n_items, n_first) partitions when there are at most ``exact_limit``,
    otherwise Monte Carlo with the observed partition counted (Phipson & Smyth, 2010).
    """
    from itertools import combinations

    observed_mask = np.zeros((1, n_items), dtype=bool)
    observed_mask[0, :n_first] = True
    observed = statistic(observed_mask)[0]
    if math.comb(n_items, n_first) <= exact_limit:
        partitions = np.zeros((math.comb(n_items, n_first), n_items), dtype=bool)
        for row, chosen in enumerate(combinations(range(n_items), n_first)):
            partitions[row, list(chosen)] = True
        values = statistic(partitions)
        return float(np.mean(values >= observed - 1e-12))
    masks = np.zeros((n_permutations, n_items), dtype=bool)
    order = np.argsort(rng.random((n_permutations, n_items)), axis=1)[:, :n_first]
    np.put_along_axis(masks, order, True, axis=1)
    values = statistic(masks)
    return float((1 + np.sum(values >= observed - 1e-12)) / (1 + n_permutations))


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (Holm, Scand. J. Statist. 1979); controls the family-wise error rate."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (JRSS-B 1995); controls the false-discovery rate."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)[::-1]
    adjusted = np.empty(m)
    running = 1.0
    for position, index in enumerate(order):
        rank = m - position
        running = min(running, p[index] * m / rank)
        adjusted[index] = running
    return adjusted


def minimum_detectable_difference(n_a: int, n_b: int, base_rate: float, *, alpha=0.05, power=0.8) -> float:
    """Smallest difference of two proportions that a two-sided test at level ``alpha`` detects with probability
    ``power``, by the normal approximation with the pooled variance (Fleiss, Levin & Paik, "Statistical Methods
    for Rates and Proportions", 3rd ed. 2003, ch. 4):

        δ = (z_{1−α/2} + z_{power}) · sqrt(p̄ (1 − p̄) (1/n_a + 1/n_b)),   p̄ = ``base_rate`` (the pooled rate).

    Used to tell a reviewer when "no significant gap" only means "too few examples to see one"; infinite when a
    group is empty or the pooled rate is 0 or 1 (no variation: the approximation bounds nothing).
    """
    if n_a == 0 or n_b == 0 or not 0.0 < base_rate < 1.0:
        return float("inf")
    z = scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(power)
    return float(z * math.sqrt(base_rate * (1 - base_rate) * (1 / n_a + 1 / n_b)))


def finite_interval(replicates: np.ndarray | None, *, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval over the finite replicates only; (None, None) when there are none (undefined metric)."""
    if replicates is None:
        return None, None
    finite = np.asarray(replicates, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None, None
    low, high = percentile_interval(finite, confidence=confidence)
    return float(low), float(high)
