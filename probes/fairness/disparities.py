"""Between-group disparities with bootstrap intervals, from per-group point estimates and replicates.

Definitions follow fairlearn (and Hardt et al., NeurIPS 2016; Chouldechova, 2017):
  demographic-parity difference  = max - min selection rate over groups   (0 is parity; lower is better)
  demographic-parity ratio       = min / max selection rate               (1 is parity; higher is better)
  equal-opportunity difference   = max - min TPR
  equalized-odds difference      = max(TPR difference, FPR difference)
  FPR ratio                      = min / max FPR
  predictive-parity difference   = max - min precision
A signed gap compares one group with a reference group (group - reference), which — unlike max - min, which is
never below 0 — has an interval that can cover 0 when there is no disparity.

Only groups whose point estimate is defined take part, in the point estimate and in every resample; a resample in
which a group's rate happens to be undefined compares the remaining groups (NaN-aware max/min).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from probes.stats import finite_interval


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None = None
    high: float | None = None
    undefined_reason: str | None = None


def _interval(replicates: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    return finite_interval(replicates, confidence=confidence)


def _range_replicates(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanmax(replicates, axis=1), np.nanmin(replicates, axis=1)


def _too_few(defined: np.ndarray, what: str) -> str | None:
    if defined.size < 2:
        return "only one group: a disparity needs at least two groups"
    if defined.sum() < 2:
        return f"{what} is defined for fewer than two groups"
    return None


def difference(point: np.ndarray, replicates: np.ndarray | None, defined: np.ndarray, *, what: str,
               confidence: float = 0.95) -> Estimate:
    """max - min of ``point`` over defined groups, with a percentile interval from the replicates (B, G)."""
    reason = _too_few(defined, what)
    if reason:
        return Estimate(None, undefined_reason=reason)
    value = float(point[defined].max() - point[defined].min())
    if replicates is None:
        return Estimate(value)
    high, low = _range_replicates(replicates[:, defined])
    return Estimate(value, *_interval(high - low, confidence))


def ratio(point: np.ndarray, replicates: np.ndarray | None, defined: np.ndarray, *, what: str,
          confidence: float = 0.95) -> Estimate:
    """min / max of ``point`` over defined groups; not defined when the largest rate is 0."""
    reason = _too_few(defined, what)
    if reason:
        return Estimate(None, undefined_reason=reason)
    largest = float(point[defined].max())
    if largest == 0.0:
        return Estimate(None, undefined_reason=f"{what} is 0 in every group (ratio 0/0)")
    value = float(point[defined].min()) / largest
    if replicates is None:
        return Estimate(value)
    high, low = _range_replicates(replicates[:, defined])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(high > 0, low / np.where(high > 0, high, 1.0), np.nan)
    return Estimate(value, *_interval(ratios, confidence))


def equalized_odds(tpr: tuple[np.ndarray, np.ndarray | None, np.ndarray],
                   fpr: tuple[np.ndarray, np.ndarray | None, np.ndarray], *, confidence: float = 0.95) -> Estimate:
    """max(TPR difference, FPR difference) over groups where both are defined."""
    defined = tpr[2] & fpr[2]
    reason = _too_few(defined, "TPR and FPR")
    if reason:
        return Estimate(None, undefined_reason=reason)
    value = max(float(np.ptp(tpr[0][defined])), float(np.ptp(fpr[0][defined])))
    if tpr[1] is None or fpr[1] is None:
        return Estimate(value)
    tpr_high, tpr_low = _range_replicates(tpr[1][:, defined])
    fpr_high, fpr_low = _range_replicates(fpr[1][:, defined])
    return Estimate(value, *_interval(np.fmax(tpr_high - tpr_low, fpr_high - fpr_low), confidence))


def signed_gap(point: np.ndarray, replicates: np.ndarray | None, group: int, reference: int, *,
               defined: np.ndarray, what: str, confidence: float = 0.95) -> Estimate:
    """point[group] - point[reference] with a percentile interval of the paired per-resample differences."""
    if not defined[group] or not defined[reference]:
        missing = "the group" if not defined[group] else "the reference group"
        return Estimate(None, undefined_reason=f"{what} is not defined for {missing}")
    value = float(point[group] - point[reference])
    if replicates is None:
        return Estimate(value)
    return Estimate(value, *_interval(replicates[:, group] - replicates[:, reference], confidence))
