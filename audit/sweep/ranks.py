"""Rank intervals: how sure is a subject's place on a metric?

Ranks go best first (1 = best in the metric's better direction). The interval is the 2.5–97.5 percentile range
of a subject's rank over resamples (Goldstein & Spiegelhalter, "League tables and their limitations", JRSS A 1996),
computed one of two ways, and the leaderboard says which:

- **bootstrap over examples** — when every subject's results keep per-example values the metric can be recomputed
  from: the examples (aligned by id, the intersection of all subjects') are resampled jointly, so each resample
  re-ranks the subjects on the same examples. Recomputable: a metric stored as a per-example column of its own name
  (its mean, as ``rai-audit compare`` reads it), and group_metrics' rate gaps ``selection_rate_gap`` and
  ``accuracy_gap`` ("a vs b": rate of a minus rate of b, from ``positive_prediction``/``correct`` and the group
  column). A recomputed point estimate that does not match the stored value disables the bootstrap for the metric.
- **from intervals** — otherwise: each subject's value drawn from a normal with the stored value as mean and
  se = (ci_high − ci_low) / 3.92, independently across subjects. Subjects audited on the same examples are
  positively correlated, which this ignores, so these intervals are wider (more conservative) than paired ones.

A resample in which a subject's metric is undefined (a rate gap whose group the resample missed) gives that subject
no rank and leaves the others' ranks as they are among the defined ones; its interval is over the resamples in which
it is defined, and the count of the others is reported.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from audit.compare import badness
from audit.results import Metric, ProbeResult

BOOTSTRAP_METHOD = "bootstrap over examples"
INTERVAL_METHOD = "normal draws from the 95% intervals"
_RATE_COLUMNS = {"selection_rate_gap": "positive_prediction", "accuracy_gap": "correct"}


def _example_statistic(metric: Metric, probe: ProbeResult):
    """(example ids, function of index arrays → metric values) when ``probe`` keeps what recomputes ``metric``."""
    table = probe.per_example
    ids = table.get("example_ids")
    if not ids:
        return None
    if metric.group is None and table.get(metric.name) and None not in table[metric.name]:
        column = np.asarray(table[metric.name], dtype=float)
        return list(ids), lambda rows: column[rows].mean(axis=-1)
    column_name = _RATE_COLUMNS.get(metric.name)
    if column_name is None or metric.group is None or " vs " not in metric.group or not table.get(column_name):
        return None
    first, second = metric.group.split(" vs ", 1)
    try:
        (feature, value_a), (feature_b, value_b) = first.split("=", 1), second.split("=", 1)
    except ValueError:
        return None
    labels = table.get(f"group:{feature}")
    if feature != feature_b or not labels:
        return None
    outcome = np.asarray(table[column_name], dtype=float)
    in_a = np.asarray([label == value_a for label in labels])
    in_b = np.asarray([label == value_b for label in labels])

    def gap(rows: np.ndarray) -> np.ndarray:
        taken_a, taken_b = in_a[rows], in_b[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            rate_a = (outcome[rows] * taken_a).sum(axis=-1) / taken_a.sum(axis=-1)
            rate_b = (outcome[rows] * taken_b).sum(axis=-1) / taken_b.sum(axis=-1)
        return rate_a - rate_b

    return list(ids), gap


class RankIntervals(NamedTuple):
    ranks: list[int]  # point ranks, 1 = best
    intervals: list[tuple[int, int]]  # 95% rank intervals
    method: str  # BOOTSTRAP_METHOD or INTERVAL_METHOD
    undefined_draws: list[int]  # per subject, the resamples in which its metric was undefined (no rank)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks of badness ``scores`` along the last axis, 1 = least bad; ties share the best rank. An undefined
    (NaN) score has no rank (NaN) and pushes no other down: a resample that misses a subject's group says nothing
    about its place."""
    better = (scores[..., :, None] > scores[..., None, :]).sum(axis=-1) + 1.0  # NaN compares False
    return np.where(np.isnan(scores), np.nan, better)


def rank_intervals(metrics: list[Metric], probes: list[ProbeResult], *, rng: np.random.Generator,
                   n_resamples: int = 2000) -> RankIntervals | None:
    """Point ranks, 95% rank intervals (over the resamples in which a subject's metric is defined), the method
    and the undefined resamples, for subjects with these metrics (one per subject); None when the metric has no
    better direction."""
    values = np.asarray([metric.value for metric in metrics], dtype=float)
    point = badness(metrics[0], values)
    if point is None:
        return None
    ranks = _ranks(point)  # stored values are finite (audit.results), so every point rank is defined
    draws = _bootstrap_values(metrics, probes, rng=rng, n_resamples=n_resamples)
    method = BOOTSTRAP_METHOD
    if draws is None:
        method = INTERVAL_METHOD
        widths = np.asarray([(m.ci_high - m.ci_low) / 3.92 if m.ci_low is not None and m.ci_high is not None
                             else np.nan for m in metrics])
        draws = values + np.nan_to_num(widths, nan=np.inf) * rng.standard_normal((n_resamples, len(metrics)))
        draws = np.where(np.isfinite(widths), draws, np.nan)  # no interval: its rank is anywhere
    resampled = _ranks(badness(metrics[0], draws))
    undefined = np.isnan(resampled).sum(axis=0)
    unknown = undefined == n_resamples
    with warnings.catch_warnings():  # an all-NaN column (no interval at all) is `unknown`, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.where(unknown, 1, np.nanpercentile(resampled, 2.5, axis=0, method="lower"))
        high = np.where(unknown, len(metrics), np.nanpercentile(resampled, 97.5, axis=0, method="higher"))
    intervals = [(int(min(lo, rank)), int(max(hi, rank))) for lo, hi, rank in zip(low, high, ranks)]
    return RankIntervals([int(rank) for rank in ranks], intervals, method, [int(count) for count in undefined])


def _bootstrap_values(metrics: list[Metric], probes: list[ProbeResult], *, rng: np.random.Generator,
                      n_resamples: int) -> np.ndarray | None:
    """(n_resamples, n_subjects) metric values over examples resampled jointly; None when not recomputable."""
    statistics = [_example_statistic(metric, probe) for metric, probe in zip(metrics, probes)]
    if any(statistic is None for statistic in statistics):
        return None
    common = set.intersection(*[set(ids) for ids, _ in statistics])
    if len(common) < 10:
        return None
    order = sorted(common)
    positions = []
    for (ids, statistic), metric in zip(statistics, metrics):
        if not np.isclose(statistic(np.arange(len(ids))), metric.value, atol=1e-6):
            return None  # the stored value is not what this recomputation gives: do not pretend it is
        index = {example: row for row, example in enumerate(ids)}
        positions.append(np.asarray([index[example] for example in order]))
    resamples = rng.integers(0, len(order), size=(n_resamples, len(order)))
    return np.stack([statistic(rows[resamples]) for (_, statistic), rows in zip(statistics, positions)], axis=1)
