"""Counterfactual identity swaps: does the classifier's output change when only an identity term changes?

Method (Garg et al., "Counterfactual Fairness in Text Classification through Robustness", AIES 2019; identity
terms after Dixon et al., AIES 2018): for every evaluation text that mentions an identity term of a category
(gender words and pronouns, first names by gender and by race, race, religion, nationality, sexual orientation,
disability, age — lists and sources in ``probes.bias.terms``), make one counterfactual per other value of the
category by word-boundary-aware, case-preserving substitution (``probes.bias.substitution``), and compare the
classifier's probability of the task's positive (harmful / decisive) label, p, on the two texts. Per category:
  flip rate      share of counterfactual pairs whose predicted class changes (**lower is better**, 0 ideal);
  mean |Δp|, max |Δp| over the pairs (**lower is better**);
  CTF gap        Garg et al.'s counterfactual token fairness gap: per text the mean |p(x) − p(x')| over its
                 counterfactuals, averaged over texts (**lower is better**).
Intervals come from a bootstrap over texts (the counterfactuals of one text are resampled together). A table
gives the mean signed Δp per swap direction (e.g. female → male), which tells which group is favoured.

Known limits: swaps can produce unnatural texts (name–pronoun mismatches are avoided only within a category);
``her`` → ``his``/``him`` is decided by a simple next-word rule; a flip rate of 0 on few texts is weak evidence —
check ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.results import Example, Finding, Metric, Table
from probes.base import (
    BootstrapResamples,
    Confidence,
    Count,
    LabelIndex,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeInputError,
    ProbeSkipped,
    ShownCount,
    declare,
    register,
)
from probes.bias.common import bar_figure, dataset_rows
from probes.bias.substitution import TermSwapper
from probes.bias.terms import BASE_CATEGORIES, SwapCategory, default_categories
from probes.stats import bootstrap_indices, percentile_interval


@dataclass(frozen=True)
class PairOutcomes:
    """Counterfactual pairs of one category, aligned arrays."""

    category: str
    text_index: np.ndarray  # (P,) index of the original text
    counterfactual_texts: list[str]
    directions: list[str]  # "female→male"
    delta_p: np.ndarray  # (P,) p(x') − p(x)
    flip: np.ndarray  # (P,) bool


def selected_categories(names: list[str] | None, *, where: str) -> list[SwapCategory]:
    """The built-in swap categories (``probes.bias.terms``), or those named; an unknown name is an input error."""
    categories = default_categories()
    if names is None:
        return categories
    known = {category.name: category for category in categories}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ProbeInputError(f"{where}: unknown categor(ies) {', '.join(unknown)}; expected some of "
                              f"{', '.join(known)}")
    return [known[name] for name in names]


def cluster_bootstrap_ratio(values: np.ndarray, clusters: np.ndarray, *, rng: np.random.Generator,
                            n_resamples: int, confidence: float) -> tuple[float, float, float]:
    """Mean of ``values`` over items with a bootstrap that resamples whole clusters (texts), as a ratio estimator."""
    names, cluster_index = np.unique(clusters, return_inverse=True)
    sums = np.bincount(cluster_index, weights=values, minlength=len(names))
    counts = np.bincount(cluster_index, minlength=len(names)).astype(float)
    chosen = bootstrap_indices(len(names), n_resamples, rng)  # (R, C)
    replicates = sums[chosen].sum(axis=1) / counts[chosen].sum(axis=1)
    low, high = percentile_interval(replicates, confidence=confidence)
    return float(values.mean()), float(low), float(high)


def per_text_means(values: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Mean of ``values`` within each cluster (text), in sorted cluster order."""
    names, cluster_index = np.unique(clusters, return_inverse=True)
    sums = np.bincount(cluster_index, weights=values, minlength=len(names))
    return sums / np.bincount(cluster_index, minlength=len(names))


