"""What-if mitigation: group-specific decision thresholds (Hardt, Price & Srebro, "Equality of Opportunity in
Supervised Learning", NeurIPS 2016), fitted with fairlearn's ``ThresholdOptimizer``.

The audited model is never changed: its positive-class probabilities on the validation split are wrapped in a
fixed, "prefit" estimator whose input *is* the score, and ThresholdOptimizer chooses (possibly randomised)
per-group thresholds that maximise accuracy subject to demographic parity or equalized odds. The thresholds are
then applied to the test split's scores, and the report shows per-group rates and the disparities before and
after, plus the accuracy cost (paired bootstrap interval of after - before).

Direction: a mitigation is attractive when the disparity falls a lot for a small accuracy cost. Limits: it needs
the sensitive attribute at decision time (often unlawful or unavailable), randomises some decisions, and holds
only if the validation split resembles deployment.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from fairlearn.postprocessing import ThresholdOptimizer
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin

from audit.results import Finding, Metric, ProbeResult, Table
from probes.base import (
    FROM_DATA,
    NO_GROUP,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeInputError,
    declare,
    register,
)
from probes.fairness import groups as group_sources
from probes.fairness.dialect import DEFAULT_THRESHOLD
from probes.fairness.disparities import difference, equalized_odds
from probes.fairness.predictions import predict, split_examples
from probes.fairness.rates import Grouping, group_statistics
from probes.stats import finite_interval, paired_bootstrap_diff

RATES = ("selection_rate", "tpr", "fpr", "accuracy")


class FixedScoreClassifier(ClassifierMixin, BaseEstimator):
    """A prefit estimator whose single input column is already the model's positive-class probability.

    It lets ThresholdOptimizer post-process the audited model's outputs without retraining or wrapping it.
    """

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = 1
        return self

    def predict_proba(self, X):
        score = np.asarray(X, dtype=float)[:, 0]
        return np.column_stack([1.0 - score, score])

    def predict(self, X):
        return (np.asarray(X, dtype=float)[:, 0] >= 0.5).astype(int)


def threshold_what_if(val_scores, val_labels, val_groups, test_scores, test_groups, *, constraint: str,
                      seed: int, grid_size: int = 1000) -> tuple[np.ndarray, dict]:
    """Mitigated test decisions (0/1) and the fitted per-group thresholds, from validation scores only."""
    unseen = sorted(set(test_groups) - set(val_groups))
    if unseen:
        raise ProbeInputError(
            f"group(s) {unseen} occur in the evaluation split but not in the fitting split; "
            "group-specific thresholds cannot be fitted for them"
        )
    for group in sorted(set(val_groups)):
        members = np.asarray(val_labels)[np.asarray(val_groups) == group]
        if constraint == "equalized_odds" and len(set(members.tolist())) < 2:
            raise ProbeInputError(
                f"group {group!r} has only one class in the fitting split; equalized odds needs both"
            )
    estimator = FixedScoreClassifier().fit(None)
    optimizer = ThresholdOptimizer(estimator=estimator, constraints=constraint, objective="accuracy_score",
                                   prefit=True, predict_method="predict_proba", grid_size=grid_size)
    optimizer.fit(np.asarray(val_scores)[:, None], np.asarray(val_labels).astype(int),
                  sensitive_features=np.asarray(val_groups, dtype=object))
    decisions = optimizer.predict(np.asarray(test_scores)[:, None],
                                  sensitive_features=np.asarray(test_groups, dtype=object), random_state=seed)
    thresholds = {
        str(group): _describe_rule(rule) for group, rule in optimizer.interpolated_thresholder_.interpolation_dict.items()
    }
    return np.asarray(decisions).astype(bool), thresholds


def _describe_rule(rule: dict) -> str:
    """'with p 0.99 predict positive when score > 0.677; with p 0.01 when score > 0.728' from fairlearn's rule."""
    parts = []
    for index in (0, 1):
        weight = float(rule.get(f"p{index}", 0.0))
        if weight > 0:
            parts.append(f"with probability {weight:.3f}: positive when {rule[f'operation{index}']}")
    if float(rule.get("p_ignore", 0.0)) > 0:
        parts.append(
            f"with probability {float(rule['p_ignore']):.3f}: positive with probability "
            f"{float(rule['prediction_constant']):.3f} regardless of the score"
        )
    return "; ".join(parts)


