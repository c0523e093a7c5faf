"""Per-group classification rates with a vectorised bootstrap: the maths behind the fairness probes.

Every rate a group-fairness audit needs (selection rate, TPR, FPR, …; Hardt et al., "Equality of Opportunity in
Supervised Learning", NeurIPS 2016; Chouldechova, "Fair prediction with disparate impact", Big Data 2017) is a
ratio of weighted confusion-matrix cells of one group. A bootstrap resample of the rows is a vector of row
multiplicities, so all metrics of all groups of one resample come from one weighted count, and all resamples from
one matrix product. Indices are drawn once per resample and shared by every metric and every grouping, so gaps
between groups are computed within the same resample (Efron & Tibshirani, "An Introduction to the Bootstrap",
1993, percentile intervals). This is the same resampling scheme as fairlearn's ``MetricFrame(n_boot=...)`` (rows
drawn with replacement, percentile quantiles) at a fraction of the cost.

Undefined values (a rate whose denominator is zero, the AUC of a one-class group) are NaN *inside* this module
only; the probes turn them into ``value=None`` with a reason before anything reaches a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Confusion cell of a row: 2 * y_true + y_pred  →  0 TN, 1 FP, 2 FN, 3 TP.
TN, FP, FN, TP = 0, 1, 2, 3

RATE_METRICS = ("base_rate", "selection_rate", "accuracy", "tpr", "fpr", "fnr", "precision")
SCORE_METRICS = ("roc_auc", "ece")
ALL_METRICS = RATE_METRICS + SCORE_METRICS

# Rows per chunk of resamples x rows, to bound memory (about 100 MB of int64 indices).
_CHUNK_ELEMENTS = 12_000_000


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is zero (undefined, never 0)."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def rates_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Rates from weighted confusion counts of shape (..., G, 4) ordered TN, FP, FN, TP; NaN when undefined."""
    tn, fp, fn, tp = (counts[..., cell] for cell in (TN, FP, FN, TP))
    n = tn + fp + fn + tp
    return {
        "base_rate": _divide(fn + tp, n),
        "selection_rate": _divide(fp + tp, n),
        "accuracy": _divide(tn + tp, n),
        "tpr": _divide(tp, tp + fn),
        "fpr": _divide(fp, fp + tn),
        "fnr": _divide(fn, tp + fn),
        "precision": _divide(tp, tp + fp),
    }


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann–Whitney form, ties count one half) of one sample under each row of ``weights``.

    scores, labels: (m,); weights: (B, m) row multiplicities. Returns (B,), NaN when a resample holds only one class.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    if sorted_scores.size == 0:
        return np.full(weights.shape[0], np.nan)
    # Rows with equal scores form one tie block; AUC counts a positive/negative tie as one half.
    block_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    positive = labels[order].astype(bool)
    w = weights[:, order]  # (B, m)
    block_pos = np.add.reduceat(w * positive, block_starts, axis=1)  # (B, blocks)
    block_neg = np.add.reduceat(w * ~positive, block_starts, axis=1)
    neg_below = np.cumsum(block_neg, axis=1) - block_neg  # (B, blocks) negatives with a strictly lower score
    concordant = np.sum(block_pos * (neg_below + 0.5 * block_neg), axis=1)
    return _divide(concordant, block_pos.sum(axis=1) * block_neg.sum(axis=1))


def weighted_ece(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, *, n_bins: int = 10) -> np.ndarray:
    """Expected calibration error of the positive-class score (Naeini et al., AAAI 2015; Guo et al., ICML 2017).

    Equal-width bins of the score; ECE = sum over bins of |observed positive share - mean score| x bin share.
    Lower is better (0 = calibrated within the group). weights: (B, m) -> (B,).
    """
    bins = np.minimum((scores * n_bins).astype(int), n_bins - 1)
    onehot = np.zeros((scores.size, n_bins))
    onehot[np.arange(scores.size), bins] = 1.0
    total = weights @ onehot  # (B, bins)
    positives = weights @ (onehot * labels[:, None])
    score_mass = weights @ (onehot * scores[:, None])
    return _divide(np.abs(positives - score_mass).sum(axis=1), total.sum(axis=1))


