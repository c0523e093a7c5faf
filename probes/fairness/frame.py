"""Per-group point estimates through fairlearn's ``MetricFrame`` (Bird et al., "Fairlearn: A toolkit for assessing
and improving fairness in AI", Microsoft Tech. Report 2020).

fairlearn is the reference implementation of the per-group metrics; our vectorised bootstrap
(``probes.fairness.rates``) supplies the intervals, and tests check both agree exactly on the point estimates.
fairlearn reports some undefined rates as 0 (e.g. the TPR of a group without positives), so callers must mask
values whose denominator is empty — ``defined_mask`` does that from the confusion counts.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, precision_score, roc_auc_score

from probes.fairness.rates import FN, FP, TN, TP


def _base_rate(y_true, y_pred):
    return float(np.mean(y_true))


def _roc_auc(y_true, y_pred, score):
    # sklearn raises on a one-class group; the AUC is then not defined (masked by the caller).
    return float(roc_auc_score(y_true, score)) if len(np.unique(y_true)) == 2 else float("nan")


def _ece(y_true, y_pred, score, n_bins: int = 10):
    """Expected calibration error of the positive-class score, equal-width bins (reference loop)."""
    score = np.asarray(score, dtype=float)
    y_true = np.asarray(y_true, dtype=float)
    bins = np.minimum((score * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            total += abs(y_true[in_bin].sum() - score[in_bin].sum())
    return total / len(score)


FAIRLEARN_METRICS = {
    "base_rate": _base_rate,
    "selection_rate": selection_rate,
    "accuracy": accuracy_score,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "fnr": false_negative_rate,
    "precision": functools.partial(precision_score, zero_division=np.nan),
    "roc_auc": _roc_auc,
    "ece": _ece,
}
SCORE_PARAMETERS = ("roc_auc", "ece")


def metric_frame_estimates(y_true, y_pred, group_labels, *, score=None, metrics=tuple(FAIRLEARN_METRICS)):
    """{metric: {group: value}} from one MetricFrame over the groups of ``group_labels`` (one label per row)."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    chosen = {name: FAIRLEARN_METRICS[name] for name in metrics if score is not None or name not in SCORE_PARAMETERS}
    sample_params = {name: {"score": np.asarray(score, dtype=float)} for name in chosen if name in SCORE_PARAMETERS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-division warnings: undefined values are masked by the caller
        frame = MetricFrame(
            metrics=chosen,
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=np.asarray([str(label) for label in group_labels], dtype=object),
            sample_params=sample_params or None,
        )
    by_group = frame.by_group
    return {name: {str(group): float(by_group.loc[group, name]) for group in by_group.index} for name in chosen}


def defined_mask(counts: np.ndarray, metric: str, *, has_both_classes: np.ndarray | None = None) -> np.ndarray:
    """Which groups have a defined value of ``metric``, from their (G, 4) confusion counts."""
    tn, fp, fn, tp = (counts[:, cell] for cell in (TN, FP, FN, TP))
    n = counts.sum(axis=1)
    denominators = {
        "base_rate": n, "selection_rate": n, "accuracy": n, "ece": n,
        "tpr": tp + fn, "fnr": tp + fn, "fpr": fp + tn, "precision": tp + fp,
    }
    if metric == "roc_auc":
        return ((tp + fn) > 0) & ((tn + fp) > 0)
    return denominators[metric] > 0


UNDEFINED_REASONS = {
    "base_rate": "the group has no examples",
    "selection_rate": "the group has no examples",
    "accuracy": "the group has no examples",
    "ece": "the group has no examples",
    "tpr": "the group has no positive examples (TPR needs at least one)",
    "fnr": "the group has no positive examples (FNR needs at least one)",
    "fpr": "the group has no negative examples (FPR needs at least one)",
    "precision": "the model predicts no positives in this group (precision needs at least one)",
    "roc_auc": "the group holds only one class (ROC AUC needs positives and negatives)",
}
