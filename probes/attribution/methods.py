"""Token attribution methods shared by the attribution probes (attributions, faithfulness, sanity, identity).

- **Integrated Gradients** (Sundararajan, Taly & Yan, ICML 2017, "Axiomatic Attribution for Deep Networks"),
  through captum's ``LayerIntegratedGradients`` on the token-embedding layer. The baseline replaces every
  non-special token by [PAD] (default) or [MASK]; [CLS]/[SEP] and padding are kept, so they receive exactly zero
  attribution. Completeness: the attributions of an example sum to f(x) − f(baseline); the gap is the
  **convergence delta**, reported per example (smaller |delta| is better: the Riemann/Gauss–Legendre
  approximation of the path integral has converged).
- **Gradient × input** (Shrikumar et al., 2016; Kindermans et al., 2016): gradient of the target logit with respect
  to the token embedding times the embedding, summed over the hidden dimension. One backward pass; no
  completeness guarantee.
- **Attention rollout** (Abnar & Zuidema, ACL 2020, "Quantifying Attention Flow in Transformers"): per layer the
  head-averaged attention plus the identity (the residual stream), rows renormalised, multiplied from the first
  layer up; the token score is the row of the token the classifier reads ([CLS]; a decoder's last real token). Non-negative and class-agnostic.

The **target** is the class the model predicts for the example (its logit is explained), unless ``targets`` are
given (the sanity check explains the original model's prediction on the randomised copies). Examples are
batched: a batch is right-padded and its attention mask is passed through, so padding does not change any
example's attributions (padded positions have identical input and baseline and are masked out as keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

from audit.errors import InputError
from audit.pooling import last_real_index
from probes.attribution.adapter import AttributionModel, BaselineToken, EncodedBatch, WordAlignment

Method = Literal["integrated_gradients", "gradient_x_input", "attention_rollout"]
METHODS: tuple[Method, ...] = ("integrated_gradients", "gradient_x_input", "attention_rollout")
METHOD_LABELS = {
    "integrated_gradients": "Integrated Gradients",
    "gradient_x_input": "Gradient × input",
    "attention_rollout": "Attention rollout",
}


class AttributionSettingsError(InputError):
    """An attribution setting is out of range (e.g. n_steps < 1)."""


@dataclass
class TokenAttribution:
    """One example's token attributions (special tokens and padding have score 0 and ``special`` True)."""

    text: str
    input_ids: list[int]
    tokens: list[str]
    special: np.ndarray  # (T,) bool
    scores: np.ndarray  # (T,) float64; > 0 supports the target class (rollout: >= 0, unsigned)
    target: int
    target_logit: float
    baseline_logit: float | None = None  # IG only: f(baseline) for the target
    delta: float | None = None  # IG only: sum(scores) - (f(x) - f(baseline))

    @property
    def content_positions(self) -> np.ndarray:
        return np.flatnonzero(~self.special)

    def word_scores(self, alignment: WordAlignment) -> list[tuple[str, float]]:
        """Token scores summed over each word's sub-tokens (sums keep completeness); truncated words dropped."""
        words = []
        for word, positions in alignment:
            inside = [p for p in positions if 0 <= p < len(self.scores)]
            if inside:
                words.append((word, float(self.scores[inside].sum())))
        return words


def validate_steps(n_steps: int) -> None:
    if not isinstance(n_steps, int) or n_steps < 1:
        raise AttributionSettingsError(f"n_steps must be an integer >= 1 (got {n_steps!r}); the default is 50")


def _chunks(model: AttributionModel, texts: Sequence[str], batch_size: int):
    """Batches of similar length (less padding), yielding (original indices, ids rows, padded batch)."""
    if batch_size < 1:
        raise AttributionSettingsError(f"batch_size must be >= 1 (got {batch_size})")
    rows = model.token_ids(list(texts))
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))  # stable, deterministic
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        chunk = [rows[i] for i in indices]
        yield indices, chunk, model.pad(chunk)


