"""The ``identity_attribution`` probe: how much of each decision rests on identity words?

For every explained text that mentions an identity term of the chosen category (default "gender": the
counterfactual term lists of ``probes.bias.terms``, which include the calibration scenario's own names and
pronouns), the **identity attribution share** is Σ|a_t| over the tokens of identity terms divided by Σ|a_t| over
all non-special tokens, with a_t the Integrated Gradients attribution (Sundararajan et al., ICML 2017) of the
predicted class. It is reported overall and per group (the task's group column, or the term's value when there
is none), beside the share of tokens that are identity tokens — what an attribution spread evenly would give.
Lower is better: a fair decision should rest on what the text says, not on who it is about.

Each text is also swapped to its counterfactual (every identity term replaced by its counterpart, Garg et al.,
AIES 2019; ``probes.bias.substitution``) and the change of the share between the pair is reported (target 0,
paired bootstrap): a model that treats one group's terms as evidence and not the other's shows a non-zero change.

Limits: attribution mass is not causal effect; a model can rely on identity through correlated words that are not
in the term list, which this probe does not see (the counterfactual probes of the bias family do).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from audit.results import Figure, Finding, Metric, ProbeResult, Table
from probes.attribution.adapter import AttributionModel
from probes.attribution.common import (
    AttributionConfig,
    attribution_model,
    display_item,
    method_label,
    select_texts,
)
from probes.attribution.methods import TokenAttribution, compute_attributions
from probes.base import (
    FROM_DATA,
    NO_GROUP,
    Probe,
    ProbeContext,
    ProbeInputError,
    ProbeSkipped,
    declare,
    register,
)
from probes.stats import bootstrap_mean_ci, paired_bootstrap_diff

MethodName = Literal["integrated_gradients", "gradient_x_input", "attention_rollout"]


def identity_category(name: str):
    """The term category named ``name`` from the bias family's shared lists (never a second copy here)."""
    from probes.bias.terms import default_categories

    categories = {category.name: category for category in default_categories()}
    if name not in categories:
        raise ProbeInputError(f"unknown identity category {name!r}; expected one of {', '.join(categories)}")
    return categories[name]


def term_lookup(category) -> tuple[dict[tuple[str, ...], str], int]:
    """{term as a tuple of lower-case words: its value} and the longest term length in words."""
    lookup: dict[tuple[str, ...], str] = {}
    for value, terms in category.values.items():
        for term in terms:
            lookup.setdefault(tuple(term.lower().split()), value)
    return lookup, max(len(words) for words in lookup)


def identity_positions(
    model: AttributionModel, text: str, lookup: dict[tuple[str, ...], str], longest: int
) -> tuple[list[int], list[str]]:
    """Token positions of identity terms in ``text`` (whole words, longest match first) and the values found."""
    alignment = model.word_alignment(text)
    words = [word.strip().lower() for word, _ in alignment]  # byte-level BPE words keep their leading space
    positions, values, index = [], [], 0
    while index < len(words):
        for size in range(min(longest, len(words) - index), 0, -1):
            value = lookup.get(tuple(words[index : index + size]))
            if value is not None:
                for _, tokens in alignment[index : index + size]:
                    positions += tokens
                values.append(value)
                index += size
                break
        else:
            index += 1
    return positions, values


def attribution_share(attribution: TokenAttribution, positions: list[int]) -> float:
    """Σ|a| on the given positions / Σ|a| on all content tokens (NaN when the total is zero)."""
    magnitude = np.abs(attribution.scores)
    total = magnitude[attribution.content_positions].sum()
    inside = [p for p in set(positions) if p < len(magnitude) and not attribution.special[p]]
    return float(magnitude[inside].sum() / total) if total > 0 else float("nan")


