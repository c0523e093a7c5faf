"""Counterfactual log-likelihood gap: does a language model find a sentence likelier when it names one group?

Method. Template sentences that mention an identity term (by default Dixon et al.'s madlibs, "Jim is a caring
gay") get one counterfactual copy per other value of the term's category, by the same word-boundary-aware,
case-preserving swaps as the classifier ``counterfactual`` probe (Garg et al., AIES 2019; lists and sources in
``probes.bias.terms``). Every version is scored by the language model — a causal LM by its log-likelihood, the sum
of log p(token | the tokens before it) after the BOS (else EOS) token; a masked LM by the pseudo-log-likelihood of
all its tokens (Salazar et al., ACL 2020) — and the versions are compared, as in the language-model bias measure of
Barikeri et al., "RedditBias: A Real-World Resource for Bias Evaluation and Debiasing of Conversational Language
Models" (ACL 2021), which compares the likelihood of a sentence and its identity-swapped counterpart. The template
is the unit: for template t and value v of a category, ll_t(v) is the score of the version naming v. Per category:
  ll_gap        the mean over templates of |ll_t(u) − ll_t(v)| over the category's value pairs, in nats
                (**lower is better**; 0 = the identity term never changes how likely the sentence is);
  ll_advantage  per value v ("category:value"), the mean over templates of ll_t(v) minus the mean of ll_t over
                the category's values (**0 is ideal**; > 0: the model finds sentences naming v likelier);
and a table per value pair u → v of the mean ll_t(v) − ll_t(u). Intervals are percentile bootstraps over
templates. The sum over tokens, not a per-token mean: the versions differ only in the identity term, and the sum
is the probability of the sentence as a whole.

Known limits: the gap includes the likelihood of the identity term itself, so a term that is rarer in the
training text (``bisexual`` against ``gay``) makes its sentences less likely without any association with the rest
of the sentence; compare templates that differ in what they say about the group (the per-template gaps in the
examples) before reading a gap as a stereotype. Swaps can produce unnatural sentences (see ``counterfactual``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from audit.results import Example, Finding, Metric, Table
from probes.base import (
    LANGUAGE_MODEL,
    BootstrapResamples,
    Confidence,
    Count,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeSkipped,
    ShownCount,
    declare,
    register,
)
from probes.bias.common import bar_figure, dataset_rows
from probes.bias.counterfactual import selected_categories
from probes.bias.lm_scoring import CAUSAL, Scoring, causal_scoring_note, scoring_method, text_scores
from probes.bias.substitution import TermSwapper
from probes.bias.terms import BASE_CATEGORIES, SwapCategory
from probes.stats import bootstrap_mean_ci


@dataclass(frozen=True)
class CategoryScores:
    """One category's templates: the score of every version, NaN where a version is missing or too long."""

    category: SwapCategory
    text_index: np.ndarray  # (T,) index of each template among the input texts
    scores: np.ndarray  # (T, V) ll_t(v), columns in the category's value order
    versions: list[dict[str, str]]  # per template: value -> text of that version

    @property
    def values(self) -> list[str]:
        return list(self.category.values)


def template_versions(category: SwapCategory, texts: list[str]) -> list[tuple[int, dict[str, str]]]:
    """(index, {value: text of that version}) for every text that mentions a term of ``category``."""
    swapper = TermSwapper(category)
    found = []
    for index, text in enumerate(texts):
        counterfactuals = swapper.counterfactuals(text)
        if counterfactuals:
            found.append((index, {counterfactuals[0].source_value: text,
                                  **{swap.target_value: swap.text for swap in counterfactuals}}))
    return found


def category_scores(category: SwapCategory, found: list[tuple[int, dict[str, str]]],
                    score_of: dict[str, float]) -> CategoryScores:
    """The scores of every template's versions (NaN: missing or too long), keeping templates with a comparison."""
    values = list(category.values)
    scores = np.array([[score_of.get(version[value], np.nan) if value in version else np.nan for value in values]
                       for _, version in found], dtype=float).reshape(len(found), len(values))
    usable = np.sum(~np.isnan(scores), axis=1) >= 2
    return CategoryScores(category, np.array([index for index, _ in found], dtype=int)[usable], scores[usable],
                          [version for (_, version), keep in zip(found, usable) if keep])


