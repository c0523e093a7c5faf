"""The ``faithfulness`` probe: do the attributions point at the tokens the model actually relies on?

ERASER's erasure metrics (DeYoung et al., ACL 2020, "ERASER: A Benchmark to Evaluate Rationalized NLP Models"),
for every attribution method and for a random ranking of the same tokens:

- **comprehensiveness** at k%: p(y | x) − p(y | x without its top-k% tokens) — higher is better (removing what the
  explanation calls important should hurt the prediction);
- **sufficiency** at k%: p(y | x) − p(y | only the top-k% tokens) — lower is better (the important tokens alone
  should keep the prediction);
- **AOPC**: each averaged over k ∈ {1, 5, 10, 20, 50}% (area over the perturbation curve).

y is the class the model predicts for the full text; p its softmax probability. The top-k% are ceil(k% × n) of the
n non-special tokens (at least one), ranked by attribution (most positive first). Removal (``removal``):
"delete" (default, as in ERASER) drops the tokens and closes the gap; "replace" puts the IG baseline token in
their place, keeping positions. [CLS]/[SEP] always stay.

A method is compared with the random ranking by a paired bootstrap over examples: if its comprehensiveness gain
over random is not above zero (95% CI), it is flagged (warn; fail when it is significantly *worse* than random).

Limits: erasing tokens produces out-of-distribution inputs (Hooker et al., NeurIPS 2019), so both the method and
the random baseline are measured on the same kind of broken text — only the comparison is meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from audit.results import Figure, Finding, Metric, ProbeResult, Table
from probes.attribution.adapter import AttentionUnavailableError, AttributionModel
from probes.attribution.common import AttributionConfig, attribution_model, method_label, select_texts
from probes.attribution.methods import METHODS, TokenAttribution, compute_attributions
from probes.base import Probe, ProbeContext, declare, register
from probes.stats import bootstrap_mean_ci, paired_bootstrap_diff

MethodName = Literal["integrated_gradients", "gradient_x_input", "attention_rollout"]
Removal = Literal["delete", "replace"]
DEFAULT_BINS = (1, 5, 10, 20, 50)


def importance_ranking(attribution: TokenAttribution) -> np.ndarray:
    """Content-token positions, most important (most positive score) first; ties keep text order."""
    positions = attribution.content_positions
    return positions[np.argsort(-attribution.scores[positions], kind="stable")]


def random_ranking(attribution: TokenAttribution, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(attribution.content_positions)


def top_count(percent: float, n_content: int) -> int:
    """How many tokens "the top k%" of n tokens is: ceil(k% × n), at least 1 and at most n."""
    return int(min(n_content, max(1, math.ceil(percent / 100.0 * n_content - 1e-9))))


def _erase(ids: list[int], removed: set[int], removal: Removal, baseline_id: int) -> list[int]:
    if removal == "delete":
        return [token for position, token in enumerate(ids) if position not in removed]
    return [baseline_id if position in removed else token for position, token in enumerate(ids)]


def _target_probabilities(
    model: AttributionModel, rows: list[list[int]], targets: list[int], batch_size: int
) -> np.ndarray:
    """p(target | row) for every row, in batches of similar length."""
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))
    out = np.empty(len(rows))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = model.pad([rows[i] for i in indices])
        probabilities = torch.softmax(model.logits(batch).double(), dim=-1).cpu().numpy()  # (B, C)
        for row, index in enumerate(indices):
            out[index] = probabilities[row, targets[index]]
    return out


def erasure_curves(
    model: AttributionModel,
    attributions: Sequence[TokenAttribution],
    rankings: Sequence[np.ndarray],
    *,
    bins: Sequence[float] = DEFAULT_BINS,
    removal: Removal = "delete",
    baseline_id: int,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """(comprehensiveness (N, K), sufficiency (N, K)) for one ranking of content tokens per example."""
    rows: list[list[int]] = []
    targets: list[int] = []
    for attribution, ranking in zip(attributions, rankings):
        content = {int(p) for p in attribution.content_positions}
        rows.append(list(attribution.input_ids))
        targets.append(attribution.target)
        for percent in bins:
            top = {int(p) for p in ranking[: top_count(percent, len(content))]}
            rows.append(_erase(attribution.input_ids, top, removal, baseline_id))  # comprehensiveness
            rows.append(_erase(attribution.input_ids, content - top, removal, baseline_id))  # sufficiency
            targets += [attribution.target, attribution.target]
    probabilities = _target_probabilities(model, rows, targets, batch_size)
    stride = 1 + 2 * len(bins)
    per_example = probabilities.reshape(len(attributions), stride)  # (N, 1 + 2K)
    full = per_example[:, :1]
    comprehensiveness = full - per_example[:, 1::2]  # (N, K)
    sufficiency = full - per_example[:, 2::2]  # (N, K)
    return comprehensiveness, sufficiency


@register
class FaithfulnessProbe(Probe):
    """ERASER comprehensiveness / sufficiency / AOPC of each attribution method against a random ranking."""

    name = "faithfulness"
    version = "1"
    family = "attribution"
    citation = (
        "DeYoung et al., 'ERASER: A Benchmark to Evaluate Rationalized NLP Models', ACL 2020"
    )
    description = "Whether explanations are faithful: erase the top-attributed tokens and compare with random"
    needs = frozenset({"classifier"})
    how_to_read = (
        "For each explanation method, the words it calls most important are removed (comprehensiveness: how much "
        "the model's confidence drops — higher is better) or kept alone (sufficiency: how much confidence is lost — "
        "lower is better). The same is done with randomly chosen words. A method whose important words matter no "
        "more than random ones does not explain this model and should not be relied on."
    )

    # Group: the attribution method ("random": the random-ranking reference).
    metrics = declare({"aopc_comprehensiveness": frozenset({*METHODS, "random"}),
               "aopc_sufficiency": frozenset({*METHODS, "random"}),
               "comprehensiveness_gain_over_random": frozenset(METHODS),
               "sufficiency_gain_over_random": frozenset(METHODS)})

    class Config(AttributionConfig):
        methods: list[MethodName] = Field(default_factory=lambda: list(METHODS))
        bins: list[float] = Field(default_factory=lambda: list(DEFAULT_BINS))
        removal: Removal = "delete"
        n_random: int = Field(3, ge=1, description="random rankings averaged per example")

        @field_validator("bins")
        @classmethod
        def _check_bins(cls, bins: list[float]) -> list[float]:
            if not bins or any(not 0 < k <= 100 for k in bins):
                raise ValueError("bins must be a non-empty list of percentages in (0, 100]")
            return sorted(bins)


    def declared_metrics(self):
        methods = frozenset(self.config.methods)
        return {name: methods | ({"random"} if name.startswith("aopc_") else set()) for name in self.metrics}

    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        model = attribution_model(ctx)
        selection = select_texts(ctx, config, model)
        warnings = list(selection.warnings)
        baseline_id = model.baseline_token_id(config.baseline_token)
        curve = {"bins": config.bins, "removal": config.removal, "baseline_id": baseline_id, "batch_size": 64}

        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        reference: list[TokenAttribution] | None = None
        for method in config.methods:
            ctx.progress(f"faithfulness: {method_label(method)}")
            try:
                attributions = compute_attributions(
                    model, selection.texts, method, n_steps=config.n_steps, baseline_token=config.baseline_token,
                    batch_size=config.batch_size, max_sequences=config.max_sequences,
                )
            except AttentionUnavailableError as error:
                warnings.append(f"{method_label(method)} was not evaluated: {error}")
                continue
            reference = reference or attributions
            curves[method] = erasure_curves(model, attributions, [importance_ranking(a) for a in attributions], **curve)
        if reference is None:
            raise AttentionUnavailableError("no attribution method could be computed")

        draws = [
            erasure_curves(model, reference, [random_ranking(a, ctx.rng) for a in reference], **curve)
            for _ in range(config.n_random)
        ]
        random_curves = (np.mean([d[0] for d in draws], axis=0), np.mean([d[1] for d in draws], axis=0))

        metrics, findings = [], []
        for name, (comp, suff) in [*curves.items(), ("random", random_curves)]:
            metrics += self._aopc_metrics(ctx, name, comp, suff)
        for method, (comp, suff) in curves.items():
            method_metrics, finding = self._versus_random(ctx, method, comp, suff, random_curves)
            metrics += method_metrics
            findings.append(finding)

        all_curves = {**curves, "random": random_curves}
        per_example: dict[str, list] = {"example_ids": list(selection.ids)}
        for name, (comp, suff) in all_curves.items():
            per_example[f"{name}_aopc_comprehensiveness"] = [float(v) for v in comp.mean(axis=1)]
            per_example[f"{name}_aopc_sufficiency"] = [float(v) for v in suff.mean(axis=1)]
        return self.new_result(
            metrics=metrics,
            tables=[self._curve_table(all_curves)],
            figures=[self._curve_figure(ctx, all_curves, 0), self._curve_figure(ctx, all_curves, 1)],
            findings=findings,
            warnings=warnings,
            per_example=per_example,
        )

    def _aopc_metrics(self, ctx, name: str, comp: np.ndarray, suff: np.ndarray) -> list[Metric]:
        out = []
        for metric_name, values, better in (
            ("aopc_comprehensiveness", comp.mean(axis=1), True),
            ("aopc_sufficiency", suff.mean(axis=1), False),
        ):
            interval = bootstrap_mean_ci(values, rng=ctx.rng, n_resamples=self.config.n_bootstrap)
            out.append(Metric(
                name=metric_name, value=interval.value, ci_low=interval.low, ci_high=interval.high,
                higher_is_better=better, n=int(values.size), group=name,
                description=f"{metric_name.split('_')[1]} averaged over k = {self.config.bins}% "
                f"({'random ranking' if name == 'random' else method_label(name)})",
            ))
        return out

    def _versus_random(self, ctx, method, comp, suff, random_curves) -> tuple[list[Metric], Finding]:
        comp_gain, comp_p = paired_bootstrap_diff(
            comp.mean(axis=1), random_curves[0].mean(axis=1), rng=ctx.rng, n_resamples=max(2000, self.config.n_bootstrap)
        )
        suff_gain, suff_p = paired_bootstrap_diff(
            random_curves[1].mean(axis=1), suff.mean(axis=1), rng=ctx.rng, n_resamples=max(2000, self.config.n_bootstrap)
        )
        metrics = [
            Metric(
                name="comprehensiveness_gain_over_random", value=comp_gain.value, ci_low=comp_gain.low,
                ci_high=comp_gain.high, higher_is_better=True, n=int(comp.shape[0]), group=method, p_value=comp_p,
                description="AOPC comprehensiveness of the method minus that of a random ranking (paired)",
            ),
            Metric(
                name="sufficiency_gain_over_random", value=suff_gain.value, ci_low=suff_gain.low,
                ci_high=suff_gain.high, higher_is_better=True, n=int(suff.shape[0]), group=method, p_value=suff_p,
                description="AOPC sufficiency of a random ranking minus that of the method (paired; > 0 is better)",
            ),
        ]
        numbers = f"{comp_gain.value:+.3f} (95% CI {comp_gain.low:+.3f} to {comp_gain.high:+.3f})"
        label = method_label(method)
        if comp_gain.low > 0:
            finding = Finding(level="pass", metric="comprehensiveness_gain_over_random",
                              message=f"{label} beats a random ranking: removing its top tokens lowers the model's "
                              f"confidence more than removing random ones, by {numbers}.")
        elif comp_gain.high < 0:
            finding = Finding(level="fail", metric="comprehensiveness_gain_over_random",
                              message=f"{label} is worse than a random ranking at finding the tokens the model relies "
                              f"on ({numbers}); do not use its explanations for this model.")
        else:
            finding = Finding(level="warn", metric="comprehensiveness_gain_over_random",
                              message=f"{label} does not beat a random ranking of tokens ({numbers}); its "
                              "explanations may not reflect what the model relies on.")
        return metrics, finding

    def _curve_table(self, curves) -> Table:
        rows = []
        for name, (comp, suff) in curves.items():
            for index, percent in enumerate(self.config.bins):
                rows.append([name, percent, round(float(comp[:, index].mean()), 5), round(float(suff[:, index].mean()), 5)])
        return Table(
            name="erasure_curves", title="Comprehensiveness and sufficiency by share of tokens (k %)",
            columns=["method", "k %", "comprehensiveness (higher better)", "sufficiency (lower better)"],
            rows=rows, caption=f"Removal: {self.config.removal}; probabilities of the predicted class.",
        )

    def _curve_figure(self, ctx, curves, which: int) -> Figure:
        title = ("Comprehensiveness", "Sufficiency")[which]
        series = []
        for name, pair in curves.items():
            values = pair[which]  # (N, K)
            lows, highs = [], []
            for column in values.T:
                interval = bootstrap_mean_ci(column, rng=ctx.rng, n_resamples=self.config.n_bootstrap)
                lows.append(interval.low)
                highs.append(interval.high)
            series.append({
                "label": "random" if name == "random" else method_label(name),
                "x": [float(k) for k in self.config.bins], "y": [float(v) for v in values.mean(axis=0)],
                "ci_low": lows, "ci_high": highs,
            })
        return Figure(
            name=title.lower(), title=f"{title} by share of tokens (k %)", kind="line", data={"series": series},
            x_label="k (% of tokens)", y_label=f"{title.lower()} (probability)",
            caption=("Higher is better." if which == 0 else "Lower is better.")
            + " Shaded: 95% bootstrap intervals over examples.",
        )