@register
class IdentityAttributionProbe(Probe):
    """Share of attribution mass on identity terms, per group, and its change between counterfactual pairs."""

    name = "identity_attribution"
    version = "1"
    family = "attribution"
    citation = (
        "Sundararajan, Taly & Yan, ICML 2017 (Integrated Gradients); Garg et al., 'Counterfactual Fairness in Text "
        "Classification through Robustness', AIES 2019 (counterfactual term swaps)"
    )
    description = "How much of each decision rests on identity words (names, pronouns, group terms)"
    needs = frozenset({"classifier"})
    how_to_read = (
        "The share says what fraction of the explanation's weight falls on identity words such as names and "
        "pronouns — lower is better. Compare it with the share of words that are identity words: a much larger "
        "attribution share means the model leans on who the text is about. The counterfactual change compares the "
        "same text with the identity words swapped (she ↔ he, Emily ↔ Greg); it should be close to zero."
    )

    metrics = declare({"identity_attribution_share": FROM_DATA,  # overall and per group of the data
               "identity_token_fraction": NO_GROUP, "counterfactual_share_change": NO_GROUP,
               "counterfactual_share_abs_change": NO_GROUP})

    class Config(AttributionConfig):
        method: MethodName = "integrated_gradients"
        category: str = "gender"
        group_column: str | None = None
        n_examples: int = Field(128, ge=1)
        max_share: float = Field(0.25, gt=0, le=1, description="warn when the share's CI lies above this")
        n_display: int = Field(4, ge=0)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        from probes.bias.substitution import TermSwapper

        config = self.config
        category = identity_category(config.category)
        lookup, longest = term_lookup(category)
        model = attribution_model(ctx)
        selection = select_texts(ctx, config, model)
        warnings = list(selection.warnings)

        found = [identity_positions(model, text, lookup, longest) for text in selection.texts]
        keep = [i for i, (positions, _) in enumerate(found) if positions]
        if not keep:
            raise ProbeSkipped(f"none of the {len(selection.texts)} texts mentions a {config.category} term")
        ids = [selection.ids[i] for i in keep]
        texts = [selection.texts[i] for i in keep]
        column = self._group_column(ctx)
        groups = [
            (selection.groups[i].get(column) if column else None) or found[i][1][0] for i in keep
        ]
        settings = {"n_steps": config.n_steps, "baseline_token": config.baseline_token,
                    "batch_size": config.batch_size, "max_sequences": config.max_sequences}
        ctx.progress(f"identity attribution: {method_label(config.method)} on {len(texts)} texts")
        attributions = compute_attributions(model, texts, config.method, **settings)
        shares = np.array([attribution_share(a, found[i][0]) for a, i in zip(attributions, keep)])
        fractions = np.array([
            len(set(found[i][0])) / max(1, a.content_positions.size) for a, i in zip(attributions, keep)
        ])

        counterfactual_shares = self._counterfactual_shares(model, TermSwapper(category), texts, lookup, longest,
                                                            settings)
        metrics = self._share_metrics(ctx, shares, fractions, groups)
        metrics += self._counterfactual_metrics(ctx, shares, counterfactual_shares)
        findings = self._findings(metrics)
        return self.new_result(
            metrics=metrics,
            tables=[self._group_table(shares, fractions, groups)],
            figures=self._figures(metrics, attributions, ids, model, fractions),
            findings=findings,
            warnings=warnings,
            per_example={
                "example_ids": ids,
                "group": [str(g) for g in groups],
                "identity_share": [None if np.isnan(v) else float(v) for v in shares],
                "counterfactual_identity_share": [None if np.isnan(v) else float(v) for v in counterfactual_shares],
            },
        )

    def _group_column(self, ctx: ProbeContext) -> str | None:
        if self.config.group_column:
            return self.config.group_column
        task = ctx.task
        if task is None or self.config.texts is not None:
            return None
        planted = (task.planted or {}).get("group_column")
        if planted:
            return planted
        return self.config.category if self.config.category in task.group_columns else None

    def _counterfactual_shares(self, model, swapper, texts, lookup, longest, settings) -> np.ndarray:
        """Mean share over each text's counterfactuals (NaN when a text has none)."""
        pairs = [(index, cf.text) for index, text in enumerate(texts) for cf in swapper.counterfactuals(text)]
        pairs = [(index, text) for index, text in pairs if model.has_content(text)]
        out = np.full(len(texts), np.nan)
        if not pairs:
            return out
        attributions = compute_attributions(model, [text for _, text in pairs], self.config.method, **settings)
        collected: dict[int, list[float]] = {}
        for (index, text), attribution in zip(pairs, attributions):
            positions, _ = identity_positions(model, text, lookup, longest)
            collected.setdefault(index, []).append(attribution_share(attribution, positions))
        for index, values in collected.items():
            finite = [v for v in values if not np.isnan(v)]
            out[index] = float(np.mean(finite)) if finite else np.nan
        return out

    def _share_metrics(self, ctx, shares, fractions, groups) -> list[Metric]:
        n_boot = self.config.n_bootstrap
        finite = ~np.isnan(shares)
        metrics = []
        overall = bootstrap_mean_ci(shares[finite], rng=ctx.rng, n_resamples=n_boot)
        metrics.append(Metric(
            name="identity_attribution_share", value=overall.value, ci_low=overall.low, ci_high=overall.high,
            higher_is_better=False, n=int(finite.sum()),
            description="share of |attribution| on identity-term tokens, over texts that mention one",
        ))
        fraction = bootstrap_mean_ci(fractions, rng=ctx.rng, n_resamples=n_boot)
        metrics.append(Metric(
            name="identity_token_fraction", value=fraction.value, ci_low=fraction.low, ci_high=fraction.high,
            n=int(fractions.size), description="share of tokens that are identity tokens (the even-spread reference)",
        ))
        for group in sorted(set(groups)):
            mask = np.array([g == group for g in groups]) & finite
            if not mask.any():
                continue
            interval = bootstrap_mean_ci(shares[mask], rng=ctx.rng, n_resamples=n_boot)
            metrics.append(Metric(
                name="identity_attribution_share", value=interval.value, ci_low=interval.low, ci_high=interval.high,
                higher_is_better=False, n=int(mask.sum()), group=str(group),
                description=f"identity attribution share for texts of group {group}",
            ))
        return metrics

    def _counterfactual_metrics(self, ctx, shares, counterfactual) -> list[Metric]:
        paired = ~np.isnan(shares) & ~np.isnan(counterfactual)
        if paired.sum() < 2:
            return [Metric(name="counterfactual_share_change", value=None, target=0.0, n=int(paired.sum()),
                           undefined_reason="fewer than two texts have a counterfactual with attributions")]
        change, p_value = paired_bootstrap_diff(shares[paired], counterfactual[paired], rng=ctx.rng,
                                                n_resamples=max(2000, self.config.n_bootstrap))
        absolute = bootstrap_mean_ci(np.abs(shares[paired] - counterfactual[paired]), rng=ctx.rng,
                                     n_resamples=self.config.n_bootstrap)
        return [
            Metric(name="counterfactual_share_change", value=change.value, ci_low=change.low, ci_high=change.high,
                   target=0.0, n=int(paired.sum()), p_value=p_value,
                   description="mean (share in original − share in the identity-swapped counterfactual)"),
            Metric(name="counterfactual_share_abs_change", value=absolute.value, ci_low=absolute.low,
                   ci_high=absolute.high, higher_is_better=False, n=int(paired.sum()),
                   description="mean |share change| between a text and its counterfactual"),
        ]

    def _findings(self, metrics: list[Metric]) -> list[Finding]:
        share = next(m for m in metrics if m.name == "identity_attribution_share" and m.group is None)
        fraction = next(m for m in metrics if m.name == "identity_token_fraction")
        text = (f"{share.value:.0%} of the explanation weight falls on {self.config.category} identity words "
                f"(95% CI {share.ci_low:.0%}–{share.ci_high:.0%}), which make up {fraction.value:.0%} of the words.")
        findings = [Finding(
            level="warn" if share.ci_low > self.config.max_share else "info", metric=share.name,
            message=text + (" The model leans heavily on who the text is about." if share.ci_low > self.config.max_share
                            else ""),
        )]
        change = next((m for m in metrics if m.name == "counterfactual_share_change"), None)
        if change is not None and change.value is not None:
            significant = change.ci_low > 0 or change.ci_high < 0
            findings.append(Finding(
                level="warn" if significant else "info", metric=change.name,
                message=f"Swapping identity words changes their attribution share by {change.value:+.3f} on average "
                f"(95% CI {change.ci_low:+.3f} to {change.ci_high:+.3f})"
                + ("; the groups' terms are weighed differently." if significant else "."),
            ))
        return findings

    def _group_table(self, shares, fractions, groups) -> Table:
        rows = []
        for group in sorted(set(groups)):
            mask = np.array([g == group for g in groups]) & ~np.isnan(shares)
            if mask.any():
                rows.append([str(group), int(mask.sum()), round(float(shares[mask].mean()), 4),
                             round(float(fractions[mask].mean()), 4)])
        return Table(name="identity_share_by_group", title="Identity attribution share by group",
                     columns=["group", "texts", "mean attribution share", "mean token fraction"], rows=rows)

    def _figures(self, metrics, attributions, ids, model, fractions) -> list[Figure]:
        groups = [m for m in metrics if m.name == "identity_attribution_share"]
        figures = [Figure(
            name="identity_share", title="Share of attribution on identity words", kind="bar",
            data={"labels": [m.group or "all" for m in groups], "values": [m.value for m in groups],
                  "ci_low": [m.ci_low for m in groups], "ci_high": [m.ci_high for m in groups],
                  "reference": float(fractions.mean())},
            x_label="share of |attribution|",
            caption="Dashed: the share of words that are identity words (what an even spread would give).",
        )]
        if self.config.n_display:
            figures.append(Figure(
                name="identity_tokens", title=f"{method_label(self.config.method)}: examples", kind="tokens",
                data={"items": [display_item(ids[i], a, model)
                                for i, a in enumerate(attributions[: self.config.n_display])]},
                caption="Scores scaled so the largest |score| in each example is 1.",
            ))
        return figures
