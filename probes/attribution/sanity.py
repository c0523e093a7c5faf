"""The ``sanity`` probe: do the explanations depend on what the model learnt? (model-parameter randomisation)

Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, cascading randomisation: the classifier's
parameters are randomised stage by stage from the top — the classification head (and anything outside the
transformer blocks and embeddings), then block L−1, …, block 0, then the embeddings — each stage keeping the
earlier ones randomised. After each stage the attributions of the same texts (explaining the class the *original*
model predicted) are compared with the original ones by Spearman rank correlation over the non-special tokens.

An explanation method that reflects the model must change when the model is destroyed: the correlation should
fall towards zero (lower is better after randomisation). The method passes when the mean correlation after full
randomisation is below ``max_final_correlation`` (default 0.5) with its 95% CI upper bound below it too (warn when
only the point estimate is; fail otherwise). Randomisation: each parameter tensor is replaced by Gaussian noise with
that tensor's own mean and standard deviation — learnt structure is gone, activation scales stay sensible. It is
done on a deep copy; the audited model is never modified.

Limits: signed ranks are compared by default (``absolute_scores`` compares |scores|, which Adebayo et al. show
can stay correlated through input structure alone, e.g. for gradient × input).
"""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from scipy import stats as scipy_stats
from torch import nn

from audit.results import Figure, Finding, Metric, ProbeResult, Table
from probes.attribution.adapter import AttentionUnavailableError, AttributionModel, classifier_module
from probes.attribution.common import AttributionConfig, method_label, select_texts
from probes.attribution.methods import METHODS, TokenAttribution, compute_attributions
from probes.base import Probe, ProbeContext, ProbeSkipped, declare, register
from probes.stats import bootstrap_mean_ci

MethodName = Literal["integrated_gradients", "gradient_x_input", "attention_rollout"]


def randomization_stages(model: nn.Module) -> list[tuple[str, list[str]]]:
    """Parameter names per cascading stage, top first: [("head", …), ("block L-1", …), …, ("embeddings", …)].

    Blocks are the largest ``nn.ModuleList`` whose length is ``config.num_hidden_layers``; embeddings are the
    parameters under the module that holds the input embedding (or whose name mentions "embed"); the head stage is
    everything else (classifier, pooler, final norm).
    """
    names = [name for name, _ in model.named_parameters()]
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    layer_lists = [
        name for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and name and (n_layers is None or len(module) == n_layers)
    ]
    if not layer_lists:
        raise ProbeSkipped("cannot find the model's transformer blocks (no ModuleList of num_hidden_layers)")
    blocks = max(layer_lists, key=lambda name: sum(p.numel() for p in model.get_submodule(name).parameters()))
    n_blocks = len(model.get_submodule(blocks))

    embedding = model.get_input_embeddings()
    embedding_name = next(name for name, module in model.named_modules() if module is embedding)
    parent = embedding_name.rsplit(".", 1)[0] if "." in embedding_name else ""
    embedding_prefix = embedding_name if (not parent or blocks.startswith(parent + ".")) else parent

    def in_block(name: str, index: int) -> bool:
        return name.startswith(f"{blocks}.{index}.")

    def is_embedding(name: str) -> bool:
        return name.startswith(embedding_prefix + ".") or ("embed" in name and not name.startswith(blocks + "."))

    stages: list[tuple[str, list[str]]] = []
    head = [n for n in names if not is_embedding(n) and not n.startswith(blocks + ".")]
    stages.append(("head", head))
    for index in reversed(range(n_blocks)):
        stages.append((f"block {index}", [n for n in names if in_block(n, index)]))
    stages.append(("embeddings", [n for n in names if is_embedding(n)]))
    return [(stage, params) for stage, params in stages if params]


