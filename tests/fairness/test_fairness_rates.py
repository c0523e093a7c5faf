"""The vectorised group bootstrap against hand computation, sklearn and fairlearn's own MetricFrame."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate
from sklearn.metrics import roc_auc_score

from probes.fairness.frame import _ece, defined_mask, metric_frame_estimates
from probes.fairness.rates import (
    Grouping,
    group_statistics,
    rates_from_counts,
    resample_weights,
    weighted_auc,
    weighted_ece,
)


def _random_data(n: int, n_groups: int, seed: int):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n)
    y_true = rng.random(n) < 0.3 + 0.1 * groups
    score = np.clip(0.35 * y_true + 0.1 * groups + rng.random(n) * 0.6, 0, 1).round(3)
    return y_true, score >= 0.5, score, groups


def test_rates_from_counts_by_hand():
    # TN, FP, FN, TP
    rates = rates_from_counts(np.array([[2.0, 1.0, 1.0, 2.0], [3.0, 0.0, 0.0, 0.0]]))
    assert rates["selection_rate"][0] == 3 / 6 and rates["accuracy"][0] == 4 / 6
    assert rates["tpr"][0] == 2 / 3 and rates["fpr"][0] == 1 / 3 and rates["precision"][0] == 2 / 3
    # the second group has no positives and predicts none: TPR, FNR, precision undefined (NaN), never 0
    assert np.isnan(rates["tpr"][1]) and np.isnan(rates["fnr"][1]) and np.isnan(rates["precision"][1])
    assert rates["fpr"][1] == 0.0


def test_weighted_auc_and_ece_match_references():
    rng = np.random.default_rng(1)
    score = rng.random(500).round(2)  # ties on purpose
    labels = rng.random(500) < score
    weights = rng.integers(0, 4, size=(3, 500)).astype(float)
    aucs = weighted_auc(score, labels, weights)
    for row in range(3):
        assert aucs[row] == pytest.approx(roc_auc_score(labels, score, sample_weight=weights[row]), abs=1e-12)
    unit = np.ones((1, 500))
    assert weighted_ece(score, labels, unit)[0] == pytest.approx(_ece(labels, None, score), abs=1e-12)
    assert np.isnan(weighted_auc(score[labels], labels[labels], unit[:, labels])[0])


def test_point_estimates_equal_metric_frame_exactly():
    y_true, y_pred, score, groups = _random_data(3000, 4, seed=2)
    labels = [f"g{g}" for g in groups]
    stats = group_statistics(y_true, y_pred, [Grouping.from_labels("g", labels)], scores=score, n_resamples=0)
    reference = metric_frame_estimates(y_true, y_pred, labels, score=score)
    for metric, by_group in reference.items():
        ours = stats.point["g"][metric]
        for code, group in enumerate(sorted(by_group)):
            if metric in ("roc_auc", "ece"):
                assert ours[code] == pytest.approx(by_group[group], abs=1e-12), (metric, group)
            else:
                assert ours[code] == by_group[group], (metric, group)


def test_fairlearn_reports_zero_where_we_report_undefined():
    # fairlearn gives TPR 0.0 for a group without positives; the mask marks it undefined
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([1, 0, 1, 0])
    labels = ["a", "a", "b", "b"]
    reference = metric_frame_estimates(y_true, y_pred, labels)
    assert reference["tpr"]["a"] == 0.0
    stats = group_statistics(y_true, y_pred, [Grouping.from_labels("g", labels)], n_resamples=0)
    assert np.isnan(stats.point["g"]["tpr"][0])
    assert defined_mask(stats.counts["g"], "tpr").tolist() == [False, True]


def test_bootstrap_is_seeded_and_chunking_does_not_matter(monkeypatch):
    y_true, y_pred, score, groups = _random_data(400, 3, seed=3)
    grouping = [Grouping.from_labels("g", groups)]
    first = group_statistics(y_true, y_pred, grouping, scores=score, n_resamples=50, rng=np.random.default_rng(7))
    second = group_statistics(y_true, y_pred, grouping, scores=score, n_resamples=50, rng=np.random.default_rng(7))
    for metric in first.replicates["g"]:
        np.testing.assert_array_equal(first.replicates["g"][metric], second.replicates["g"][metric])
    # each resample's weights are a multinomial count vector summing to n
    for weights in resample_weights(400, 20, np.random.default_rng(0)):
        assert np.all(weights.sum(axis=1) == 400)


def test_bootstrap_intervals_agree_with_fairlearn_n_boot():
    y_true, y_pred, _, groups = _random_data(4000, 2, seed=4)
    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate},
        y_true=y_true.astype(int), y_pred=y_pred.astype(int), sensitive_features=groups,
        n_boot=30, ci_quantiles=[0.025, 0.975], random_state=0,
    )
    ours = group_statistics(y_true, y_pred, [Grouping.from_labels("g", groups)],
                            metrics=("selection_rate", "tpr"), n_resamples=400, rng=np.random.default_rng(0))
    for metric in ("selection_rate", "tpr"):
        low, high = np.quantile(ours.replicates["g"][metric], [0.025, 0.975], axis=0)
        for code, group in enumerate(sorted(set(groups.tolist()))):
            assert ours.point["g"][metric][code] == frame.by_group.loc[group, metric]
            # 30 fairlearn resamples carry Monte Carlo error of about 0.005 at this size
            assert low[code] == pytest.approx(frame.by_group_ci[0].loc[group, metric], abs=0.02)
            assert high[code] == pytest.approx(frame.by_group_ci[1].loc[group, metric], abs=0.02)


@pytest.mark.slow
def test_bootstrap_intervals_within_001_of_fairlearn_on_a_large_sample():
    y_true, y_pred, _, groups = _random_data(20_000, 4, seed=5)
    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate},
        y_true=y_true.astype(int), y_pred=y_pred.astype(int), sensitive_features=groups,
        n_boot=40, ci_quantiles=[0.025, 0.975], random_state=1,
    )
    ours = group_statistics(y_true, y_pred, [Grouping.from_labels("g", groups)],
                            metrics=("selection_rate", "tpr"), n_resamples=1000, rng=np.random.default_rng(1))
    for metric in ("selection_rate", "tpr"):
        low, high = np.quantile(ours.replicates["g"][metric], [0.025, 0.975], axis=0)
        for code, group in enumerate(sorted(set(groups.tolist()))):
            assert ours.point["g"][metric][code] == frame.by_group.loc[group, metric]
            assert abs(low[code] - frame.by_group_ci[0].loc[group, metric]) < 0.01
            assert abs(high[code] - frame.by_group_ci[1].loc[group, metric]) < 0.01


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [
        ([0, 1, np.nan], [0, 1, 1], "labels contain 1 NaN"),
        ([0, 1, 1], [0.0, np.nan, 1.0], "predictions contain 1 NaN"),
        ([0, 1, 2], [0, 1, 1], "must be binary"),
        ([0, 1], [0, 1, 1], "must align"),
    ],
)
def test_bad_arrays_are_named_errors(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        group_statistics(y_true, y_pred, [Grouping.from_labels("g", ["a"] * len(y_true))], n_resamples=0)