@register
class CounterfactualProbe(Probe):
    """Counterfactual identity-term swaps on a classifier (Garg et al., AIES 2019); flip rate 0 is ideal."""

    name = "counterfactual"
    version = "1"
    family = "bias"
    citation = (
        "Garg, Perot, Limtiaco, Taly, Chi & Beutel. Counterfactual Fairness in Text Classification through "
        "Robustness. AIES 2019; Dixon, Li, Sorensen, Thain & Vasserman. Measuring and Mitigating Unintended Bias "
        "in Text Classification. AIES 2018."
    )
    description = "Prediction flips and probability changes when identity terms in the texts are swapped."
    needs = frozenset({"classifier", "task"})
    how_to_read = (
        "We take the evaluation texts, change only an identity word (she → he, Emily → Lakisha, Christian → "
        "Muslim …) and check whether the model's decision changes. The flip rate is the share of such edits that "
        "change the decision; ideally 0%. |Δp| is how much the probability of the positive outcome moves. Each "
        "figure has a 95% confidence interval; a category with few matching texts (small n) is weak evidence. The "
        "direction table shows which swap raises or lowers the probability, i.e. which group is favoured."
    )

    # Groups: the swap categories (BASE_CATEGORIES, or the configured `categories`).
    metrics = declare({name: frozenset(category.name for category in BASE_CATEGORIES)
               for name in ("flip_rate", "mean_abs_delta_p", "max_abs_delta_p", "ctf_gap")})

    class Config(ProbeConfig):
        split: str = "test"  # the task split to perturb
        dataset: str | None = None  # or texts from a catalog dataset / file
        text_column: str = "text"
        categories: list[str] | None = None  # default: all built-in categories
        positive_label: LabelIndex | None = None  # default: the task's positive label
        max_examples: Count | None = 4000  # a seeded subset of the texts
        batch_size: Count = 64
        n_bootstrap: BootstrapResamples = 1000
        confidence: Confidence = 0.95
        n_examples: ShownCount = 5


    def declared_metrics(self):
        if self.config.categories is None:
            return self.metrics
        return {name: frozenset(self.config.categories) for name in self.metrics}

    def run(self, ctx: ProbeContext):
        config = self.config
        ids, texts = self._texts(ctx)
        positive = config.positive_label if config.positive_label is not None else ctx.task.positive_label
        if not 0 <= positive < ctx.subject.num_labels:
            raise ProbeInputError(f"counterfactual: positive_label {positive} is not a class of the "
                                  f"{ctx.subject.num_labels}-class classifier")
        categories = selected_categories(config.categories, where=self.name)
        swaps = []
        for category in categories:
            swapper = TermSwapper(category)
            for index, text in enumerate(texts):
                for counterfactual in swapper.counterfactuals(text):
                    swaps.append((category.name, index, counterfactual))
        if not swaps:
            raise ProbeSkipped("no evaluation text mentions an identity term of the selected categories")
        ctx.progress(f"counterfactual: {len(swaps)} counterfactual texts")
        originals = sorted({index for _, index, _ in swaps})
        probabilities = ctx.subject.predict_proba([texts[index] for index in originals]
                                                  + [swap[2].text for swap in swaps], batch_size=config.batch_size)
        original_row = {index: row for row, index in enumerate(originals)}
        swapped = probabilities[len(originals):]
        outcomes = []
        for category in categories:
            rows = [row for row, swap in enumerate(swaps) if swap[0] == category.name]
            text_index = np.array([swaps[row][1] for row in rows], dtype=int)
            base = probabilities[[original_row[index] for index in text_index]] if rows else np.zeros((0, 1))
            moved = swapped[rows] if rows else np.zeros((0, 1))
            outcomes.append(PairOutcomes(
                category=category.name,
                text_index=text_index,
                counterfactual_texts=[swaps[row][2].text for row in rows],
                directions=[f"{swaps[row][2].source_value}→{swaps[row][2].target_value}" for row in rows],
                delta_p=(moved[:, positive] - base[:, positive]) if rows else np.zeros(0),
                flip=(moved.argmax(axis=1) != base.argmax(axis=1)) if rows else np.zeros(0, dtype=bool),
            ))
        return self._result(ctx, ids, texts, outcomes, probabilities, original_row, positive)

    def _texts(self, ctx: ProbeContext) -> tuple[list[str], list[str]]:
        config = self.config
        if config.dataset is not None:
            rows = dataset_rows(ctx.load_dataset(config.dataset), required=(config.text_column,), where=config.dataset)
            ids, texts = [str(index) for index in range(len(rows))], [str(row[config.text_column]) for row in rows]
        else:
            examples = ctx.task.split(config.split)
            if not examples:
                raise ProbeSkipped(f"the task has no {config.split!r} examples to perturb")
            ids, texts = [example.id for example in examples], [example.text for example in examples]
        if config.max_examples is not None and config.max_examples < len(texts):
            chosen = np.sort(ctx.rng.choice(len(texts), size=config.max_examples, replace=False))
            ids, texts = [ids[index] for index in chosen], [texts[index] for index in chosen]
        return ids, texts

    def _result(self, ctx, ids, texts, outcomes: list[PairOutcomes], probabilities, original_row, positive):
        config = self.config
        metrics, flip_metrics, findings, direction_rows = [], [], [], []
        for outcome in outcomes:
            if outcome.delta_p.size == 0:
                reason = f"no evaluation text mentions a {outcome.category} term"
                for name in ("flip_rate", "mean_abs_delta_p", "max_abs_delta_p", "ctf_gap"):
                    metrics.append(Metric(name=name, value=None, group=outcome.category, n=0, higher_is_better=False,
                                          undefined_reason=reason))
                continue
            absolute = np.abs(outcome.delta_p)
            options = {"rng": ctx.rng, "n_resamples": config.n_bootstrap, "confidence": config.confidence}
            flip = cluster_bootstrap_ratio(outcome.flip.astype(float), outcome.text_index, **options)
            mean_abs = cluster_bootstrap_ratio(absolute, outcome.text_index, **options)
            gap_per_text = per_text_means(absolute, outcome.text_index)
            chosen = bootstrap_indices(len(gap_per_text), config.n_bootstrap, ctx.rng)
            gap_low, gap_high = percentile_interval(gap_per_text[chosen].mean(axis=1), confidence=config.confidence)
            pairs, texts_n = int(outcome.delta_p.size), len(gap_per_text)
            flip_metric = Metric(name="flip_rate", value=flip[0], ci_low=flip[1], ci_high=flip[2], n=pairs,
                                 group=outcome.category, higher_is_better=False,
                                 description=f"share of {pairs} counterfactual pairs ({texts_n} texts) whose predicted class changes")
            flip_metrics.append(flip_metric)
            metrics += [
                flip_metric,
                Metric(name="mean_abs_delta_p", value=mean_abs[0], ci_low=mean_abs[1], ci_high=mean_abs[2], n=pairs,
                       group=outcome.category, higher_is_better=False,
                       description="mean |p(x') − p(x)| of the positive label"),
                Metric(name="max_abs_delta_p", value=float(absolute.max()), n=pairs, group=outcome.category,
                       higher_is_better=False, description="largest |p(x') − p(x)|"),
                Metric(name="ctf_gap", value=float(gap_per_text.mean()), ci_low=float(gap_low),
                       ci_high=float(gap_high), n=texts_n, group=outcome.category, higher_is_better=False,
                       description="counterfactual token fairness gap (Garg et al. 2019)"),
            ]
            findings.append(self._finding(flip_metric, mean_abs[0]))
            for direction in sorted(set(outcome.directions)):
                mask = np.array([value == direction for value in outcome.directions])
                direction_rows.append([outcome.category, direction, int(mask.sum()),
                                       round(float(outcome.delta_p[mask].mean()), 4),
                                       round(float(outcome.flip[mask].mean()), 4)])
        if not flip_metrics:
            raise ProbeSkipped("no evaluation text mentions an identity term of the selected categories")
        return self.new_result(
            metrics=metrics,
            tables=[
                Table(name="by_category", title="Counterfactual swaps by category",
                      columns=["category", "pairs", "flip rate", "CI low", "CI high", "mean |Δp|", "max |Δp|", "CTF gap"],
                      rows=self._category_rows(metrics)),
                Table(name="by_direction", title="Mean signed change of p(positive) per swap direction",
                      columns=["category", "swap", "pairs", "mean Δp", "flip rate"], rows=direction_rows,
                      caption="Δp > 0: the swap towards the second group raises the probability of the positive label."),
            ],
            figures=[bar_figure("flip_rate_by_category", "Prediction flip rate by identity category", flip_metrics,
                                reference=0.0, y_label="flip rate", caption="0 = no decision depends on the identity term.")],
            examples=self._examples(ids, texts, outcomes, probabilities, original_row, positive),
            findings=findings,
            per_example=self._per_example(ids, outcomes),
        )

    @staticmethod
    def _finding(metric: Metric, mean_abs: float) -> Finding:
        level = "pass" if metric.value <= 0.01 else ("warn" if metric.value <= 0.05 else "fail")
        return Finding(level=level, metric="flip_rate",
                       message=f"{metric.group}: swapping identity terms changes the decision in {100 * metric.value:.1f}% "
                               f"of {metric.n} edited texts (95% CI {100 * metric.ci_low:.1f}–{100 * metric.ci_high:.1f}%); "
                               f"mean |Δp| = {mean_abs:.3f}.")

    @staticmethod
    def _category_rows(metrics: list[Metric]) -> list[list]:
        by_category: dict[str, dict[str, Metric]] = {}
        for metric in metrics:
            by_category.setdefault(metric.group, {})[metric.name] = metric
        rows = []
        for category, parts in by_category.items():
            if parts["flip_rate"].value is None:
                rows.append([category, 0, None, None, None, None, None, None])
                continue
            rows.append([category, parts["flip_rate"].n] + [
                round(value, 4) for value in (parts["flip_rate"].value, parts["flip_rate"].ci_low,
                                              parts["flip_rate"].ci_high, parts["mean_abs_delta_p"].value,
                                              parts["max_abs_delta_p"].value, parts["ctf_gap"].value)])
        return rows

    def _examples(self, ids, texts, outcomes, probabilities, original_row, positive) -> list[Example]:
        candidates = [(abs(float(delta)), outcome, row) for outcome in outcomes
                      for row, delta in enumerate(outcome.delta_p)]
        candidates.sort(key=lambda item: -item[0])
        examples = []
        for _, outcome, row in candidates[: self.config.n_examples]:
            index = int(outcome.text_index[row])
            before = float(probabilities[original_row[index], positive])
            examples.append(Example(
                title=f"{outcome.category} {outcome.directions[row]} (text {ids[index]})",
                fields={"original": texts[index], "counterfactual": outcome.counterfactual_texts[row],
                        "p(positive) original": round(before, 4),
                        "p(positive) counterfactual": round(before + float(outcome.delta_p[row]), 4),
                        "decision flipped": bool(outcome.flip[row])},
            ))
        return examples

    @staticmethod
    def _per_example(ids, outcomes: list[PairOutcomes]) -> dict[str, list]:
        example_ids, flips, deltas = [], [], []
        for outcome in outcomes:
            for row, direction in enumerate(outcome.directions):
                example_ids.append(f"{ids[int(outcome.text_index[row])]}|{outcome.category}|{direction}")
                flips.append(bool(outcome.flip[row]))
                deltas.append(round(float(outcome.delta_p[row]), 6))
        return {"example_ids": example_ids, "flip": flips, "delta_p": deltas}
