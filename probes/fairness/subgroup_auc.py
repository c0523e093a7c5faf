"""Identity-subgroup AUCs of a toxicity-like classifier (Borkan et al., "Nuanced Metrics for Measuring Unintended
Bias with Real Data for Text Classification", WWW 2019 companion).

For each identity subgroup (texts mentioning an identity term, see ``probes.fairness.groups``), with the model's
toxicity score:
  * Subgroup AUC — AUC on the subgroup's texts only: can the model separate toxic from non-toxic talk *about* the
    group? Low = poor understanding of that context.
  * BPSN AUC (background positive, subgroup negative) — toxic texts *without* the identity vs non-toxic texts
    *with* it. Low = non-toxic mentions score higher than toxic background: false positives tied to the identity
    (the classic "gay" -> toxic failure).
  * BNSP AUC (background negative, subgroup positive) — non-toxic background vs toxic mentions. Low = toxic
    mentions are missed: false negatives tied to the identity.
Higher is better for all three; each is shown with a percentile bootstrap interval (one resampling of the rows
shared by every subgroup and metric) next to the overall AUC. A summary follows the Jigsaw Unintended Bias
challenge (power mean, p = -5, of each AUC over subgroups), which weighs the worst subgroups most.

Data: the task's own held-out split (default), the synthetic madlibs sentences of Dixon et al. (AIES 2018;
Label BAD/NOT_BAD) or their Wikipedia talk toxicity test sets (original / identity-fuzzed). Only meaningful for a
classifier whose chosen label means "toxic/abusive". Limits: term mentions are a proxy for the subject of a text;
subgroups with few examples of either class give no AUC (reported as not defined).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from audit.results import Figure, Finding, Metric, ProbeResult, Table
from probes.base import (
    FROM_DATA,
    NO_GROUP,
    LabelIndex,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeInputError,
    ProbeSkipped,
    declare,
    register,
)
from probes.fairness.groups import IDENTITY_TERMS, identity_mentions
from probes.fairness.predictions import split_examples
from probes.fairness.rates import resample_weights, weighted_auc
from probes.stats import finite_interval
from probes.verdicts import Band, equivalence_note, equivalence_outcome

DATASETS = {
    # catalog name: (text column, label column, value meaning toxic)
    "madlibs": ("Text", "Label", "BAD"),
    "madlibs_toxicity_nonfuzzed": ("comment", "toxic", True),
    "madlibs_toxicity_fuzzed": ("comment", "toxic", True),
}
AUC_KINDS = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
POWER = -5.0


def subgroup_masks(labels: np.ndarray, mentions: np.ndarray) -> dict[str, np.ndarray]:
    """Rows entering each of the three AUCs for one subgroup (Borkan et al., Section 3)."""
    toxic = labels.astype(bool)
    return {
        "subgroup_auc": mentions,
        "bpsn_auc": (~mentions & toxic) | (mentions & ~toxic),
        "bnsp_auc": (~mentions & ~toxic) | (mentions & toxic),
    }


def power_mean(values: np.ndarray, p: float = POWER) -> float | None:
    values = values[np.isfinite(values)]
    if values.size == 0 or np.any(values <= 0):
        return None
    return float(np.mean(values**p) ** (1.0 / p))


def subgroup_aucs(scores, labels, mentions: dict[str, np.ndarray], *, n_resamples: int, rng: np.random.Generator):
    """Point AUCs and bootstrap replicates: {term: {kind: (value, replicates (B,))}} plus the overall AUC."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    n = scores.size
    unit = np.ones((1, n))
    row_sets = {term: subgroup_masks(labels, mask) for term, mask in mentions.items()}
    row_sets["__overall__"] = {"overall_auc": np.ones(n, dtype=bool)}
    point = {
        term: {kind: float(weighted_auc(scores[rows], labels[rows], unit[:, rows])[0]) for kind, rows in kinds.items()}
        for term, kinds in row_sets.items()
    }
    replicates = {term: {kind: [] for kind in kinds} for term, kinds in row_sets.items()}
    for weights in resample_weights(n, n_resamples, rng) if n_resamples else []:
        for term, kinds in row_sets.items():
            for kind, rows in kinds.items():
                replicates[term][kind].append(weighted_auc(scores[rows], labels[rows], weights[:, rows]))
    return {
        term: {kind: (point[term][kind], np.concatenate(replicates[term][kind]) if n_resamples else None)
               for kind in kinds}
        for term, kinds in row_sets.items()
    }