@dataclass
class Grouping:
    """One partition of the rows: integer codes 0..G-1 with their names (a feature or an intersection)."""

    name: str
    codes: np.ndarray
    group_names: list[str]

    def __post_init__(self) -> None:
        self.codes = np.asarray(self.codes, dtype=np.int64)
        if self.codes.size and (self.codes.min() < 0 or self.codes.max() >= len(self.group_names)):
            raise ValueError(f"grouping {self.name!r}: codes must lie in 0..{len(self.group_names) - 1}")

    @classmethod
    def from_labels(cls, name: str, labels) -> Grouping:
        """Codes from string labels, groups sorted by name (so results do not depend on row order)."""
        labels = np.asarray([str(label) for label in labels], dtype=object)
        names = sorted(set(labels.tolist()))
        lookup = {group: code for code, group in enumerate(names)}
        return cls(name, np.array([lookup[label] for label in labels], dtype=np.int64), names)


@dataclass
class GroupStatistics:
    """Point estimates and bootstrap replicates of every metric of every group of every grouping.

    point[grouping][metric]: (G,) ; replicates[grouping][metric]: (B, G) ; counts[grouping]: (G, 4) unweighted.
    """

    point: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    replicates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    n_resamples: int = 0


def _metrics_for_weights(
    weights: np.ndarray,
    cells: np.ndarray,
    scores: np.ndarray | None,
    y_true: np.ndarray,
    grouping: Grouping,
    metrics: tuple[str, ...],
) -> dict[str, np.ndarray]:
    """All requested metrics of all groups of one grouping under each row of ``weights`` (B, n) -> {m: (B, G)}."""
    n_groups = len(grouping.group_names)
    # One-hot of (group, cell): a single matrix product gives every weighted confusion count of every group.
    onehot = np.zeros((cells.size, n_groups * 4))
    onehot[np.arange(cells.size), grouping.codes * 4 + cells] = 1.0
    counts = (weights @ onehot).reshape(weights.shape[0], n_groups, 4)
    rates = rates_from_counts(counts)
    out = {name: rates[name] for name in metrics if name in rates}
    if scores is not None and any(name in SCORE_METRICS for name in metrics):
        for name in ("roc_auc", "ece"):
            if name in metrics:
                out[name] = np.full((weights.shape[0], n_groups), np.nan)
        for code in range(n_groups):
            rows = np.flatnonzero(grouping.codes == code)
            if rows.size == 0:
                continue
            sub_weights = weights[:, rows]
            if "roc_auc" in metrics:
                out["roc_auc"][:, code] = weighted_auc(scores[rows], y_true[rows], sub_weights)
            if "ece" in metrics:
                out["ece"][:, code] = weighted_ece(scores[rows], y_true[rows], sub_weights)
    return out


