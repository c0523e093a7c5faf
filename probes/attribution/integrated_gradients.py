"""The ``attributions`` probe: which words drive each decision, by Integrated Gradients and two cheaper methods.

Integrated Gradients (Sundararajan, Taly & Yan, ICML 2017) through captum's ``LayerIntegratedGradients`` on the
token-embedding layer; the reference input replaces every non-special token by [PAD] (or [MASK]); the explained
output is the logit of the class the model predicts. IG satisfies *completeness*: an example's attributions sum to
f(x) − f(baseline). The gap, the **convergence delta**, is reported per example — smaller |delta| is better; an
example is flagged when |delta| > max(relative_tolerance × |f(x) − f(baseline)|, absolute_tolerance) (defaults
5% of the explained logit change, at least 0.01 logits), meaning more ``n_steps`` are needed.

Cheaper alternatives in the same probe: gradient × input (one backward pass) and attention rollout (Abnar &
Zuidema, ACL 2020; unsigned, class-agnostic). Their rank agreement with IG is reported; how far each can be trusted
is measured by the ``faithfulness`` and ``sanity`` probes.

Limits: attributions explain the model's logit relative to one reference input; another baseline gives other
numbers. Attention rollout is not a gradient-based explanation and cannot tell which class a word supports.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import numpy as np
from pydantic import Field
from scipy import stats as scipy_stats

from audit.results import Example, Figure, Finding, Metric, ProbeResult, Table
from probes.attribution.adapter import AttentionUnavailableError
from probes.attribution.common import (
    AttributionConfig,
    attribution_model,
    display_item,
    label_name,
    method_label,
    select_texts,
    top_words,
)
from probes.attribution.methods import METHODS, TokenAttribution, compute_attributions, delta_tolerance
from probes.base import NO_GROUP, Probe, ProbeContext, declare, register
from probes.stats import bootstrap_mean_ci, wilson_interval

MethodName = Literal["integrated_gradients", "gradient_x_input", "attention_rollout"]


def rank_agreement(first: TokenAttribution, second: TokenAttribution) -> float:
    """Spearman correlation of two methods' scores over an example's content tokens (NaN if undefined)."""
    positions = first.content_positions
    if positions.size < 2:
        return float("nan")
    a, b = first.scores[positions], second.scores[positions]
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(scipy_stats.spearmanr(a, b).statistic)


@register
class AttributionsProbe(Probe):
    """Token attributions (IG, gradient × input, attention rollout) with IG's completeness delta per example."""

    name = "attributions"
    version = "1"
    family = "attribution"
    citation = (
        "Sundararajan, Taly & Yan, 'Axiomatic Attribution for Deep Networks', ICML 2017; "
        "Abnar & Zuidema, 'Quantifying Attention Flow in Transformers', ACL 2020"
    )
    description = "Which words drive each prediction (Integrated Gradients, gradient × input, attention rollout)"
    needs = frozenset({"classifier"})
    how_to_read = (
        "Each highlighted word pushed the model towards the class it predicted (positive, one colour) or away from "
        "it (negative, the other colour); stronger colour means more influence. The completeness gap (delta) says "
        "how accurately the Integrated Gradients numbers add up to the model's actual change in score: close to "
        "zero is good; a flagged example needs more integration steps before its explanation is trusted. Attention "
        "rollout only shows where the model looked, not which way a word pushed."
    )

    metrics = declare({"ig_mean_abs_delta": NO_GROUP, "ig_max_abs_delta": NO_GROUP,
                       "ig_share_within_tolerance": NO_GROUP,
                       # group: the method compared with IG
                       "rank_agreement_with_ig": frozenset(METHODS) - {"integrated_gradients"}})

    class Config(AttributionConfig):
        methods: list[MethodName] = Field(default_factory=lambda: list(METHODS))
        delta_relative_tolerance: float = Field(0.05, gt=0)
        delta_absolute_tolerance: float = Field(0.01, ge=0)
        n_display: int = Field(6, ge=0)


    def declared_metrics(self):
        compared = frozenset(self.config.methods) - {"integrated_gradients"}
        return {**self.metrics, "rank_agreement_with_ig": compared}

    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        model = attribution_model(ctx)
        selection = select_texts(ctx, config, model)
        warnings = list(selection.warnings)
        methods = ["integrated_gradients"] + [m for m in config.methods if m != "integrated_gradients"]

        by_method: dict[str, list[TokenAttribution]] = {}
        for method in methods:
            ctx.progress(f"attributions: {method_label(method)} on {len(selection.texts)} texts")
            try:
                by_method[method] = compute_attributions(
                    model, selection.texts, method, n_steps=config.n_steps, baseline_token=config.baseline_token,
                    batch_size=config.batch_size, max_sequences=config.max_sequences,
                )
            except AttentionUnavailableError as error:
                warnings.append(f"{method_label(method)} was not computed: {error}")

        ig = by_method["integrated_gradients"]
        deltas = np.array([abs(a.delta) for a in ig])
        tolerances = np.array(
            [delta_tolerance(a, relative=config.delta_relative_tolerance, absolute=config.delta_absolute_tolerance)
             for a in ig]
        )
        within = deltas <= tolerances
        metrics = self._delta_metrics(ctx, deltas, within)
        metrics += self._agreement_metrics(ctx, by_method)
        findings = self._delta_findings(deltas, within, selection.ids, tolerances)
        if not within.all():
            warnings.append(
                f"{int((~within).sum())} example(s) have an IG completeness gap above tolerance; raise n_steps "
                f"(now {config.n_steps})"
            )

        figures = [
            Figure(
                name=f"tokens_{method}",
                title=f"{method_label(method)}: word attributions",
                kind="tokens",
                data={
                    "items": [
                        display_item(
                            f"{selection.ids[i]} — predicted {label_name(ctx, a.target)}", a, model
                        )
                        for i, a in enumerate(attributions[: config.n_display])
                    ]
                },
                caption="Scores are scaled so the largest |score| in each example is 1; sub-word scores are summed "
                "per word. Positive = towards the predicted class.",
            )
            for method, attributions in by_method.items()
            if config.n_display
        ]
        figures.append(self._delta_figure(selection.ids, deltas, config.delta_absolute_tolerance))

        return self.new_result(
            metrics=metrics,
            tables=[self._example_table(ctx, selection.ids, ig, deltas, within, model), self._word_table(ig, model)],
            figures=figures,
            examples=[
                Example(
                    title=f"{selection.ids[i]}",
                    fields={
                        "text": a.text,
                        "predicted": label_name(ctx, a.target),
                        "top words (IG)": ", ".join(top_words(a, model)),
                        "completeness gap": round(float(a.delta), 6),
                    },
                )
                for i, a in enumerate(ig[: min(3, len(ig))])
            ],
            findings=findings,
            warnings=warnings,
            per_example={
                "example_ids": list(selection.ids),
                "predicted": [int(a.target) for a in ig],
                "ig_delta": [float(a.delta) for a in ig],
                "ig_within_tolerance": [bool(value) for value in within],
            },
        )

    # -- metrics -----------------------------------------------------------------------------------------------
    def _delta_metrics(self, ctx: ProbeContext, deltas: np.ndarray, within: np.ndarray) -> list[Metric]:
        mean = bootstrap_mean_ci(deltas, rng=ctx.rng, n_resamples=self.config.n_bootstrap)
        low, high = wilson_interval(int(within.sum()), within.size)
        return [
            Metric(
                name="ig_mean_abs_delta", value=mean.value, ci_low=mean.low, ci_high=mean.high,
                higher_is_better=False, n=int(deltas.size),
                description="mean |sum of IG attributions − (f(x) − f(baseline))|, in logits",
            ),
            Metric(
                name="ig_max_abs_delta", value=float(deltas.max()), higher_is_better=False, n=int(deltas.size),
                description="largest completeness gap over the explained examples, in logits",
            ),
            Metric(
                name="ig_share_within_tolerance", value=float(within.mean()), ci_low=low, ci_high=high,
                higher_is_better=True, n=int(within.size),
                description="share of examples whose completeness gap is within tolerance",
            ),
        ]

    def _agreement_metrics(self, ctx: ProbeContext, by_method: dict[str, list[TokenAttribution]]) -> list[Metric]:
        metrics = []
        ig = by_method["integrated_gradients"]
        for method, attributions in by_method.items():
            if method == "integrated_gradients":
                continue
            values = np.array([rank_agreement(a, b) for a, b in zip(ig, attributions)])
            values = values[~np.isnan(values)]
            if values.size == 0:
                metrics.append(Metric(
                    name="rank_agreement_with_ig", value=None, group=method, n=0,
                    undefined_reason="no example had two or more tokens with distinct scores",
                ))
                continue
            interval = bootstrap_mean_ci(values, rng=ctx.rng, n_resamples=self.config.n_bootstrap)
            metrics.append(Metric(
                name="rank_agreement_with_ig", value=interval.value, ci_low=interval.low, ci_high=interval.high,
                group=method, n=int(values.size),
                description=f"mean Spearman correlation of {method_label(method)} and IG token scores (context)",
            ))
        return metrics

    def _delta_findings(self, deltas, within, ids, tolerances) -> list[Finding]:
        n_out = int((~within).sum())
        if n_out == 0:
            return [Finding(
                level="pass", metric="ig_share_within_tolerance",
                message=f"Integrated Gradients explanations add up: every one of {deltas.size} examples has a "
                f"completeness gap within tolerance (largest {deltas.max():.2g} logits).",
            )]
        worst = int(np.argmax(deltas / np.maximum(tolerances, 1e-12)))
        return [Finding(
            level="warn", metric="ig_share_within_tolerance",
            message=f"{n_out} of {deltas.size} Integrated Gradients explanations do not add up to the model's change "
            f"in score within tolerance (worst: {ids[worst]}, gap {deltas[worst]:.3g} logits). Increase n_steps; if "
            "the gap does not shrink, the model's output jumps along the path (e.g. near one-hot attention "
            "switching between tokens) and these attributions should not be read as exact shares.",
        )]

    # -- tables and figures ------------------------------------------------------------------------------------
    def _example_table(self, ctx, ids, ig, deltas, within, model) -> Table:
        rows = [
            [
                ids[i], label_name(ctx, a.target), round(a.target_logit, 5), round(float(a.baseline_logit), 5),
                round(float(a.scores.sum()), 5), round(float(a.delta), 6), bool(within[i]),
                ", ".join(top_words(a, model)),
            ]
            for i, a in enumerate(ig)
        ]
        return Table(
            name="ig_examples", title="Integrated Gradients per example",
            columns=["example", "predicted", "f(x)", "f(baseline)", "sum of attributions", "delta",
                     "within tolerance", "top words"],
            rows=rows,
            caption="f is the logit of the predicted class; completeness: sum of attributions = f(x) − f(baseline) "
            "+ delta.",
        )

    def _word_table(self, ig: list[TokenAttribution], model) -> Table:
        totals: dict[str, list[float]] = defaultdict(list)
        for attribution in ig:
            for word, score in attribution.word_scores(model.word_alignment(attribution.text)):
                totals[word.lower()].append(score)
        ranked = sorted(
            ((word, float(np.mean(np.abs(s))), float(np.mean(s)), len(s)) for word, s in totals.items() if len(s) >= 2),
            key=lambda row: (-row[1], row[0]),
        )[:20]
        return Table(
            name="ig_top_words", title="Most influential words (IG, words seen at least twice)",
            columns=["word", "mean |attribution|", "mean attribution", "occurrences"],
            rows=[[w, round(a, 5), round(m, 5), n] for w, a, m, n in ranked],
            caption="Positive mean attribution: the word usually pushes towards the class the model predicts.",
        )

    def _delta_figure(self, ids: list[str], deltas: np.ndarray, absolute_tolerance: float) -> Figure:
        order = np.argsort(-deltas, kind="stable")[:40]
        return Figure(
            name="ig_completeness_delta", title="Integrated Gradients completeness gap per example",
            kind="bar",
            data={
                "labels": [ids[i] for i in order],
                "values": [float(deltas[i]) for i in order],
                "reference": float(absolute_tolerance),
            },
            x_label="|delta| (logits)",
            caption="Largest gaps first (up to 40); the reference line is the absolute tolerance.",
        )