@register
class SubgroupAUCProbe(Probe):
    name = "subgroup_auc"
    version = "1"
    family = "fairness"
    citation = (
        "Borkan, Dixon, Sorensen, Thain & Vasserman, Nuanced Metrics for Measuring Unintended Bias with Real Data "
        "for Text Classification, WWW 2019 companion; Dixon et al., AIES 2018 (madlibs)"
    )
    description = "Subgroup, BPSN and BNSP AUCs per identity term for a toxicity-like classifier"
    needs = frozenset({"classifier"})
    how_to_read = (
        "Each identity term gets three AUCs (1 = perfect ranking, 0.5 = chance). A low BPSN AUC means harmless "
        "texts that mention the identity are scored as more toxic than genuinely toxic texts that do not: the model "
        "over-flags that identity. A low BNSP AUC means toxic texts about the identity are missed. Compare each "
        "with the overall AUC; terms with few examples are left out or shown as not defined."
    )

    metrics = declare({"overall_auc": NO_GROUP, **dict.fromkeys(AUC_KINDS, FROM_DATA),  # per identity term
               **{f"{kind}_power_mean": NO_GROUP for kind in AUC_KINDS}})

    class Config(ProbeConfig):
        dataset: Literal["task", "madlibs", "madlibs_toxicity_nonfuzzed", "madlibs_toxicity_fuzzed"] = "task"
        split: str = Field("test", description="task split(s) when dataset = 'task'")
        toxic_label: LabelIndex | None = Field(
            None, description="class index meaning toxic (default: task.positive_label)")
        terms: list[str] | None = Field(None, description="identity terms (default: Dixon et al.'s list)")
        min_subgroup_size: int = Field(20, ge=1)
        max_examples: int = Field(5000, ge=10, description="seeded subsample of larger datasets")
        n_resamples: int = Field(500, ge=0)
        confidence: float = Field(0.95, gt=0.5, lt=1.0)
        gap_threshold: float = Field(0.05, gt=0.0, description="AUC this far below overall is flagged")
        batch_size: int = Field(64, ge=1)

    def _data(self, ctx: ProbeContext) -> tuple[list[str], np.ndarray, list[str]]:
        config = self.config
        if config.dataset == "task":
            if ctx.task is None:
                raise ProbeSkipped("dataset='task' needs the fine-tuning task; set dataset to a madlibs set instead")
            examples = split_examples(ctx.task, config.split)
            toxic = ctx.task.positive_label if config.toxic_label is None else config.toxic_label
            return [e.text for e in examples], np.array([e.label == toxic for e in examples]), [e.id for e in examples]
        text_column, label_column, toxic_value = DATASETS[config.dataset]
        dataset = ctx.load_dataset(config.dataset).dataset
        texts = [str(text) for text in dataset[text_column]]
        labels = np.array([value == toxic_value for value in dataset[label_column]])
        ids = [f"{config.dataset}:{row}" for row in range(len(texts))]
        return texts, labels, ids

    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        texts, labels, ids = self._data(ctx)
        if len(texts) > config.max_examples:
            keep = np.sort(ctx.rng.choice(len(texts), size=config.max_examples, replace=False))
            texts, labels, ids = [texts[i] for i in keep], labels[keep], [ids[i] for i in keep]
        toxic_label = config.toxic_label
        if toxic_label is None:
            toxic_label = ctx.task.positive_label if ctx.task is not None else 1
        probabilities = np.asarray(ctx.subject.predict_proba(texts, batch_size=config.batch_size), dtype=float)
        if probabilities.ndim != 2 or probabilities.shape[0] != len(texts):
            raise ProbeInputError(f"the model returned probabilities of shape {probabilities.shape}")
        if not 0 <= toxic_label < probabilities.shape[1]:
            raise ProbeInputError(
                f"toxic_label {toxic_label} is not one of the model's {probabilities.shape[1]} classes"
            )
        if np.isnan(probabilities).any():
            raise ProbeInputError("the model returned NaN probabilities; expected finite values")
        scores = probabilities[:, toxic_label]
        if labels.all() or not labels.any():
            raise ProbeInputError("the evaluation data hold only one class; AUCs need toxic and non-toxic texts")
        mentions = identity_mentions(texts, config.terms or IDENTITY_TERMS)
        warnings: list[str] = []
        small = sorted(term for term, mask in mentions.items() if mask.sum() < config.min_subgroup_size)
        if small:
            warnings.append(
                f"{len(small)} term(s) have fewer than {config.min_subgroup_size} mentions and are left out: "
                + ", ".join(small[:15]) + (" …" if len(small) > 15 else "")
            )
        mentions = {term: mask for term, mask in mentions.items() if term not in small}
        if not mentions:
            raise ProbeSkipped(f"no identity term is mentioned at least {config.min_subgroup_size} times in the data")
        results = subgroup_aucs(scores, labels, mentions, n_resamples=config.n_resamples, rng=ctx.rng)
        return self._result(results, mentions, labels, scores, ids, warnings)

    def _interval(self, replicates):
        return finite_interval(replicates, confidence=self.config.confidence)

    def _result(self, results, mentions, labels, scores, ids, warnings) -> ProbeResult:
        overall_value, overall_reps = results["__overall__"]["overall_auc"]
        overall_low, overall_high = self._interval(overall_reps)
        metrics = [Metric(name="overall_auc", value=overall_value, ci_low=overall_low, ci_high=overall_high,
                          higher_is_better=True, n=int(labels.size), description="ROC AUC on all evaluated texts")]
        rows, findings, undecided = [], [], []
        band = Band(overall_value - self.config.gap_threshold, None)
        for term in sorted(mentions):
            n_mentions = int(mentions[term].sum())
            row: list = [term, n_mentions, int((mentions[term] & labels).sum())]
            for kind in AUC_KINDS:
                value, reps = results[term][kind]
                defined = bool(np.isfinite(value))
                low, high = self._interval(reps) if defined else (None, None)
                metrics.append(Metric(
                    name=kind, value=float(value) if defined else None, ci_low=low, ci_high=high,
                    higher_is_better=True, n=n_mentions, group=term,
                    undefined_reason=None if defined else "the rows of this AUC hold only one class",
                ))
                row.append(f"{value:.3f} [{low:.3f}, {high:.3f}]" if defined and low is not None
                           else f"{value:.3f}" if defined else "not defined")
                outcome = equivalence_outcome(low, high, band) if defined else None
                if outcome == "inconclusive":
                    undecided.append(f"'{term}' {kind.replace('_', ' ').upper()}")
                if outcome == "fail":
                    what = {"subgroup_auc": "separates toxic from non-toxic texts about it poorly",
                            "bpsn_auc": "scores harmless mentions as more toxic than toxic background (over-flags)",
                            "bnsp_auc": "misses toxic texts that mention it (under-flags)"}[kind]
                    findings.append(Finding(level="warn", metric=kind, message=(
                        f"'{term}': {kind.replace('_', ' ').upper()} {value:.3f} [{low:.3f}, {high:.3f}] is below the "
                        f"overall AUC {overall_value:.3f}: the model {what}.")))
            rows.append(row)
        for kind in AUC_KINDS:
            values = np.array([results[term][kind][0] for term in sorted(mentions)])
            summary = power_mean(values)
            metrics.append(Metric(
                name=f"{kind}_power_mean", value=summary, higher_is_better=True, n=int(np.isfinite(values).sum()),
                undefined_reason=None if summary is not None else "no subgroup has a defined AUC",
                description=f"generalised mean (p = {POWER:g}) of the {kind} over subgroups (Jigsaw challenge)",
            ))
        note = equivalence_note(band, self.config.confidence)
        if undecided:
            shown = ", ".join(undecided[:5]) + (f" and {len(undecided) - 5} more" if len(undecided) > 5 else "")
            findings.append(Finding(level="inconclusive", metric="bpsn_auc", message=(
                f"{len(undecided)} identity-term AUC interval(s) reach more than {self.config.gap_threshold} below "
                f"the overall AUC {overall_value:.3f} without lying wholly below it: {shown} ({note}).")))
        elif not findings:
            findings.append(Finding(level="pass", metric="bpsn_auc", message=(
                f"Every identity term's AUC interval lies within {self.config.gap_threshold} of the overall AUC "
                f"{overall_value:.3f} or above it ({note}).")))
        figures = [
            Figure(name=kind, title=f"{kind.replace('_', ' ').upper()} by identity term", kind="bar", data={
                "labels": sorted(mentions),
                "values": [m.value for m in metrics if m.name == kind],
                "ci_low": [m.ci_low for m in metrics if m.name == kind],
                "ci_high": [m.ci_high for m in metrics if m.name == kind],
                "reference": overall_value,
            }, y_label="AUC", caption="Reference line: overall AUC")
            for kind in AUC_KINDS
        ]
        table = Table(name="subgroup_aucs", title="AUCs per identity subgroup [95% CI]",
                      columns=["term", "mentions", "toxic mentions", "Subgroup AUC", "BPSN AUC", "BNSP AUC"], rows=rows)
        result = self.new_result(metrics=metrics, tables=[table], figures=figures, findings=findings, warnings=warnings)
        result.per_example = {
            "example_ids": ids,
            "score": [round(float(value), 6) for value in scores],
            "toxic": [bool(value) for value in labels],
        }
        return result
