"""Empirical lower bounds on the ε of a differentially private training run.

One run (Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023, §3 and their
Algorithm 2 for (ε, δ)-DP): m canaries are each included with probability 1/2; an auditor makes r guesses (the
rest abstain) of which v are right. If training is (ε, δ)-DP, with f(x) = P[Binomial(r, q) ≥ x] and
q = e^ε / (1 + e^ε) (the accuracy of ε-randomized response),

    P[v or more right] ≤ f(v) + 2 m δ · max_{1 ≤ i ≤ v} (f(v − i) − f(v)) / i.

That right side is the p-value of "the run is (ε, δ)-DP"; the ε lower bound at confidence 1 − α is the largest ε
that the guesses reject at level α (the p-value grows with ε, so bisection finds it).

Many runs (Jagielski, Ullman & Oprea, "Auditing Differentially Private Machine Learning: How Private is Private
SGD?", NeurIPS 2020): an (ε, δ)-DP run bounds any attack's TPR ≤ e^ε FPR + δ, so with a Clopper–Pearson lower
limit on TPR and an upper limit on FPR (each one-sided at α/2, jointly 1 − α), ε ≥ log((TPR_lo − δ) / FPR_hi),
and likewise for the complementary test, ε ≥ log((1 − FPR_hi − δ) / (1 − TPR_lo)). The trials must be
independent training runs (reference models), not canaries of one run.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

EPSILON_SEARCH_MAX = 50.0


def one_run_p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[v or more of r guesses right] under (ε, δ)-DP, bounded as in Steinke et al. (2023)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and 0 <= delta <= 1, got {epsilon}, {delta}")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = stats.binom.sf(np.arange(-1, v), r, q)  # tail[x] = f(x) = P[Binomial(r, q) >= x], x = 0 .. v
    i = np.arange(1, v + 1)
    worst = float(np.max((tail[v - i] - tail[v]) / i)) if v else 0.0
    return min(1.0, float(tail[v]) + 2 * m * delta * worst)


def one_run_epsilon_lower_bound(*, m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """The largest ε that v right of r guesses reject at level 1 − confidence (0 when none is rejected)."""
    alpha = 1.0 - confidence
    if one_run_p_value(m=m, r=r, v=v, epsilon=0.0, delta=delta) > alpha:
        return 0.0
    low, high = 0.0, EPSILON_SEARCH_MAX
    if one_run_p_value(m=m, r=r, v=v, epsilon=high, delta=delta) <= alpha:
        return high
    for _ in range(60):  # bisection to ~1e-16 of the bracket
        middle = (low + high) / 2
        if one_run_p_value(m=m, r=r, v=v, epsilon=middle, delta=delta) <= alpha:
            low = middle
        else:
            high = middle
    return low


def clopper_pearson(successes: int, trials: int, *, alpha: float) -> tuple[float, float]:
    """One-sided (1 − alpha) Clopper–Pearson limits (lower, upper) of a binomial proportion."""
    lower = 0.0 if successes == 0 else float(stats.beta.ppf(alpha, successes, trials - successes + 1))
    upper = 1.0 if successes == trials else float(stats.beta.ppf(1 - alpha, successes + 1, trials - successes))
    return lower, upper


def tpr_fpr_epsilon_lower_bound(*, true_positives: int, positives: int, false_positives: int, negatives: int,
                                delta: float, confidence: float = 0.95) -> float:
    """ε lower bound of Jagielski et al. (2020) from one attack threshold over independent runs (0 if none)."""
    alpha = (1.0 - confidence) / 2
    tpr_low = clopper_pearson(true_positives, positives, alpha=alpha)[0]
    fpr_high = clopper_pearson(false_positives, negatives, alpha=alpha)[1]
    bounds = [0.0]
    if tpr_low - delta > 0 and fpr_high > 0:
        bounds.append(math.log((tpr_low - delta) / fpr_high))
    if 1 - fpr_high - delta > 0 and tpr_low < 1:
        bounds.append(math.log((1 - fpr_high - delta) / (1 - tpr_low)))
    return max(bounds)