def _targets(model: AttributionModel, batch: EncodedBatch, indices, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, C), target class per row): the predicted class unless targets are given."""
    logits = model.logits(batch)
    if targets is None:
        chosen = logits.argmax(dim=-1)
    else:
        chosen = torch.tensor([int(targets[i]) for i in indices], device=logits.device)
    return logits, chosen


def _package(model, texts, indices, rows, batch, token_scores, logits, chosen, **extra) -> list[tuple[int, TokenAttribution]]:
    scores = token_scores.detach().double().cpu().numpy()  # (B, T)
    special = batch.special.cpu().numpy()
    target_logits = logits.gather(1, chosen[:, None])[:, 0].double().cpu().numpy()
    out = []
    for row, index in enumerate(indices):
        length = batch.lengths[row]
        row_scores = np.where(special[row, :length], 0.0, scores[row, :length])
        fields = {key: (None if value is None else float(value[row])) for key, value in extra.items()}
        out.append(
            (
                index,
                TokenAttribution(
                    text=texts[index],
                    input_ids=rows[row],
                    tokens=model.tokens(rows[row]),
                    special=special[row, :length].copy(),
                    scores=row_scores,
                    target=int(chosen[row]),
                    target_logit=float(target_logits[row]),
                    **fields,
                ),
            )
        )
    return out


# Sequences per forward/backward pass inside captum. On CPU a pass of 400 (8 texts × 50 steps) no longer fits the
# caches: IG over 32 scenario texts took 10.0 s against 7.5 s at 64 (2 cores), as long as one text at a time.
DEFAULT_MAX_SEQUENCES = 64


def internal_batch_size(batch_rows: int, n_steps: int, max_sequences: int) -> int:
    """Sequences per forward/backward pass inside captum: whole steps for every row, at most ``max_sequences``."""
    steps_per_pass = max(1, min(n_steps, max_sequences // max(1, batch_rows)))
    return steps_per_pass * batch_rows


def integrated_gradients(
    model: AttributionModel,
    texts: Sequence[str],
    *,
    n_steps: int = 50,
    baseline_token: BaselineToken = "pad",
    batch_size: int = 8,
    max_sequences: int = DEFAULT_MAX_SEQUENCES,
    targets: Sequence[int] | None = None,
) -> list[TokenAttribution]:
    """IG attributions of the target logit per token, with the completeness delta per example."""
    validate_steps(n_steps)
    baseline_id = model.baseline_token_id(baseline_token)
    explainer = LayerIntegratedGradients(model.forward, model.embedding_layer)
    results: list[tuple[int, TokenAttribution]] = []
    for indices, rows, batch in _chunks(model, texts, batch_size):
        logits, chosen = _targets(model, batch, indices, targets)
        baseline_ids = torch.where(batch.special, batch.input_ids, torch.full_like(batch.input_ids, baseline_id))
        with torch.no_grad():
            baseline_logits = model.forward(baseline_ids, batch.attention_mask).gather(1, chosen[:, None])[:, 0]
        attributions, delta = explainer.attribute(
            batch.input_ids,
            baselines=baseline_ids,
            target=chosen,
            additional_forward_args=(batch.attention_mask,),
            n_steps=n_steps,
            internal_batch_size=internal_batch_size(len(rows), n_steps, max_sequences),
            return_convergence_delta=True,
        )  # attributions (B, T, H), delta (B,)
        token_scores = attributions.sum(dim=-1)  # (B, T)
        results += _package(
            model, texts, indices, rows, batch, token_scores, logits, chosen,
            baseline_logit=baseline_logits.double().cpu().numpy(), delta=delta.double().cpu().numpy(),
        )
    return _in_input_order(results)


def _in_input_order(results: list[tuple[int, TokenAttribution]]) -> list[TokenAttribution]:
    """Batches are grouped by length; callers get attributions back in the order of their texts."""
    return [attribution for _, attribution in sorted(results, key=lambda pair: pair[0])]


def gradient_x_input(
    model: AttributionModel,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    targets: Sequence[int] | None = None,
) -> list[TokenAttribution]:
    """Gradient of the target logit w.r.t. each token embedding, dotted with that embedding."""
    explainer = LayerGradientXActivation(model.forward, model.embedding_layer)
    results: list[tuple[int, TokenAttribution]] = []
    for indices, rows, batch in _chunks(model, texts, batch_size):
        logits, chosen = _targets(model, batch, indices, targets)
        attributions = explainer.attribute(
            batch.input_ids, target=chosen, additional_forward_args=(batch.attention_mask,)
        )  # (B, T, H)
        results += _package(model, texts, indices, rows, batch, attributions.sum(dim=-1), logits, chosen)
    return _in_input_order(results)


def rollout_matrix(attentions: list[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
    """Attention rollout (B, T, T) from per-layer weights [(B, heads, T, T)] (Abnar & Zuidema, 2020, eq. 1).

    Each layer: A = 0.5 · mean_heads(W) + 0.5 · I (the residual connection), rows renormalised; the rollout is
    A_L · … · A_1. Padded keys carry zero attention, so padding never enters a real row.
    """
    B, T = attention_mask.shape
    eye = torch.eye(T, dtype=torch.float64, device=attention_mask.device).expand(B, T, T)  # (B, T, T)
    rollout = eye.clone()
    for weights in attentions:
        mixed = 0.5 * weights.double().mean(dim=1) + 0.5 * eye  # (B, T, T)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = torch.bmm(mixed, rollout)  # later layers on the left
    return rollout


def attention_rollout(
    model: AttributionModel,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    targets: Sequence[int] | None = None,
) -> list[TokenAttribution]:
    """Rollout of attention to every token from the token the classifier reads ([CLS], or a decoder's last real
    token); needs the model's attention weights."""
    results: list[tuple[int, TokenAttribution]] = []
    for indices, rows, batch in _chunks(model, texts, batch_size):
        logits, chosen = _targets(model, batch, indices, targets)
        rollout = rollout_matrix(model.attentions(batch), batch.attention_mask)  # (B, T, T)
        read = torch.zeros(len(rows), dtype=torch.long, device=rollout.device)
        if model.read_position == "last":
            read = last_real_index(batch.attention_mask).to(rollout.device)
        token_scores = rollout[torch.arange(len(rows), device=rollout.device), read]  # (B, T)
        results += _package(model, texts, indices, rows, batch, token_scores, logits, chosen)
    return _in_input_order(results)


