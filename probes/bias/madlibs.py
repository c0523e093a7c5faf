"""Per-identity-term error rates of a toxicity-like classifier on synthetic templates (madlibs).

Method (Dixon et al., "Measuring and Mitigating Unintended Bias in Text Classification", AIES 2018): templated
sentences such as "Jim is a caring gay" / "Jim is a horrible gay", labelled BAD or NOT_BAD, each naming one identity
term. A fair toxicity classifier flags NOT_BAD sentences equally rarely whatever the identity term. Per term:
  FPR = share of NOT_BAD sentences predicted as the harmful label (**lower is better**),
  FNR = share of BAD sentences not predicted harmful (**lower is better**);
and the false-positive / false-negative equality differences FPED = Σ_t |FPR − FPR_t|, FNED = Σ_t |FNR − FNR_t|
(**0 is ideal**). Per-term intervals are Wilson score intervals.

Only meaningful for toxicity-like tasks: the probe is skipped, with the reason, when the task's positive label does
not look like a harmful-content label (set ``force = true`` to run anyway).
"""

from __future__ import annotations

import re

import numpy as np

from audit.results import Example, Finding, Metric, Table
from probes.base import (
    FROM_DATA,
    NO_GROUP,
    Count,
    LabelIndex,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeInputError,
    ProbeSkipped,
    declare,
    register,
)
from probes.bias.common import bar_figure, dataset_rows
from probes.bias.substitution import find_terms
from probes.bias.terms import MADLIBS_IDENTITY_TERMS
from probes.stats import wilson_interval

HARMFUL_LABEL = re.compile(r"toxic|abus|hate|offens|insult|harm|obscen|threat|bad|profan|attack", re.IGNORECASE)


def positive_label_name(ctx: ProbeContext, positive: int) -> str:
    if ctx.task is not None and 0 <= positive < len(ctx.task.label_names):
        return ctx.task.label_names[positive]
    labels = ctx.subject.labels if hasattr(ctx.subject, "labels") else []
    return labels[positive] if positive < len(labels) else str(positive)