def resample_weights(n_rows: int, n_resamples: int, rng: np.random.Generator):
    """Yield (B_chunk, n) row-multiplicity matrices, one row per bootstrap resample (rows drawn with replacement).

    Indices are drawn chunk by chunk from ``rng`` with a fixed chunk size, so the same seed always gives the same
    resamples; each resample is a multinomial count vector, exactly what resampling the rows would give.
    """
    chunk = max(1, min(n_resamples, _CHUNK_ELEMENTS // max(n_rows, 1)))
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        # int32 indices halve the memory traffic; chunk * n_rows stays below 2**31 by construction.
        indices = rng.integers(0, n_rows, size=(size, n_rows), dtype=np.int32)
        indices += (np.arange(size, dtype=np.int32) * n_rows)[:, None]
        weights = np.bincount(indices.ravel(), minlength=size * n_rows).reshape(size, n_rows)
        yield weights.astype(np.float64)
        done += size


def validate_arrays(y_true, y_pred, scores=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Binary outcome arrays as booleans; NaN or non-binary values are a ValueError naming the problem."""
    arrays = []
    for name, values in (("labels", y_true), ("predictions", y_pred)):
        values = np.asarray(values)
        if values.dtype.kind == "f" and np.isnan(values).any():
            raise ValueError(f"{name} contain {int(np.isnan(values).sum())} NaN value(s); expected 0/1 for every row")
        unique = set(np.unique(values).tolist())
        if not unique <= {0, 1}:
            raise ValueError(f"{name} must be binary (positive = 1); found values {sorted(unique)[:5]}")
        arrays.append(values.astype(bool))
    if len(arrays[0]) != len(arrays[1]):
        raise ValueError(f"labels ({len(arrays[0])}) and predictions ({len(arrays[1])}) must align row by row")
    if scores is not None:
        scores = np.asarray(scores, dtype=float)
        if scores.shape != arrays[0].shape:
            raise ValueError(f"scores must have one value per row: {scores.shape} vs {arrays[0].shape}")
        if np.isnan(scores).any():
            raise ValueError(f"scores contain {int(np.isnan(scores).sum())} NaN value(s)")
        if scores.min() < 0 or scores.max() > 1:
            raise ValueError("scores must be probabilities in [0, 1]")
    return arrays[0], arrays[1], scores


def group_statistics(
    y_true,
    y_pred,
    groupings: list[Grouping],
    *,
    scores=None,
    metrics: tuple[str, ...] = ALL_METRICS,
    n_resamples: int = 1000,
    rng: np.random.Generator | None = None,
) -> GroupStatistics:
    """Point estimates and bootstrap replicates for every grouping, metric and group.

    One set of resampled indices serves all groupings and metrics (``n_resamples=0`` skips the bootstrap).
    Score metrics (roc_auc, ece) need ``scores`` (probability of the positive label).
    """
    y_true, y_pred, scores = validate_arrays(y_true, y_pred, scores)
    unknown = sorted(set(metrics) - set(ALL_METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(ALL_METRICS)}")
    if scores is None:
        metrics = tuple(name for name in metrics if name not in SCORE_METRICS)
    n_rows = y_true.size
    if n_rows == 0:
        raise ValueError("no rows to evaluate")
    for grouping in groupings:
        if grouping.codes.size != n_rows:
            raise ValueError(f"grouping {grouping.name!r} has {grouping.codes.size} rows; expected {n_rows}")
    cells = 2 * y_true.astype(np.int64) + y_pred.astype(np.int64)
    result = GroupStatistics(n_resamples=n_resamples)
    unit = np.ones((1, n_rows))
    for grouping in groupings:
        point = _metrics_for_weights(unit, cells, scores, y_true, grouping, metrics)
        result.point[grouping.name] = {name: values[0] for name, values in point.items()}
        counts = np.zeros((len(grouping.group_names), 4), dtype=np.int64)
        np.add.at(counts, (grouping.codes, cells), 1)
        result.counts[grouping.name] = counts
    if n_resamples > 0:
        if rng is None:
            raise ValueError("a numpy Generator is needed for the bootstrap (use ctx.rng)")
        parts: dict[str, dict[str, list[np.ndarray]]] = {g.name: {m: [] for m in metrics} for g in groupings}
        for weights in resample_weights(n_rows, n_resamples, rng):
            for grouping in groupings:
                values = _metrics_for_weights(weights, cells, scores, y_true, grouping, metrics)
                for name in metrics:
                    parts[grouping.name][name].append(values[name])
        result.replicates = {
            grouping: {name: np.concatenate(chunks, axis=0) for name, chunks in per_metric.items()}
            for grouping, per_metric in parts.items()
        }
    return result
