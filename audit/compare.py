"""Compare audit runs: side-by-side metrics with a "better / worse / no significant difference" call.

For two runs, each metric's difference is tested
  - with paired statistics when both runs stored per-example values under the metric's name (``per_example``,
    aligned by ``example_ids``): McNemar's exact test for binary outcomes (flips, correctness), a paired bootstrap
    of the mean difference otherwise;
  - otherwise from the two 95% intervals, treating them as independent normal intervals:
    z = Δ / sqrt(se₁² + se₂²) with se = (ci_high − ci_low) / 3.92 (a two-sided test at 5%).
With more than two runs, every run is compared with the first (the reference) and a leaderboard ranks the runs on
each metric in its better direction. Runs that used different datasets (by sha256) or probe versions are flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

from audit.errors import InputError
from audit.results import AuditResults, Metric, ProbeResult, load_results

Call = Literal["better", "worse", "no significant difference", "not comparable"]
ALPHA = 0.05


class CompareError(InputError):
    """Runs that cannot be compared (fewer than two, or no probe in common)."""


@dataclass
class MetricComparison:
    probe: str
    metric: str
    group: str | None
    values: list[Metric | None]
    difference: float | None = None  # run 2 (or k) minus the reference, for the first comparison
    p_values: list[float | None] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    direction: str = ""


@dataclass
class Comparison:
    run_names: list[str]
    run_ids: list[str]
    subjects: list[str]
    rows: list[MetricComparison]
    flags: list[str]
    leaderboard: list[dict]


def _direction(metric: Metric) -> float | None:
    """+1 when higher is better, −1 when lower is better; None when closeness to a target matters."""
    if metric.higher_is_better is True:
        return 1.0
    if metric.higher_is_better is False:
        return -1.0
    return None


def badness(metric: Metric, value: float | np.ndarray | None = None) -> float | np.ndarray | None:
    """A number where lower is better, for ranking: the value, its negation, or the distance to the target; None
    when the metric has no better direction. ``value``: what to score in the metric's direction instead of its
    own value, e.g. an array of resampled values (scored elementwise, NaN staying NaN)."""
    value = metric.value if value is None else value
    if value is None:
        return None
    sign = _direction(metric)
    if sign is not None:
        return -sign * value
    if metric.target is not None:
        return abs(value - metric.target)
    return None


def direction_text(metric: Metric) -> str:
    """Which way the metric is better, in words ("" when it has no better direction)."""
    if metric.higher_is_better is not None:
        return "higher is better" if metric.higher_is_better else "lower is better"
    return f"closer to {metric.target:g}" if metric.target is not None else ""


def _paired_values(name: str, reference: ProbeResult, other: ProbeResult):
    ids_a, ids_b = reference.per_example.get("example_ids"), other.per_example.get("example_ids")
    values_a, values_b = reference.per_example.get(name), other.per_example.get(name)
    if not (ids_a and ids_b and values_a and values_b):
        return None
    by_id = dict(zip(ids_b, values_b))
    pairs = [(a, by_id[i]) for i, a in zip(ids_a, values_a) if i in by_id and a is not None and by_id[i] is not None]
    if len(pairs) < 10:
        return None
    a, b = np.array(pairs, dtype=float).T
    return a, b


def difference_test(reference: Metric, other: Metric, ref_probe: ProbeResult, other_probe: ProbeResult,
                    rng: np.random.Generator) -> tuple[float | None, str]:
    """Two-sided p-value of the difference other − reference, and the method used: the paired statistics of
    ``rai-audit compare``, shared with the sweep leaderboard (``audit.sweep.leaderboard``)."""
    from probes.stats import mcnemar, paired_bootstrap_diff

    if reference.group is None:
        paired = _paired_values(reference.name, ref_probe, other_probe)
        if paired is not None:
            a, b = paired
            if set(np.unique(np.concatenate([a, b]))) <= {0.0, 1.0}:
                return mcnemar(b.astype(bool), a.astype(bool))[2], "McNemar (paired)"
            return paired_bootstrap_diff(b, a, rng=rng)[1], "paired bootstrap"
    if None in (reference.ci_low, reference.ci_high, other.ci_low, other.ci_high):
        return None, "no interval"
    se = math.hypot((reference.ci_high - reference.ci_low) / 3.92, (other.ci_high - other.ci_low) / 3.92)
    if se == 0:
        return (0.0 if other.value != reference.value else 1.0), "intervals (normal approx.)"
    z = (other.value - reference.value) / se
    return float(2 * scipy_stats.norm.sf(abs(z))), "intervals (normal approx.)"


def difference_call(reference: Metric, other: Metric, p_value: float | None) -> Call:
    if p_value is None or reference.value is None or other.value is None:
        return "not comparable"
    if p_value >= ALPHA:
        return "no significant difference"
    bad_ref, bad_other = badness(reference), badness(other)
    if bad_ref is None or bad_other is None:
        return "not comparable"
    return "better" if bad_other < bad_ref else "worse"


def _flags(runs: list[AuditResults], names: list[str]) -> list[str]:
    flags = []
    reference = runs[0]
    ref_data = {d.name: d.sha256 for d in reference.datasets}
    ref_versions = {p.probe: p.version for p in reference.probes}
    for name, run in zip(names[1:], runs[1:]):
        for dataset in run.datasets:
            if dataset.name in ref_data and ref_data[dataset.name] != dataset.sha256:
                flags.append(f"{name}: dataset {dataset.name} differs from {names[0]} (sha256)")
        for probe in run.probes:
            if probe.probe in ref_versions and ref_versions[probe.probe] != probe.version:
                flags.append(f"{name}: probe {probe.probe} version {probe.version} vs {ref_versions[probe.probe]}")
        if run.run.seed != reference.run.seed:
            flags.append(f"{name}: seed {run.run.seed} differs from {names[0]} ({reference.run.seed})")
    return flags


def compare_runs(runs: list[AuditResults], names: list[str] | None = None) -> Comparison:
    """Compare runs metric by metric (every run against the first)."""
    if len(runs) < 2:
        raise CompareError("compare needs at least two results.json files")
    names = names or [f"run {index + 1}" for index in range(len(runs))]
    common = set.intersection(*[{p.probe for p in run.probes if p.status == "ok"} for run in runs])
    if not common:
        raise CompareError("the runs have no successfully run probe in common; nothing to compare")
    rng = np.random.default_rng(0)
    rows: list[MetricComparison] = []
    for probe_name in sorted(common):
        probes = [run.probe(probe_name) for run in runs]
        for metric in probes[0].metrics:
            values = [next((m for m in p.metrics if m.name == metric.name and m.group == metric.group), None)
                      for p in probes]
            row = MetricComparison(probe=probe_name, metric=metric.name, group=metric.group, values=values)
            row.direction = direction_text(metric)
            for other, other_probe in zip(values[1:], probes[1:]):
                if other is None or metric.value is None or other.value is None:
                    row.p_values.append(None)
                    row.calls.append("not comparable")
                    row.methods.append("missing")
                    continue
                p_value, method = difference_test(metric, other, probes[0], other_probe, rng)
                row.p_values.append(p_value)
                row.calls.append(difference_call(metric, other, p_value))
                row.methods.append(method)
            if values[1] is not None and metric.value is not None and values[1].value is not None:
                row.difference = values[1].value - metric.value
            rows.append(row)
    leaderboard = []
    if len(runs) > 2:
        for row in rows:
            scored = [(badness(m), index) for index, m in enumerate(row.values) if m is not None]
            if any(score is None for score, _ in scored):
                continue
            leaderboard.append({"probe": row.probe, "metric": row.metric, "group": row.group,
                                "ranking": [names[index] for _, index in sorted(scored)]})
    return Comparison(run_names=names, run_ids=[run.run.id for run in runs],
                      subjects=[run.subject.name for run in runs], rows=rows, flags=_flags(runs, names),
                      leaderboard=leaderboard)


def run_compare(paths: list[Path], out: Path) -> Comparison:
    """The ``rai-audit compare`` command: load, compare, render and write atomically."""
    from audit.outputs import write_atomic
    from reports import render_compare_html

    runs = [load_results(path) for path in paths]
    names = [Path(path).parent.name or str(path) for path in paths]
    if len(set(names)) < len(names):  # folders with the same name: fall back to the full paths
        names = [str(path) for path in paths]
    comparison = compare_runs(runs, names)
    write_atomic(out, render_compare_html(comparison))
    return comparison