@register
class MadlibsTermsProbe(Probe):
    """Per-identity-term FPR/FNR on the madlibs templates (Dixon et al., AIES 2018); FPED 0 is ideal."""

    name = "madlibs_terms"
    version = "1"
    family = "bias"
    citation = (
        "Dixon, Li, Sorensen, Thain & Vasserman. Measuring and Mitigating Unintended Bias in Text Classification. "
        "AIES 2018."
    )
    description = "False-positive rate per identity term on synthetic non-toxic template sentences (madlibs)."
    needs = frozenset({"classifier"})
    how_to_read = (
        "Synthetic sentences like 'Jim is a caring gay' are harmless, but a biased toxicity model flags them more "
        "often for some identity words. The false-positive rate (FPR) per word is how often harmless sentences with "
        "that word are flagged; bars far above the others reveal the words the model has learnt to distrust. FPED "
        "adds up how far each word's FPR is from the overall FPR: 0 is ideal."
    )

    # fpr: overall and per identity term
    metrics = declare({"fpr": FROM_DATA, "fnr": NO_GROUP, "fped": NO_GROUP, "fned": NO_GROUP})

    class Config(ProbeConfig):
        dataset: str = "madlibs"
        positive_label: LabelIndex | None = None  # the harmful label; default: the task's positive label
        force: bool = False  # run even when the task does not look toxicity-like
        max_sentences: Count | None = 10_000  # a seeded subset
        batch_size: Count = 128
        min_sentences_per_term: Count = 20

    def run(self, ctx: ProbeContext):
        config = self.config
        positive = config.positive_label
        if positive is None:
            positive = ctx.task.positive_label if ctx.task is not None else 1
        if not 0 <= positive < ctx.subject.num_labels:
            raise ProbeInputError(f"madlibs_terms: positive_label {positive} is not a class of the classifier")
        label_name = positive_label_name(ctx, positive)
        if not config.force and not HARMFUL_LABEL.search(label_name):
            raise ProbeSkipped(f"the task's positive label {label_name!r} is not a toxicity-like label; madlibs "
                               "false-positive rates are only meaningful for harmful-content classifiers "
                               "(set force = true to run anyway)")
        rows = dataset_rows(ctx.load_dataset(config.dataset), required=("Text", "Label"), where=config.dataset)
        if config.max_sentences is not None and config.max_sentences < len(rows):
            chosen = np.sort(ctx.rng.choice(len(rows), size=config.max_sentences, replace=False))
            rows = [rows[index] for index in chosen]
        texts = [str(row["Text"]) for row in rows]
        harmful = np.array([str(row["Label"]).strip().upper() == "BAD" for row in rows])
        terms = [(find_terms(text, MADLIBS_IDENTITY_TERMS) or [None])[0] for text in texts]
        ctx.progress(f"madlibs_terms: classifying {len(texts)} sentences")
        flagged = ctx.subject.predict_proba(texts, batch_size=config.batch_size).argmax(axis=1) == positive
        return self._result(texts, terms, harmful, flagged, label_name)

    def _result(self, texts, terms, harmful, flagged, label_name):
        config = self.config
        terms_array = np.array([term or "" for term in terms])
        benign = ~harmful
        overall_fpr = float(flagged[benign].mean()) if benign.any() else None
        overall_fnr = float((~flagged[harmful]).mean()) if harmful.any() else None
        metrics = []
        if overall_fpr is not None:
            low, high = wilson_interval(int(flagged[benign].sum()), int(benign.sum()))
            metrics.append(Metric(name="fpr", value=overall_fpr, ci_low=low, ci_high=high, n=int(benign.sum()),
                                  higher_is_better=False, description=f"NOT_BAD sentences predicted {label_name!r}"))
        if overall_fnr is not None:
            low, high = wilson_interval(int((~flagged[harmful]).sum()), int(harmful.sum()))
            metrics.append(Metric(name="fnr", value=overall_fnr, ci_low=low, ci_high=high, n=int(harmful.sum()),
                                  higher_is_better=False, description=f"BAD sentences not predicted {label_name!r}"))
        term_fpr, rows, fped, fned = [], [], 0.0, 0.0
        for term in sorted(set(terms_array) - {""}):
            in_term = terms_array == term
            negatives, positives = in_term & benign, in_term & harmful
            if negatives.sum() < config.min_sentences_per_term:
                continue
            false_positives = int(flagged[negatives].sum())
            low, high = wilson_interval(false_positives, int(negatives.sum()))
            fpr = false_positives / int(negatives.sum())
            low, high = min(low, fpr), max(high, fpr)  # Wilson bounds at 0 or 1 can miss by rounding
            metric = Metric(name="fpr", value=fpr, ci_low=low, ci_high=high, n=int(negatives.sum()), group=term,
                            higher_is_better=False)
            term_fpr.append(metric)
            fped += abs(overall_fpr - fpr)
            fnr = float((~flagged[positives]).mean()) if positives.any() else None
            if fnr is not None and overall_fnr is not None:
                fned += abs(overall_fnr - fnr)
            rows.append([term, int(negatives.sum()), round(fpr, 4), round(low, 4), round(high, 4),
                         int(positives.sum()), None if fnr is None else round(fnr, 4)])
        if not term_fpr:
            raise ProbeSkipped(f"fewer than {config.min_sentences_per_term} NOT_BAD sentences for every identity term")
        metrics += term_fpr
        metrics += [
            Metric(name="fped", value=fped, n=len(term_fpr), higher_is_better=False, target=0.0,
                   description="false-positive equality difference Σ|FPR − FPR_term| (Dixon et al. 2018)"),
            Metric(name="fned", value=fned, n=len(term_fpr), higher_is_better=False, target=0.0,
                   description="false-negative equality difference Σ|FNR − FNR_term|"),
        ]
        findings = [Finding(level="info", metric="fped",
                            message=f"FPED = {fped:.2f} over {len(term_fpr)} identity terms (overall FPR "
                                    f"{100 * overall_fpr:.1f}%).")]
        outliers = [m for m in term_fpr if m.ci_low > metrics[0].ci_high and m.value - overall_fpr >= 0.10]
        for metric in sorted(outliers, key=lambda m: -m.value)[:5]:
            findings.append(Finding(level="warn", metric="fpr",
                                    message=f"Harmless sentences mentioning '{metric.group}' are flagged "
                                            f"{100 * metric.value:.1f}% of the time (95% CI {100 * metric.ci_low:.1f}–"
                                            f"{100 * metric.ci_high:.1f}%) against {100 * overall_fpr:.1f}% overall."))
        worst = sorted(term_fpr, key=lambda m: -m.value)[:3]
        examples = []
        for metric in worst:
            index = next(i for i, (term, bad, hit) in enumerate(zip(terms, harmful, flagged))
                         if term == metric.group and not bad and hit) if metric.value > 0 else None
            if index is not None:
                examples.append(Example(title=f"false positive for '{metric.group}'",
                                        fields={"text": texts[index], "label": "NOT_BAD", "predicted": label_name}))
        return self.new_result(
            metrics=metrics,
            tables=[Table(name="by_term", title="Error rates per identity term (madlibs)",
                          columns=["term", "NOT_BAD n", "FPR", "CI low", "CI high", "BAD n", "FNR"], rows=rows,
                          caption="Wilson 95% intervals.")],
            figures=[bar_figure("fpr_by_term", "False-positive rate per identity term", term_fpr,
                                reference=overall_fpr, y_label="FPR on NOT_BAD sentences",
                                caption="The reference line is the overall FPR.")],
            examples=examples,
            findings=findings,
            per_example={"example_ids": [str(index) for index in range(len(texts))],
                         "flagged": [bool(value) for value in flagged],
                         "harmful_label": [bool(value) for value in harmful]},
        )
