"""Group fairness metrics of a classifier, per group and intersection, with bootstrap intervals.

What it measures: for every group of one or more sensitive features (task group columns, identity-term mentions,
TwitterAAE dialect) and their intersection — n, label base rate, selection rate, accuracy, TPR, FPR, FNR,
precision, ROC AUC and expected calibration error — and the disparities between groups: demographic parity
(difference and ratio; Calders & Verwer 2010, Feldman et al. KDD 2015), equal opportunity and equalized odds
(Hardt et al., NeurIPS 2016), FPR ratio and predictive parity (Chouldechova, Big Data 2017). Point estimates come
from fairlearn's ``MetricFrame``; intervals from a vectorised percentile bootstrap shared by all metrics and groups.
Signed gaps against a reference group carry Fisher exact p-values corrected for multiple comparisons (Holm 1979
or Benjamini–Hochberg 1995) and a minimum-detectable-difference note.

A data-level view sets the label base rates per group in the *training* split next to the model's rates, so a
reviewer can tell bias already present in the labels from bias the model adds.

Direction: disparities closer to 0 (ratios closer to 1) are better. Limits: group metrics describe outcomes, not
causes; dialect and identity-term groups are proxies; small groups give wide intervals (flagged).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field
from scipy.stats import fisher_exact

from audit.results import Example, Figure, Finding, Metric, ProbeResult, Table
from probes.base import FROM_DATA, Probe, ProbeConfig, ProbeContext, ProbeInputError, declare, register
from probes.fairness import groups as group_sources
from probes.fairness.dialect import DEFAULT_THRESHOLD
from probes.fairness.disparities import Estimate, difference, equalized_odds, ratio, signed_gap
from probes.fairness.frame import UNDEFINED_REASONS, defined_mask, metric_frame_estimates
from probes.fairness.predictions import Decisions, predict, split_examples
from probes.fairness.rates import ALL_METRICS, FN, FP, TN, TP, Grouping, GroupStatistics, group_statistics
from probes.stats import benjamini_hochberg, finite_interval, holm, minimum_detectable_difference
from probes.verdicts import Band, equivalence_note, equivalence_outcome

DIRECTION = {
    "base_rate": None, "selection_rate": None, "accuracy": True, "tpr": True, "fpr": False, "fnr": False,
    "precision": True, "roc_auc": True, "ece": False,
}
TITLES = {
    "base_rate": "label base rate", "selection_rate": "selection rate", "accuracy": "accuracy", "tpr": "TPR",
    "fpr": "FPR", "fnr": "FNR", "precision": "precision", "roc_auc": "ROC AUC", "ece": "ECE",
}
GAP_METRICS = ("selection_rate", "tpr", "fpr")
# Rows of the 2x2 table (outcome yes, outcome no) of each gap metric, from confusion counts, for Fisher's test.
GAP_CELLS = {"selection_rate": ((FP, TP), (TN, FN)), "tpr": ((TP,), (FN,)), "fpr": ((FP,), (TN,))}
WIDTH_CHECKED = ("selection_rate", "tpr", "fpr")
FINDING_RATES = {"demographic_parity_difference": "selection_rate", "equal_opportunity_difference": "tpr"}
MDE_POWER = 0.8  # the power at which "gaps smaller than X could not be seen" is stated


def display_name(grouping: Grouping, group: str) -> str:
    """'gender=female' for a single feature; intersections already carry 'a=x & b=y'."""
    return group if group_sources.INTERSECTION_NAME_SEPARATOR in grouping.name else f"{grouping.name}={group}"


def format_estimate(value, low=None, high=None, digits: int = 3) -> str:
    if value is None:
        return "not defined"
    text = f"{value:.{digits}f}"
    if low is not None and high is not None:
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


@register
class GroupMetricsProbe(Probe):
    name = "group_metrics"
    version = "1"
    family = "fairness"
    citation = (
        "Hardt, Price & Srebro, Equality of Opportunity in Supervised Learning, NeurIPS 2016; Chouldechova, Fair "
        "prediction with disparate impact, Big Data 2017; Bird et al., Fairlearn, 2020"
    )
    description = "Per-group error and decision rates, intersections and disparities with bootstrap intervals"
    needs = frozenset({"classifier", "task"})
    how_to_read = (
        "Each group's rates are shown with a 95% interval. Demographic parity compares how often each group "
        "receives the positive decision; equal opportunity compares how often truly positive members are "
        "recognised (TPR); the FPR compares how often truly negative members are wrongly flagged. A difference "
        "near 0 (ratio near 1) means parity. Groups under 30 examples or with intervals wider than 0.2 are "
        "flagged: no conclusion should be drawn from them. The 'labels vs model' table shows whether a gap was "
        "already in the training labels (label bias) or is added by the model."
    )

    # Groups come from the task's group columns (a group's label, a grouping's name, or "group vs reference").
    metrics = declare(dict.fromkeys(
        [*ALL_METRICS, "demographic_parity_difference", "demographic_parity_ratio",
         "equalized_odds_difference", "equal_opportunity_difference", "fpr_ratio",
         "predictive_parity_difference",
         *(f"{metric}_gap" for metric in GAP_METRICS), "train_label_base_rate", "train_label_base_rate_gap"],
        FROM_DATA,
    ))

    class Config(ProbeConfig):
        split: str = Field("test", description="held-out split(s) to evaluate; join several with '+'")
        sensitive_features: list[str] | None = Field(None, description="task group columns (default: all)")
        identity_terms: bool = Field(False, description="add a feature from identity-term mentions")
        dialect: bool = Field(False, description="add TwitterAAE dialect groups (aa_aligned / white_aligned)")
        dialect_threshold: float = Field(
            DEFAULT_THRESHOLD, gt=0.5, le=1.0, description="TwitterAAE proportion needed for a dialect label"
        )
        data_dir: str | None = Field(None, description="folder holding twitteraae/ (default: the data catalog)")
        intersections: bool = True
        reference_groups: dict[str, str] = Field(default_factory=dict, description="feature -> reference value")
        n_resamples: int = Field(1000, ge=0)
        confidence: float = Field(0.95, gt=0.5, lt=1.0)
        min_group_size: int = Field(30, ge=1)
        max_ci_width: float = Field(0.2, gt=0.0)
        gap_threshold: float = Field(0.1, gt=0.0, description="a disparity above this is reported as a concern")
        correction: Literal["holm", "bh", "none"] = "holm"
        label_base_rates: bool = Field(True, description="compare training-label base rates per group")
        batch_size: int = Field(64, ge=1)
        max_examples_shown: int = Field(3, ge=0)

    # ------------------------------------------------------------------------------------------------ features
    def _features(self, ctx: ProbeContext, examples, dialect_model) -> dict[str, list[str]]:
        config = self.config
        task = ctx.task
        columns = task.group_columns if config.sensitive_features is None else config.sensitive_features
        features = {
            column: group_sources.column_labels(examples, column, available=task.group_columns) for column in columns
        }
        texts = [example.text for example in examples]
        if config.identity_terms:
            features["identity"] = group_sources.identity_labels(texts)
        if config.dialect:
            features["dialect"] = group_sources.dialect_labels_for(
                texts, dialect_model, threshold=config.dialect_threshold
            )
        return features

    def _reference(self, grouping: Grouping, counts: np.ndarray) -> int:
        """The configured reference group, else the largest group (ties: first by name)."""
        wanted = self.config.reference_groups
        if grouping.name in wanted:
            name = wanted[grouping.name]
            if name not in grouping.group_names:
                raise ProbeInputError(
                    f"reference group {name!r} of {grouping.name!r} is not among its groups {grouping.group_names}"
                )
            return grouping.group_names.index(name)
        features = grouping.name.split(group_sources.INTERSECTION_NAME_SEPARATOR)
        if len(features) > 1 and all(feature in wanted for feature in features):
            label = group_sources.INTERSECTION_SEPARATOR.join(f"{f}={wanted[f]}" for f in features)
            if label in grouping.group_names:
                return grouping.group_names.index(label)
        sizes = counts.sum(axis=1)
        return int(np.argmax(sizes))  # argmax takes the first of equal sizes; names are sorted

    # ------------------------------------------------------------------------------------------------------ run
    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        examples = split_examples(ctx.task, config.split)
        decisions = predict(ctx, examples, batch_size=config.batch_size)
        dialect_model = None
        if config.dialect:
            dialect_model = group_sources.load_dialect_model(ctx, data_dir=config.data_dir)
        features = self._features(ctx, examples, dialect_model)
        grouping_set = group_sources.build_groupings(features, intersections=config.intersections)
        stats = group_statistics(
            decisions.y_true, decisions.y_pred, grouping_set.groupings, scores=decisions.score,
            n_resamples=config.n_resamples, rng=ctx.rng,
        )
        report = _Report(self, config)
        if "dialect" in features:
            sizes = {label: features["dialect"].count(label) for label in sorted(set(features["dialect"]))}
            report.warnings.append(
                f"dialect groups from TwitterAAE (Blodgett et al. 2016) at threshold {config.dialect_threshold}: "
                + ", ".join(f"{label} {count}" for label, count in sizes.items())
                + "; dialect is a proxy for the author's race, not a fact about them"
            )
        for grouping in grouping_set.groupings:
            labels = [grouping.group_names[code] for code in grouping.codes]
            point = metric_frame_estimates(decisions.y_true, decisions.y_pred, labels, score=decisions.score)
            reference = self._reference(grouping, stats.counts[grouping.name])
            report.add_grouping(grouping, stats, point, reference)
        for name, cells in grouping_set.empty.items():
            if cells:
                report.add_empty_intersections(name, cells)
        report.finish_gaps()
        if config.label_base_rates:
            train = [example for example in ctx.task.examples if example.split == "train"]
            if train:
                train = sorted(train, key=lambda example: example.id)
                train_features = self._features(ctx, train, dialect_model)
                report.add_label_view(train, train_features, ctx)
            else:
                report.warnings.append("the task has no training split: label base rates are not shown")
        report.add_examples(decisions)
        result = report.build()
        result.per_example = _per_example(decisions, features)
        return result


def _per_example(decisions: Decisions, features: dict[str, list[str]]) -> dict[str, list]:
    per_example: dict[str, list] = {
        "example_ids": decisions.ids,
        "predicted_class": [int(value) for value in decisions.predicted_class],
        "positive_prediction": [bool(value) for value in decisions.y_pred],
        "correct": [bool(value) for value in decisions.predicted_class == decisions.labels],
        "score": [round(float(value), 6) for value in decisions.score],
    }
    for feature, labels in sorted(features.items()):
        per_example[f"group:{feature}"] = list(labels)
    return per_example


class _Report:
    """Accumulates metrics, tables, figures, findings and warnings while the groupings are processed."""

    def __init__(self, probe: GroupMetricsProbe, config) -> None:
        self.probe = probe
        self.config = config
        self.metrics: list[Metric] = []
        self.tables: list[Table] = []
        self.figures: list[Figure] = []
        self.findings: list[Finding] = []
        self.warnings: list[str] = []
        self.examples: list[Example] = []
        self.group_rows: list[list] = []
        self.disparity_rows: list[list] = []
        self.gaps: list[dict] = []
        self.model_rates: dict[str, dict[str, tuple]] = {}
        self.references: dict[str, str] = {}

    # per-group metrics ----------------------------------------------------------------------------------------
    def _interval(self, replicates: np.ndarray | None) -> tuple[float | None, float | None]:
        return finite_interval(replicates, confidence=self.config.confidence)

    def add_grouping(self, grouping: Grouping, stats: GroupStatistics, point: dict, reference: int) -> None:
        counts = stats.counts[grouping.name]
        replicates = stats.replicates.get(grouping.name, {})
        self.references[grouping.name] = grouping.group_names[reference]
        defined = {}
        for metric in ALL_METRICS:
            if metric not in point:
                continue
            defined[metric] = defined_mask(counts, metric)
        values: dict[str, np.ndarray] = {}
        for metric, mask in defined.items():
            values[metric] = np.array(
                [point[metric][name] if mask[code] else np.nan for code, name in enumerate(grouping.group_names)]
            )
        for code, group in enumerate(grouping.group_names):
            label = display_name(grouping, group)
            n = int(counts[code].sum())
            row: list = [grouping.name, label, n]
            for metric in values:
                value = values[metric][code]
                reps = replicates.get(metric)
                low, high = self._interval(reps[:, code]) if reps is not None and np.isfinite(value) else (None, None)
                defined_value = float(value) if np.isfinite(value) else None
                self.metrics.append(Metric(
                    name=metric, value=defined_value, ci_low=low, ci_high=high, n=n, group=label,
                    higher_is_better=DIRECTION[metric],
                    undefined_reason=None if defined_value is not None else UNDEFINED_REASONS[metric],
                    description=f"{TITLES[metric]} of {label}",
                ))
                row.append(format_estimate(defined_value, low, high))
                self.model_rates.setdefault(grouping.name, {}).setdefault(group, {})[metric] = (defined_value, low, high)
                if (metric in WIDTH_CHECKED and defined_value is not None and low is not None
                        and high - low > self.config.max_ci_width):
                    self.warnings.append(
                        f"{label}: the {TITLES[metric]} interval is {high - low:.2f} wide (> {self.config.max_ci_width}); "
                        "too uncertain to conclude"
                    )
            if n < self.config.min_group_size:
                self.warnings.append(
                    f"{label}: only {n} example(s) (< {self.config.min_group_size}); its rates are not reliable"
                )
            self.group_rows.append(row)
        self._disparities(grouping, values, replicates, defined, counts)
        self._gaps(grouping, values, replicates, defined, counts, reference)
        self._figures(grouping, values, replicates)

    def _disparities(self, grouping, values, replicates, defined, counts) -> None:
        confidence = self.config.confidence
        get = lambda metric: (values[metric], replicates.get(metric), defined[metric])
        estimates: list[tuple[str, Estimate, float, bool, str]] = [
            ("demographic_parity_difference",
             difference(*get("selection_rate"), what="the selection rate", confidence=confidence), 0.0, False,
             "max - min selection rate"),
            ("demographic_parity_ratio",
             ratio(*get("selection_rate"), what="the selection rate", confidence=confidence), 1.0, True,
             "min / max selection rate"),
            ("equalized_odds_difference",
             equalized_odds(get("tpr"), get("fpr"), confidence=confidence), 0.0, False,
             "max of the TPR and FPR differences"),
            ("equal_opportunity_difference",
             difference(*get("tpr"), what="the TPR", confidence=confidence), 0.0, False, "max - min TPR"),
            ("fpr_ratio", ratio(*get("fpr"), what="the FPR", confidence=confidence), 1.0, True, "min / max FPR"),
            ("predictive_parity_difference",
             difference(*get("precision"), what="the precision", confidence=confidence), 0.0, False,
             "max - min precision"),
        ]
        for name, estimate, target, higher, how in estimates:
            self.metrics.append(Metric(
                name=name, value=estimate.value, ci_low=estimate.low, ci_high=estimate.high, group=grouping.name,
                target=target, higher_is_better=higher, undefined_reason=estimate.undefined_reason,
                n=len(grouping.group_names), description=f"{how} over the groups of {grouping.name}",
            ))
            self.disparity_rows.append([
                grouping.name, name,
                format_estimate(estimate.value, estimate.low, estimate.high)
                if estimate.value is not None else f"not defined: {estimate.undefined_reason}",
                how,
            ])
        for name, estimate, target, _, how in estimates:
            if name in FINDING_RATES:
                rate = FINDING_RATES[name]
                detectable = self._detectable_disparity(values[rate], defined[rate], counts, rate)
                self.findings.append(self._disparity_finding(grouping.name, name, estimate, detectable))

    def _detectable_disparity(self, rates: np.ndarray, defined: np.ndarray, counts: np.ndarray,
                              rate: str) -> float | None:
        """The minimum detectable difference between the groups with the highest and the lowest rate (the
        pair a max − min disparity compares), at their sizes and pooled rate; None with fewer than two groups,
        infinite for a pooled rate of 0 or 1."""
        codes = np.flatnonzero(defined & np.isfinite(rates))
        if codes.size < 2:
            return None
        high, low = codes[np.argmax(rates[codes])], codes[np.argmin(rates[codes])]
        yes, no = GAP_CELLS[rate]
        positives = [int(counts[code][list(yes)].sum()) for code in (high, low)]
        sizes = [positives[index] + int(counts[code][list(no)].sum()) for index, code in enumerate((high, low))]
        pooled = sum(positives) / max(sum(sizes), 1)
        return minimum_detectable_difference(*sizes, pooled, alpha=1 - self.config.confidence, power=MDE_POWER)

    def _disparity_finding(self, grouping: str, name: str, estimate: Estimate, detectable: float | None) -> Finding:
        """pass when the whole interval is within ``gap_threshold``, fail when wholly above it, otherwise
        inconclusive (probes.verdicts); the message says how large a gap these group sizes could have shown."""
        title = name.replace("_", " ")
        if estimate.value is None:
            return Finding(level="info", metric=name, message=f"{grouping}: {title} not defined ({estimate.undefined_reason}).")
        threshold = self.config.gap_threshold
        band = Band(None, threshold)
        level = equivalence_outcome(estimate.low, estimate.high, band)
        text = f"{grouping}: {title} {format_estimate(estimate.value, estimate.low, estimate.high)}"
        verdict = {"pass": f"within {threshold} over the whole interval",
                   "fail": f"above {threshold} even at the low end of the interval",
                   "inconclusive": f"the interval reaches across {threshold}: these data cannot tell"}[level]
        note = equivalence_note(band, self.config.confidence)
        power = "" if detectable is None or not math.isfinite(detectable) else (
            f" With these group sizes, gaps smaller than {detectable:.3f} could not be seen (80% power, two-sided "
            f"α = {1 - self.config.confidence:.2g}, between the groups with the highest and the lowest rate).")
        return Finding(level=level, metric=name, message=f"{text} — {verdict} ({note}).{power}")

    def _gaps(self, grouping, values, replicates, defined, counts, reference) -> None:
        ref_name = grouping.group_names[reference]
        for code, group in enumerate(grouping.group_names):
            if code == reference:
                continue
            for metric in GAP_METRICS:
                estimate = signed_gap(values[metric], replicates.get(metric), code, reference,
                                      defined=defined[metric], what=f"the {TITLES[metric]}",
                                      confidence=self.config.confidence)
                yes, no = GAP_CELLS[metric]
                table = [[int(counts[row][list(yes)].sum()), int(counts[row][list(no)].sum())] for row in (code, reference)]
                p_value = None
                mdd = None
                if estimate.value is not None:
                    p_value = float(fisher_exact(table).pvalue)
                    n_group, n_reference = sum(table[0]), sum(table[1])
                    pooled = (table[0][0] + table[1][0]) / max(n_group + n_reference, 1)
                    mdd = minimum_detectable_difference(n_group, n_reference, pooled, alpha=1 - self.config.confidence,
                                                        power=MDE_POWER)
                self.gaps.append({
                    "grouping": grouping.name, "metric": metric, "estimate": estimate, "p": p_value, "mdd": mdd,
                    "label": f"{display_name(grouping, group)} vs {display_name(grouping, ref_name)}",
                })

    def finish_gaps(self) -> None:
        """Adjust the gap p-values for the number of comparisons, then emit the gap metrics and table."""
        tested = [index for index, gap in enumerate(self.gaps) if gap["p"] is not None]
        raw = np.array([self.gaps[index]["p"] for index in tested])
        correction = self.config.correction if len(tested) > 1 else "none"
        adjusted = {"holm": holm, "bh": benjamini_hochberg}.get(correction, lambda p: p)(raw) if raw.size else raw
        adjusted_by_index = dict(zip(tested, adjusted.tolist() if raw.size else []))
        rows = []
        for index, gap in enumerate(self.gaps):
            estimate: Estimate = gap["estimate"]
            p = adjusted_by_index.get(index)
            note = ""
            if (estimate.value is not None and p is not None and p >= 0.05 and gap["mdd"] is not None
                    and math.isfinite(gap["mdd"])):
                note = f"no significant gap; with these sizes only gaps of about {gap['mdd']:.2f} or more are detectable"
            self.metrics.append(Metric(
                name=f"{gap['metric']}_gap", value=estimate.value, ci_low=estimate.low, ci_high=estimate.high,
                group=gap["label"], target=0.0, p_value=None if p is None else min(1.0, float(p)),
                undefined_reason=estimate.undefined_reason,
                description=f"{TITLES[gap['metric']]} of the group minus the reference group "
                            f"(p-value: Fisher exact, {correction} correction over {len(tested)} comparisons)",
            ))
            rows.append([
                gap["grouping"], gap["label"], TITLES[gap["metric"]],
                format_estimate(estimate.value, estimate.low, estimate.high) if estimate.value is not None
                else f"not defined: {estimate.undefined_reason}",
                None if p is None else round(float(p), 4),
                None if gap["mdd"] is None or not math.isfinite(gap["mdd"]) else round(gap["mdd"], 3), note,
            ])
        if len(tested) > 1 and correction != "none":
            self.warnings.append(
                f"{len(tested)} group-vs-reference comparisons: p-values are {correction.upper()}-adjusted"
            )
        if rows:
            self.tables.append(Table(
                name="gaps", title="Gaps against the reference group",
                columns=["grouping", "comparison", "metric", "gap [CI]", "p (adjusted)", "min. detectable gap", "note"],
                rows=rows,
                caption="Group minus reference group. The minimum detectable gap is the difference a two-sided test at "
                        "5% would detect with 80% power for these group sizes (normal approximation).",
            ))

    def _figures(self, grouping, values, replicates) -> None:
        for metric in ("selection_rate", "tpr", "fpr"):
            lows, highs = [], []
            for code in range(len(grouping.group_names)):
                reps = replicates.get(metric)
                low, high = self._interval(reps[:, code]) if reps is not None and np.isfinite(values[metric][code]) else (None, None)
                lows.append(low)
                highs.append(high)
            self.figures.append(Figure(
                name=f"{metric}_{grouping.name}", title=f"{TITLES[metric]} by {grouping.name}", kind="bar",
                data={
                    "labels": list(grouping.group_names),
                    "values": [float(v) if np.isfinite(v) else None for v in values[metric]],
                    "ci_low": lows, "ci_high": highs, "reference": None,
                },
                y_label=TITLES[metric],
            ))

    def add_empty_intersections(self, name: str, cells: list[str]) -> None:
        self.warnings.append(f"{name}: {len(cells)} intersection(s) hold no example: metrics not defined")
        for cell in cells:
            self.group_rows.append([name, cell, 0] + ["not defined: no examples"] * len(ALL_METRICS))

    # labels vs model ------------------------------------------------------------------------------------------
    def add_label_view(self, train, train_features, ctx) -> None:
        train_set = group_sources.build_groupings(train_features, intersections=self.config.intersections)
        labels = np.array([example.label for example in train]) == ctx.task.positive_label
        train_stats = group_statistics(labels, labels, train_set.groupings, metrics=("base_rate",),
                                       n_resamples=self.config.n_resamples, rng=ctx.rng)
        rows = []
        for grouping in train_set.groupings:
            counts = train_stats.counts[grouping.name]
            point = train_stats.point[grouping.name]["base_rate"]
            reps = train_stats.replicates.get(grouping.name, {}).get("base_rate")
            model = self.model_rates.get(grouping.name, {})
            for code, group in enumerate(grouping.group_names):
                label = display_name(grouping, group)
                low, high = self._interval(reps[:, code]) if reps is not None else (None, None)
                value = float(point[code]) if np.isfinite(point[code]) else None
                self.metrics.append(Metric(
                    name="train_label_base_rate", value=value, ci_low=low, ci_high=high, n=int(counts[code].sum()),
                    group=label, undefined_reason=None if value is not None else "no training examples",
                    description=f"share of {label}'s training examples labelled positive",
                ))
                test_base = model.get(group, {}).get("base_rate", (None,))[0]
                selection = model.get(group, {}).get("selection_rate", (None, None, None))
                added = None if test_base is None or selection[0] is None else round(selection[0] - test_base, 4)
                rows.append([
                    grouping.name, label, int(counts[code].sum()), format_estimate(value, low, high),
                    format_estimate(test_base), format_estimate(*selection), added,
                ])
            self._label_gap_finding(grouping, point, reps)
        self.tables.append(Table(
            name="labels_vs_model", title="Training-label base rates next to the model's rates",
            columns=["grouping", "group", "train n", "train label positive rate [CI]", "test label positive rate",
                     "model selection rate [CI]", "selection minus test label rate"],
            rows=rows,
            caption="If the training labels already differ between groups, a model that reproduces them inherits "
                    "that label bias; a selection-rate gap beyond the label gap is added by the model.",
        ))

    def _label_gap_finding(self, grouping, point, reps) -> None:
        """Training-label gap of each group against the model view's reference group, next to the model's gap."""
        reference_name = self.references.get(grouping.name)
        if reference_name not in grouping.group_names:
            return
        ref = grouping.group_names.index(reference_name)
        for code, group in enumerate(grouping.group_names):
            if code == ref or not (np.isfinite(point[code]) and np.isfinite(point[ref])):
                continue
            label_gap = float(point[code] - point[ref])
            low, high = self._interval(reps[:, code] - reps[:, ref]) if reps is not None else (None, None)
            self.metrics.append(Metric(
                name="train_label_base_rate_gap", value=label_gap, ci_low=low, ci_high=high, target=0.0,
                group=f"{display_name(grouping, group)} vs {display_name(grouping, reference_name)}",
                description="training-label positive rate of the group minus the reference group",
            ))
            model = self.model_rates.get(grouping.name, {})
            selection = model.get(group, {}).get("selection_rate", (None,))[0]
            selection_ref = model.get(reference_name, {}).get("selection_rate", (None,))[0]
            if selection is not None and selection_ref is not None:
                self.findings.append(Finding(
                    level="info", metric="train_label_base_rate_gap",
                    message=(
                        f"{display_name(grouping, group)} vs {display_name(grouping, reference_name)}: the training "
                        f"labels' positive-rate gap is {format_estimate(label_gap, low, high)}; the model's "
                        f"selection-rate gap on held-out data is {selection - selection_ref:.3f}."
                    ),
                ))

    # examples and assembly ------------------------------------------------------------------------------------
    def add_examples(self, decisions: Decisions) -> None:
        wrong = np.flatnonzero(decisions.y_pred & ~decisions.y_true)
        for row in wrong[: self.config.max_examples_shown]:
            example = decisions.examples[row]
            fields = {"text": example.text, "label": int(example.label),
                      "predicted": int(decisions.predicted_class[row]),
                      "score": round(float(decisions.score[row]), 4)}
            fields.update({key: value for key, value in sorted(example.groups.items())})
            self.examples.append(Example(title=f"false positive {example.id}", fields=fields))

    def build(self) -> ProbeResult:
        self.tables.insert(0, Table(
            name="group_metrics", title="Rates per group [95% CI]",
            columns=["grouping", "group", "n"] + [TITLES[m] for m in ALL_METRICS], rows=self.group_rows,
            caption="'Positive' is the task's positive label. Undefined values (e.g. the TPR of a group without "
                    "positives) are shown as 'not defined'.",
        ))
        self.tables.insert(1, Table(
            name="disparities", title="Disparities between groups", columns=["grouping", "disparity", "value [CI]", "definition"],
            rows=self.disparity_rows,
        ))
        return self.probe.new_result(
            metrics=self.metrics, tables=self.tables, figures=self.figures, findings=self.findings,
            warnings=list(dict.fromkeys(self.warnings)), examples=self.examples,
        )