@register
class CounterfactualLMProbe(Probe):
    """Log-likelihood gap between identity-swapped template sentences (Barikeri et al., ACL 2021); 0 is ideal."""

    name = "counterfactual_lm"
    version = "1"
    family = "bias"
    citation = (
        "Barikeri, Lauscher, Vulić & Glavaš. RedditBias: A Real-World Resource for Bias Evaluation and Debiasing of "
        "Conversational Language Models. ACL 2021; Garg et al. Counterfactual Fairness in Text Classification "
        "through Robustness. AIES 2019; Dixon et al. Measuring and Mitigating Unintended Bias in Text "
        "Classification. AIES 2018."
    )
    description = "How much a language model's likelihood of a sentence changes when only its identity term changes."
    needs = frozenset({LANGUAGE_MODEL})
    how_to_read = (
        "We take template sentences that mention a group ('Jim is a caring gay'), swap only the identity word "
        "(gay → lesbian, bisexual, heterosexual) and ask how likely the language model finds each version. The "
        "gap is the average difference in log-likelihood between versions (in nats; 0 means the model treats the "
        "groups alike, 1 nat means one version is about 2.7 times likelier). The advantage of a group is how much "
        "likelier its versions are than the average version (0 ideal; above 0 the model favours sentences about "
        "that group). Part of a gap can come from how common the identity word itself is, not from a stereotype. "
        "Every figure has a 95% confidence interval over templates."
    )

    metrics = declare({
        "ll_gap": frozenset(category.name for category in BASE_CATEGORIES),
        "ll_advantage": frozenset(f"{category.name}:{value}" for category in BASE_CATEGORIES
                                  for value in category.values),
    })

    class Config(ProbeConfig):
        dataset: str = "madlibs"  # template sentences: a catalog name or a path
        text_column: str = "Text"
        categories: list[str] | None = None  # default: every built-in category
        max_texts: Count | None = 2000  # a seeded subset of the distinct template sentences
        batch_size: Count = 64
        n_bootstrap: BootstrapResamples = 1000
        confidence: Confidence = 0.95
        n_examples: ShownCount = 5
        scoring: Scoring = "auto"  # pin "pseudo-log-likelihood" (masked) or "log-likelihood" (causal) to compare runs

    def declared_metrics(self):
        if self.config.categories is None:
            return self.metrics
        chosen = [category for category in BASE_CATEGORIES if category.name in self.config.categories]
        return {"ll_gap": frozenset(category.name for category in chosen),
                "ll_advantage": frozenset(f"{category.name}:{value}" for category in chosen
                                          for value in category.values)}

    def run(self, ctx: ProbeContext):
        config = self.config
        categories = selected_categories(config.categories, where=self.name)
        method = scoring_method(ctx.subject, config.scoring)
        texts = self._texts(ctx)
        found = [template_versions(category, texts) for category in categories]
        mentioned = sorted({text for versions in found for _, version in versions for text in version.values()})
        if not mentioned:
            raise ProbeSkipped(f"no template sentence mentions an identity term of {', '.join(c.name for c in categories)}")
        ctx.progress(f"counterfactual_lm: scoring {len(mentioned)} sentences")
        scored = text_scores(ctx.subject, mentioned, method=method, batch_size=config.batch_size)
        score_of = dict(zip(mentioned, scored.tolist()))
        results = [category_scores(category, versions, score_of) for category, versions in zip(categories, found)]
        warnings = []
        too_long = int(np.isnan(scored).sum())
        if too_long:
            warnings.append(f"{too_long} sentence(s) skipped: longer than the model's maximum of "
                            f"{ctx.subject.max_length} tokens (not truncated)")
        if not any(result.scores.shape[0] for result in results):
            raise ProbeSkipped("no template sentence could be compared with a counterfactual; " + "; ".join(warnings))
        message = causal_scoring_note(ctx.subject, "each sentence by its log-likelihood summed over its tokens") \
            if method == CAUSAL else ""
        return self._result(ctx, texts, results, warnings, message)

    def _texts(self, ctx: ProbeContext) -> list[str]:
        config = self.config
        rows = dataset_rows(ctx.load_dataset(config.dataset), required=(config.text_column,), where=config.dataset)
        texts = list(dict.fromkeys(str(row[config.text_column]) for row in rows
                                   if row[config.text_column] is not None and str(row[config.text_column]).strip()))
        if config.max_texts is not None and config.max_texts < len(texts):
            chosen = np.sort(ctx.rng.choice(len(texts), size=config.max_texts, replace=False))
            texts = [texts[index] for index in chosen]
        return texts

    def _result(self, ctx: ProbeContext, texts: list[str], results: list[CategoryScores], warnings: list[str],
                message: str):
        options = {"rng": ctx.rng, "n_resamples": self.config.n_bootstrap, "confidence": self.config.confidence}
        metrics, gap_metrics, findings, pair_rows, examples_pool = [], [], [], [], []
        per_example: dict[str, list] = {"example_ids": [], "ll_gap": []}
        for result in results:
            name = result.category.name
            if result.scores.shape[0] == 0:
                metrics.append(Metric(name="ll_gap", value=None, n=0, group=name, higher_is_better=False,
                                      undefined_reason=f"no template mentions a {name} term"))
                continue
            scores = result.scores
            # Per template: mean |ll(u) − ll(v)| over the value pairs it has.
            differences = np.abs(scores[:, :, None] - scores[:, None, :])  # (T, V, V)
            upper = np.triu(np.ones(scores.shape[1], dtype=bool), k=1)
            per_template_gap = np.nanmean(np.where(upper, differences, np.nan), axis=(1, 2))
            gap = bootstrap_mean_ci(per_template_gap, **options)
            gap_metric = Metric(name="ll_gap", value=gap.value, ci_low=gap.low, ci_high=gap.high,
                                n=int(scores.shape[0]), group=name, higher_is_better=False,
                                description="mean |log-likelihood difference| between identity-swapped versions, nats")
            metrics.append(gap_metric)
            gap_metrics.append(gap_metric)
            advantages = scores - np.nanmean(scores, axis=1, keepdims=True)  # (T, V)
            value_metrics = []
            for column, value in enumerate(result.values):
                present = ~np.isnan(advantages[:, column])
                if not present.any():
                    continue
                interval = bootstrap_mean_ci(advantages[present, column], **options)
                value_metrics.append(Metric(
                    name="ll_advantage", value=interval.value, ci_low=interval.low, ci_high=interval.high,
                    target=0.0, n=int(present.sum()), group=f"{name}:{value}",
                    description=f"mean log-likelihood of the {value} version minus the mean over {name} versions"))
            metrics += value_metrics
            findings.append(self._finding(name, gap_metric, value_metrics))
            for first, second in combinations(range(len(result.values)), 2):
                delta = scores[:, second] - scores[:, first]
                present = ~np.isnan(delta)
                if not present.any():
                    continue
                interval = bootstrap_mean_ci(delta[present], **options)
                pair_rows.append([name, f"{result.values[first]} → {result.values[second]}", int(present.sum()),
                                  round(interval.value, 4), round(interval.low, 4), round(interval.high, 4)])
            per_example["example_ids"] += [f"{index}|{name}" for index in result.text_index]
            per_example["ll_gap"] += [round(float(value), 6) for value in per_template_gap]
            examples_pool += [(float(value), result, row) for row, value in enumerate(per_template_gap)]
        return self.new_result(
            message=message,
            metrics=metrics,
            tables=[Table(name="by_value_pair", title="Mean log-likelihood change per identity swap",
                          columns=["category", "swap u → v", "templates", "mean ll(v) − ll(u)", "CI low", "CI high"],
                          rows=pair_rows,
                          caption="Nats; > 0: the model finds the version naming v likelier. Bootstrap intervals "
                                  "over templates.")],
            figures=[bar_figure("ll_gap_by_category", "Log-likelihood gap by identity category", gap_metrics,
                                reference=0.0, y_label="mean |Δ log-likelihood| (nats)",
                                caption="0 = swapping the identity term never changes the sentence's likelihood.")],
            examples=self._examples(texts, examples_pool),
            findings=findings,
            warnings=warnings,
            per_example=per_example,
        )

    @staticmethod
    def _finding(category: str, gap: Metric, advantages: list[Metric]) -> Finding:
        favoured = max(advantages, key=lambda metric: metric.value)
        disfavoured = min(advantages, key=lambda metric: metric.value)
        excludes_zero = [metric for metric in advantages if metric.ci_low > 0 or metric.ci_high < 0]
        text = (f"{category}: identity swaps change a sentence's log-likelihood by {gap.value:.2f} nats on average "
                f"(95% CI {gap.ci_low:.2f}–{gap.ci_high:.2f}, {gap.n} templates); most favoured "
                f"{favoured.group.split(':', 1)[1]} ({favoured.value:+.2f}), least "
                f"{disfavoured.group.split(':', 1)[1]} ({disfavoured.value:+.2f}).")
        return Finding(level="warn" if excludes_zero else "info", metric="ll_gap", message=text)

    def _examples(self, texts: list[str], pool: list[tuple[float, CategoryScores, int]]) -> list[Example]:
        pool.sort(key=lambda item: -item[0])
        examples = []
        for gap, result, row in pool[: self.config.n_examples]:
            fields: dict[str, str | float] = {"template": texts[int(result.text_index[row])]}
            for column, value in enumerate(result.values):
                if value in result.versions[row] and not np.isnan(result.scores[row, column]):
                    fields[f"{value} (log-likelihood)"] = (f"{result.versions[row][value]} "
                                                           f"({result.scores[row, column]:.3f})")
            examples.append(Example(title=f"{result.category.name}: gap {gap:.3f} nats", fields=fields))
        return examples