@torch.no_grad()
def randomize_parameters(model: nn.Module, names: list[str], generator: torch.Generator) -> None:
    """Replace each named parameter by Gaussian noise with the tensor's own mean and std (in place, on a copy)."""
    parameters = dict(model.named_parameters())
    for name in names:
        parameter = parameters[name]
        values = parameter.detach().double()
        std = float(values.std()) if values.numel() > 1 else 0.0
        noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
        parameter.copy_((noise * std + float(values.mean())).to(parameter.dtype).to(parameter.device))


def rank_correlation(original: TokenAttribution, randomized: TokenAttribution, *, absolute: bool) -> float:
    """Spearman correlation over content tokens; NaN when fewer than two tokens or a constant score vector."""
    positions = original.content_positions
    if positions.size < 2:
        return float("nan")
    a, b = original.scores[positions], randomized.scores[positions]
    if absolute:
        a, b = np.abs(a), np.abs(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(scipy_stats.spearmanr(a, b).statistic)


def cascading_correlations(
    module: nn.Module,
    tokenizer,
    texts: list[str],
    method: str,
    *,
    generator: torch.Generator,
    max_length: int | None = None,
    absolute: bool = False,
    **attribution_settings,
) -> tuple[list[str], np.ndarray]:
    """(stage names, correlations (n_stages, N)) of cascading randomisation for one method, on a deep copy."""
    original_model = AttributionModel.from_model(module, tokenizer, max_length=max_length)
    original = compute_attributions(original_model, texts, method, **attribution_settings)
    targets = [a.target for a in original]
    randomized = copy.deepcopy(module).eval()
    stage_names, rows = [], []
    for stage, names in randomization_stages(randomized):
        randomize_parameters(randomized, names, generator)
        copy_model = AttributionModel.from_model(randomized, tokenizer, max_length=max_length)
        attributions = compute_attributions(copy_model, texts, method, targets=targets, **attribution_settings)
        stage_names.append(stage)
        rows.append([rank_correlation(o, r, absolute=absolute) for o, r in zip(original, attributions)])
    return stage_names, np.array(rows, dtype=float)


@register
class SanityProbe(Probe):
    """Adebayo et al.'s cascading model-parameter randomisation test for each attribution method."""

    name = "sanity"
    version = "1"
    family = "attribution"
    citation = "Adebayo et al., 'Sanity Checks for Saliency Maps', NeurIPS 2018"
    description = "Whether explanations change when the model's learnt weights are destroyed (they should)"
    needs = frozenset({"classifier"})
    how_to_read = (
        "The model's learnt weights are replaced by random ones, layer by layer from the top, and the explanations "
        "are recomputed. The curve shows how similar they stay to the original ones (1 = identical ranking of words, "
        "0 = unrelated). A trustworthy method's curve falls towards 0: its explanations describe the trained model. "
        "If the curve stays high, the method mostly reflects the input text itself, not what the model learnt."
    )

    metrics = declare({"final_rank_correlation": frozenset(METHODS)})  # group: the attribution method

    class Config(AttributionConfig):
        methods: list[MethodName] = Field(default_factory=lambda: ["integrated_gradients", "gradient_x_input"])
        n_examples: int = Field(32, ge=1)
        absolute_scores: bool = False
        max_final_correlation: float = Field(0.5, gt=-1, lt=1)


    def declared_metrics(self):
        return {"final_rank_correlation": frozenset(self.config.methods)}

    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        module = classifier_module(ctx.subject)
        if module is None:
            raise ProbeSkipped("the classifier's torch module is not reachable, so it cannot be randomised")
        model = AttributionModel.from_subject(ctx.subject)
        selection = select_texts(ctx, config, model)
        warnings = list(selection.warnings)
        settings = {"n_steps": config.n_steps, "baseline_token": config.baseline_token,
                    "batch_size": config.batch_size, "max_sequences": config.max_sequences}
        generator = ctx.torch_generator()

        metrics, findings, series, rows = [], [], [], []
        stage_names: list[str] = []
        per_example: dict[str, list] = {"example_ids": list(selection.ids)}
        for method in config.methods:
            ctx.progress(f"sanity: cascading randomisation for {method_label(method)}")
            try:
                stage_names, correlations = cascading_correlations(
                    module, ctx.subject.tokenizer, selection.texts, method, generator=generator,
                    max_length=model.max_length, absolute=config.absolute_scores, **settings,
                )
            except AttentionUnavailableError as error:
                warnings.append(f"{method_label(method)} was not checked: {error}")
                continue
            means, lows, highs = [1.0], [1.0], [1.0]
            for stage, values in zip(stage_names, correlations):
                finite = values[~np.isnan(values)]
                if finite.size == 0:
                    means.append(None), lows.append(None), highs.append(None)
                    continue
                interval = bootstrap_mean_ci(finite, rng=ctx.rng, n_resamples=config.n_bootstrap)
                means.append(interval.value), lows.append(interval.low), highs.append(interval.high)
                rows.append([method, stage, round(interval.value, 4), round(interval.low, 4),
                             round(interval.high, 4), int(finite.size)])
            metrics += self._final_metric(method, means[-1], lows[-1], highs[-1], correlations[-1])
            findings.append(self._finding(method, means[-1], highs[-1]))
            series.append({"label": method_label(method), "x": list(range(len(means))), "y": means,
                           "ci_low": lows, "ci_high": highs})
            per_example[f"{method}_final_rank_correlation"] = [
                None if np.isnan(v) else float(v) for v in correlations[-1]
            ]
        if not series:
            raise ProbeSkipped("no attribution method could be computed on this model")
        stage_axis = ["original", *stage_names]
        return self.new_result(
            metrics=metrics,
            tables=[Table(
                name="randomisation_stages", title="Rank correlation with the original explanation per stage",
                columns=["method", "randomised up to", "mean Spearman", "CI low", "CI high", "n"], rows=rows,
                caption="Stages are cumulative, from the top of the model down.",
            )],
            figures=[Figure(
                name="cascading_randomisation", title="Cascading randomisation: similarity to the original explanation",
                kind="line", data={"series": series, "reference": config.max_final_correlation},
                x_label="stage (0 = original; " + ", ".join(f"{i} = {s}" for i, s in enumerate(stage_axis) if i) + ")",
                y_label="Spearman rank correlation",
                caption="Should fall towards 0 as more of the model is randomised; dashed: the pass threshold.",
            )],
            findings=findings,
            warnings=warnings,
            per_example=per_example,
        )

    def _final_metric(self, method, mean, low, high, values) -> list[Metric]:
        n = int(np.sum(~np.isnan(values)))
        if mean is None:
            return [Metric(name="final_rank_correlation", value=None, group=method, n=0,
                           undefined_reason="no example had two or more tokens with distinct scores")]
        return [Metric(
            name="final_rank_correlation", value=mean, ci_low=low, ci_high=high, higher_is_better=False, n=n,
            group=method,
            description="mean Spearman correlation between original and fully randomised-model attributions",
        )]

    def _finding(self, method, mean, high) -> Finding:
        label, bound = method_label(method), self.config.max_final_correlation
        if mean is None:
            return Finding(level="info", metric="final_rank_correlation",
                           message=f"{label}: the sanity check is undefined (no example with varying scores).")
        if high < bound:
            return Finding(level="pass", metric="final_rank_correlation",
                           message=f"{label} passes the randomisation sanity check: after randomising the whole "
                           f"model its explanations keep a rank correlation of only {mean:.2f} (CI up to {high:.2f}).")
        level = "warn" if mean < bound else "fail"
        return Finding(level=level, metric="final_rank_correlation",
                       message=f"{label} explanations stay similar after the model is randomised (rank correlation "
                       f"{mean:.2f}, CI up to {high:.2f}; threshold {bound}); they may reflect the input more than the "
                       "trained model.")