def compute_attributions(
    model: AttributionModel,
    texts: Sequence[str],
    method: Method,
    *,
    n_steps: int = 50,
    baseline_token: BaselineToken = "pad",
    batch_size: int = 8,
    max_sequences: int = DEFAULT_MAX_SEQUENCES,
    targets: Sequence[int] | None = None,
) -> list[TokenAttribution]:
    """Dispatch by method name (the probes loop over methods with one call)."""
    if method == "integrated_gradients":
        return integrated_gradients(
            model, texts, n_steps=n_steps, baseline_token=baseline_token, batch_size=batch_size,
            max_sequences=max_sequences, targets=targets,
        )
    if method == "gradient_x_input":
        return gradient_x_input(model, texts, batch_size=batch_size, targets=targets)
    if method == "attention_rollout":
        return attention_rollout(model, texts, batch_size=batch_size, targets=targets)
    raise AttributionSettingsError(f"unknown attribution method {method!r}; expected one of {', '.join(METHODS)}")


def delta_tolerance(attribution: TokenAttribution, *, relative: float, absolute: float) -> float:
    """Allowed |delta| for one example: max(relative · |f(x) − f(baseline)|, absolute) (logit units)."""
    gap = abs(attribution.target_logit - (attribution.baseline_logit or 0.0))
    return max(relative * gap, absolute)