@register
class MitigationProbe(Probe):
    name = "mitigation"
    version = "1"
    family = "fairness"
    citation = (
        "Hardt, Price & Srebro, Equality of Opportunity in Supervised Learning, NeurIPS 2016 (post-processing); "
        "Bird et al., Fairlearn (ThresholdOptimizer), 2020"
    )
    description = "What-if: per-group thresholds (ThresholdOptimizer) — disparities before/after and accuracy cost"
    needs = frozenset({"classifier", "task"})
    how_to_read = (
        "This does not change the model. It shows what would happen if each group got its own decision threshold, "
        "chosen on validation data to equalise selection rates (demographic parity) or error rates (equalized "
        "odds). Compare the disparity before and after with the accuracy cost; a large cost or a small gain means "
        "the bias should be fixed in the data or the model instead."
    )

    metrics = declare({
        **{f"{name}_{moment}": FROM_DATA for moment in ("before", "after")
           for name in (*RATES, "demographic_parity_difference", "equalized_odds_difference")},
        "accuracy_cost": NO_GROUP,
    })

    class Config(ProbeConfig):
        sensitive_feature: str | None = Field(None, description="a task group column, 'dialect' or 'identity'")
        constraint: Literal["demographic_parity", "equalized_odds"] = "demographic_parity"
        fit_split: str = "validation"
        eval_split: str = "test"
        dialect_threshold: float = Field(
            DEFAULT_THRESHOLD, gt=0.5, le=1.0, description="TwitterAAE proportion needed for a dialect label"
        )
        data_dir: str | None = None
        grid_size: int = Field(1000, ge=10)
        n_resamples: int = Field(1000, ge=0)
        confidence: float = Field(0.95, gt=0.5, lt=1.0)
        batch_size: int = Field(64, ge=1)

    def _labels(self, ctx: ProbeContext, examples, feature: str) -> list[str]:
        texts = [example.text for example in examples]
        if feature == "dialect":
            model = group_sources.load_dialect_model(ctx, data_dir=self.config.data_dir)
            return group_sources.dialect_labels_for(texts, model, threshold=self.config.dialect_threshold)
        if feature == "identity":
            return group_sources.identity_labels(texts)
        return group_sources.column_labels(examples, feature, available=ctx.task.group_columns)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        feature = config.sensitive_feature or (ctx.task.group_columns[0] if ctx.task.group_columns else None)
        if feature is None:
            raise ProbeInputError("no sensitive feature: the task has no group column; set sensitive_feature")
        fit = predict(ctx, split_examples(ctx.task, config.fit_split), batch_size=config.batch_size)
        evaluation = predict(ctx, split_examples(ctx.task, config.eval_split), batch_size=config.batch_size)
        fit_groups = self._labels(ctx, fit.examples, feature)
        eval_groups = self._labels(ctx, evaluation.examples, feature)
        if len(set(eval_groups)) < 2:
            raise ProbeInputError(f"feature {feature!r} has a single group in the evaluation split; nothing to equalise")
        seed = int(ctx.rng.integers(0, 2**31 - 1))
        after, thresholds = threshold_what_if(
            fit.score, fit.y_true, fit_groups, evaluation.score, eval_groups,
            constraint=config.constraint, seed=seed, grid_size=config.grid_size,
        )
        before = evaluation.y_pred
        grouping = Grouping.from_labels(feature, eval_groups)
        stats = {
            name: group_statistics(evaluation.y_true, decisions, [grouping], metrics=RATES,
                                   n_resamples=config.n_resamples, rng=np.random.default_rng(seed))
            for name, decisions in (("before", before), ("after", after))
        }
        correct_before = before == evaluation.y_true
        correct_after = after == evaluation.y_true
        cost, p_value = paired_bootstrap_diff(correct_after.astype(float), correct_before.astype(float),
                                              rng=ctx.rng, n_resamples=max(config.n_resamples, 1),
                                              confidence=config.confidence)
        return self._result(feature, grouping, stats, cost, p_value, thresholds, evaluation, before, after)

    def _interval(self, replicates):
        return finite_interval(replicates, confidence=self.config.confidence)

    def _result(self, feature, grouping, stats, cost, p_value, thresholds, evaluation, before, after) -> ProbeResult:
        config = self.config
        metrics: list[Metric] = []
        rows = []
        disparity = {}
        for moment in ("before", "after"):
            point = stats[moment].point[feature]
            reps = stats[moment].replicates.get(feature, {})
            counts = stats[moment].counts[feature]
            positives, negatives = counts[:, 2] + counts[:, 3], counts[:, 0] + counts[:, 1]
            defined = {"selection_rate": counts.sum(axis=1) > 0, "accuracy": counts.sum(axis=1) > 0,
                       "tpr": positives > 0, "fpr": negatives > 0}
            for code, group in enumerate(grouping.group_names):
                for metric in RATES:
                    value = point[metric][code]
                    low, high = self._interval(reps[metric][:, code]) if metric in reps and defined[metric][code] else (None, None)
                    metrics.append(Metric(
                        name=f"{metric}_{moment}", value=float(value) if defined[metric][code] else None,
                        ci_low=low, ci_high=high, group=f"{feature}={group}", n=int(counts[code].sum()),
                        undefined_reason=None if defined[metric][code] else "no examples in the denominator",
                    ))
            dp = difference(point["selection_rate"], reps.get("selection_rate"), defined["selection_rate"],
                            what="the selection rate", confidence=config.confidence)
            eo = equalized_odds((point["tpr"], reps.get("tpr"), defined["tpr"]),
                                (point["fpr"], reps.get("fpr"), defined["fpr"]), confidence=config.confidence)
            disparity[moment] = {"demographic_parity_difference": dp, "equalized_odds_difference": eo}
            for name, estimate in disparity[moment].items():
                metrics.append(Metric(name=f"{name}_{moment}", value=estimate.value, ci_low=estimate.low,
                                      ci_high=estimate.high, target=0.0, higher_is_better=False, group=feature,
                                      undefined_reason=estimate.undefined_reason))
        for code, group in enumerate(grouping.group_names):
            row = [f"{feature}={group}", int(stats["before"].counts[feature][code].sum())]
            for metric in RATES:
                row += [_fmt(stats["before"].point[feature][metric][code]), _fmt(stats["after"].point[feature][metric][code])]
            rows.append(row)
        metrics.append(Metric(
            name="accuracy_cost", value=cost.value, ci_low=cost.low, ci_high=cost.high, p_value=p_value,
            higher_is_better=True, n=int(before.size),
            description="accuracy after minus before on the evaluation split (negative = the mitigation costs accuracy)",
        ))
        target = "demographic_parity_difference" if config.constraint == "demographic_parity" else "equalized_odds_difference"
        old, new = disparity["before"][target], disparity["after"][target]
        findings = []
        if old.value is not None and new.value is not None:
            findings.append(Finding(level="info", metric=target, message=(
                f"What-if ({config.constraint.replace('_', ' ')} thresholds by {feature}): "
                f"{target.replace('_', ' ')} {old.value:.3f} → {new.value:.3f}"
                + (f" [{new.low:.3f}, {new.high:.3f}]" if new.low is not None else "")
                + f"; accuracy change {cost.value:+.3f} [{cost.low:+.3f}, {cost.high:+.3f}]. The model is unchanged.")))
        threshold_rows = [[f"{feature}={group}", str(rule)] for group, rule in sorted(thresholds.items())]
        tables = [
            Table(name="before_after", title="Per-group rates before → after group-specific thresholds",
                  columns=["group", "n"] + [f"{m} {moment}" for m in RATES for moment in ("before", "after")], rows=rows),
            Table(name="thresholds", title="Fitted thresholds (ThresholdOptimizer interpolation per group)",
                  columns=["group", "rule"], rows=threshold_rows,
                  caption="Each group's rule mixes up to two score thresholds at random with the stated probabilities."),
        ]
        note = ("what-if only: applying group-specific thresholds needs the sensitive attribute at decision time "
                "and randomises some decisions")
        result = self.new_result(metrics=metrics, tables=tables, findings=findings, warnings=[note])
        result.per_example = {
            "example_ids": evaluation.ids,
            "positive_prediction_before": [bool(v) for v in before],
            "positive_prediction_after": [bool(v) for v in after],
            "correct_before": [bool(v) for v in before == evaluation.y_true],
            "correct_after": [bool(v) for v in after == evaluation.y_true],
        }
        return result


def _fmt(value) -> str:
    return "not defined" if not np.isfinite(value) else f"{value:.3f}"
