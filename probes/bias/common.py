"""Small result-building helpers shared by the bias probes: data rows, percentage metrics, bar charts, findings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from audit.results import Figure, Finding, Metric
from probes.base import ProbeInputError
from probes.stats import binomial_test, bootstrap_mean_ci
from probes.verdicts import Band, equivalence_note, equivalence_outcome


def dataset_rows(loaded: Any, *, required: Iterable[str], where: str) -> list[dict[str, Any]]:
    """Rows of a catalog ``LoadedDataset`` (or a plain ``datasets.Dataset``) after checking the columns."""
    dataset = getattr(loaded, "dataset", loaded)
    columns = set(dataset.column_names)
    missing = [column for column in required if column not in columns]
    if missing:
        raise ProbeInputError(
            f"{where}: missing column(s) {', '.join(missing)}; expected columns {', '.join(required)}"
            f" (found: {', '.join(sorted(columns))})"
        )
    return dataset.to_list()


def percentage_metric(
    name: str,
    outcomes: Sequence[float],
    *,
    rng: np.random.Generator,
    n_bootstrap: int,
    confidence: float,
    group: str | None = None,
    target: float | None = 50.0,
    decided: Sequence[bool] | None = None,
    description: str = "",
) -> Metric:
    """100 × mean of 0/1 outcomes with a bootstrap interval and, when ``target`` is 50, an exact binomial test.

    ``decided`` marks the outcomes that are not ties; the binomial (sign) test uses only those, as is usual for
    ties in a sign test, while the percentage keeps ties in the denominator as the benchmark papers do.
    """
    values = np.asarray(outcomes, dtype=float)
    if values.size == 0:
        return Metric(name=name, value=None, n=0, group=group, target=target,
                      undefined_reason="no items to score", description=description)
    interval = bootstrap_mean_ci(values, rng=rng, n_resamples=n_bootstrap, confidence=confidence)
    p_value = None
    if target is not None:
        mask = np.ones(values.size, dtype=bool) if decided is None else np.asarray(decided, dtype=bool)
        p_value = binomial_test(int(values[mask].sum()), int(mask.sum()), p=target / 100.0)
    return Metric(
        name=name,
        value=100.0 * interval.value,
        ci_low=100.0 * interval.low,
        ci_high=100.0 * interval.high,
        higher_is_better=None if target is not None else True,
        target=target,
        n=int(values.size),
        group=group,
        p_value=p_value,
        description=description,
    )


def bar_figure(name: str, title: str, metrics: Sequence[Metric], *, reference: float | None,
               y_label: str, caption: str = "") -> Figure:
    """A bar chart (one bar per metric group, CI whiskers) of metrics that have a value."""
    shown = [metric for metric in metrics if metric.value is not None]
    return Figure(
        name=name,
        title=title,
        kind="bar",
        data={
            "labels": [metric.group or "overall" for metric in shown],
            "values": [metric.value for metric in shown],
            "ci_low": [metric.ci_low for metric in shown],
            "ci_high": [metric.ci_high for metric in shown],
            "reference": reference,
        },
        x_label="",
        y_label=y_label,
        caption=caption,
    )


def preference_level(metric: Metric, *, margin: float) -> str:
    """Three-way verdict for a metric whose ideal is ``metric.target``: pass when its interval lies inside
    target ± ``margin`` (an equivalence test, see probes.verdicts), fail when wholly outside, otherwise
    inconclusive; inconclusive too when the probe marked the metric so (``inconclusive_reason``)."""
    if metric.value is None or metric.target is None:
        return "info"
    if metric.inconclusive_reason:
        return "inconclusive"
    return equivalence_outcome(metric.ci_low, metric.ci_high, Band.around(metric.target, margin))


def format_ci(metric: Metric, unit: str = "%") -> str:
    if metric.value is None:
        return f"undefined ({metric.undefined_reason})"
    if metric.ci_low is None:
        return f"{metric.value:.1f}{unit}"
    return f"{metric.value:.1f}{unit} (95% CI {metric.ci_low:.1f}–{metric.ci_high:.1f})"


def preference_finding(metric: Metric, message: str, *, margin: float, confidence: float) -> Finding:
    """The finding for a preference score with its ideal at ``metric.target``: the message gets the verdict's
    reason (the acceptable band, or why the probe cannot decide on this model)."""
    level = preference_level(metric, margin=margin)
    if metric.inconclusive_reason:
        reason = f"Inconclusive: {metric.inconclusive_reason}."
    else:
        reason = equivalence_note(Band.around(metric.target, margin), confidence).capitalize() + "."
    return Finding(level=level, message=f"{message} {reason}", metric=metric.name)
