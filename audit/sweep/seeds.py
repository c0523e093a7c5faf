"""Seed variance: is a difference between two training recipes larger than retraining one recipe with another
seed moves it?

Bias and fairness scores move with the training seed alone (Sellam et al., "The MultiBERTs: BERT Reproductions for
Robustness Analysis", ICLR 2022). For each recipe trained under two or more seeds the leaderboard shows the
between-seed spread of a metric (mean, standard deviation, range over seeds). Two recipes are compared with
Welch's t-test on their per-seed values (Welch, "The generalization of 'Student's' problem when several different
population variances are involved", Biometrika 1947): the seed is the unit of replication, so the test asks
whether the recipes' means differ by more than their seed-to-seed spread explains. A permutation test over seeds
is exact but coarse — with 3 seeds a side the smallest two-sided p-value is 2/20 = 0.1, so it can never reach 5%;
Welch's test can, at the price of assuming per-seed values roughly normal. p-values are Holm-corrected over the
recipe pairs of each metric. Each per-seed value is measured on the same test examples, so the spread is that of
training alone; it says nothing about sampling new examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05
METHOD = "Welch's t-test on per-seed values, Holm-corrected over recipe pairs"


@dataclass
class SeedSpread:
    recipe: str
    seeds: list[int]
    values: list[float]
    mean: float
    sd: float
    low: float
    high: float


@dataclass
class RecipeDifference:
    first: str
    second: str
    difference: float  # mean of second − mean of first
    p_value: float | None
    p_holm: float | None
    verdict: str


def seed_spread(recipe: str, seeds: list[int], values: list[float]) -> SeedSpread:
    array = np.asarray(values, dtype=float)
    return SeedSpread(recipe=recipe, seeds=list(seeds), values=[float(v) for v in array], mean=float(array.mean()),
                      sd=float(array.std(ddof=1)) if array.size > 1 else 0.0, low=float(array.min()),
                      high=float(array.max()))


def welch_p_value(first: list[float], second: list[float]) -> float | None:
    """Two-sided Welch p-value; None when neither recipe varies over its seeds (no noise to compare against)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.size < 2 or b.size < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return None
    return float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)


def recipe_differences(spreads: list[SeedSpread], *, alpha: float = ALPHA) -> list[RecipeDifference]:
    """Every pair of recipes, in the order given, tested against their seed noise."""
    from probes.stats import holm

    pairs = list(combinations(spreads, 2))
    raw = [welch_p_value(first.values, second.values) for first, second in pairs]
    tested = [p for p in raw if p is not None]
    adjusted = iter(holm(tested)) if tested else iter(())
    differences = []
    for (first, second), p_value in zip(pairs, raw):
        p_holm = float(next(adjusted)) if p_value is not None else None
        if p_holm is None:
            verdict = "cannot be tested: neither recipe varies between its seeds"
        elif p_holm < alpha:
            verdict = "differs beyond seed noise"
        else:
            verdict = "not distinguishable from seed noise"
        differences.append(RecipeDifference(first=first.recipe, second=second.recipe,
                                            difference=second.mean - first.mean, p_value=p_value, p_holm=p_holm,
                                            verdict=verdict))
    return differences
