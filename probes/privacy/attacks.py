"""Membership-inference attack scores and their evaluation, as pure numpy functions.

Every attack maps statistics of examples to a score per example; **a higher score means "more likely a member"**.
Evaluation follows Carlini et al., "Membership Inference Attacks From First Principles" (S&P 2022): report the
true-positive rate at a low false-positive rate (1%, 0.1%), not only the ROC AUC, because an attack that is
right on average but never confidently right is no privacy threat, while one that identifies a few members with
near certainty is.

Attacks:
  - ``loss_attack``: the target's log-probability of the true label (Yeom et al., "Privacy Risk in Machine Learning:
    Analyzing the Connection to Overfitting", CSF 2018): members are fitted better.
  - ``lira_online`` / ``lira_offline``: the Likelihood Ratio Attack (Carlini et al., S&P 2022) on the logit-scaled
    confidence of the true class, phi = log(p / (1 - p)), with Gaussians fitted to reference-model statistics, per
    example or with one variance shared across examples ("fixed variance", better with few reference models).
  - ``rmia``: the Robust Membership Inference Attack (Zarifzadeh, Liu & Shokri, "Low-Cost High-Power Membership
    Inference Attacks", ICML 2024): the share of population samples z that x dominates in the pairwise likelihood
    ratio (Pr(x|theta)/Pr(x)) / (Pr(z|theta)/Pr(z)) >= gamma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats
from scipy.special import log_softmax, logsumexp

# Smallest standard deviation a Gaussian fit may have: a zero spread would turn one shadow sample into certainty.
_MIN_STD = 1e-3


class AttackInputError(ValueError):
    """Statistics of the wrong shape or too few reference models for an attack."""


# ------------------------------------------------------------------------------------------------ statistics
def true_class_log_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log p(true label | x) (N,) from classifier logits (N, C)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return log_softmax(logits, axis=-1)[np.arange(len(labels)), labels]


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi = log(p / (1 - p)) of the true class (N,), computed stably from logits (Carlini et al. 2022, §IV-C).

    log p - log(1 - p) = z_y - logsumexp(z_{c != y}); this stays finite when p rounds to 1 in floating point.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    true_logit = logits[rows, labels]
    others = logits.copy()
    others[rows, labels] = -np.inf
    return true_logit - logsumexp(others, axis=-1)


# ------------------------------------------------------------------------------------------------ attacks
def loss_attack(true_log_prob: np.ndarray) -> np.ndarray:
    """Yeom et al. (2018): score = -loss = log p(true label); members have lower loss."""
    return np.asarray(true_log_prob, dtype=np.float64)


def _check_reference(target_stat, reference_stats, in_mask):
    target_stat = np.asarray(target_stat, dtype=np.float64)
    reference_stats = np.asarray(reference_stats, dtype=np.float64)
    in_mask = np.asarray(in_mask, dtype=bool)
    if reference_stats.ndim != 2 or reference_stats.shape != in_mask.shape:
        raise AttackInputError(
            f"reference statistics {reference_stats.shape} and in/out mask {in_mask.shape} must both be "
            "(n_reference_models, n_examples)"
        )
    if reference_stats.shape[1] != target_stat.shape[0]:
        raise AttackInputError(
            f"{target_stat.shape[0]} target statistics but reference statistics cover {reference_stats.shape[1]}"
        )
    if reference_stats.shape[0] < 2:
        raise AttackInputError(
            f"LiRA needs at least 2 reference models (one with and one without each example); got "
            f"{reference_stats.shape[0]}"
        )
    return target_stat, reference_stats, in_mask


@dataclass(frozen=True)
class GaussianFit:
    """Per-example means (N,) and standard deviations (N,) of reference statistics on one side (in or out)."""

    mean: np.ndarray
    std: np.ndarray
    pooled_std: float | None  # the shared std, None when no example has two samples on this side


def _fit_side(reference_stats: np.ndarray, side_mask: np.ndarray) -> GaussianFit:
    counts = side_mask.sum(axis=0)  # (N,)
    if np.any(counts == 0):
        raise AttackInputError(
            "some examples have no reference model on one side (in/out); assign each example to both sides"
        )
    values = np.where(side_mask, reference_stats, 0.0)  # (K, N)
    mean = values.sum(axis=0) / counts  # (N,)
    squared = np.where(side_mask, (reference_stats - mean) ** 2, 0.0).sum(axis=0)  # (N,)
    degrees = counts - 1
    pooled = float(np.sqrt(squared.sum() / degrees.sum())) if degrees.sum() > 0 else None
    with np.errstate(invalid="ignore", divide="ignore"):
        per_example = np.sqrt(np.where(degrees > 0, squared / np.maximum(degrees, 1), np.nan))
    return GaussianFit(mean=mean, std=per_example, pooled_std=pooled)


def _pooled_fallback(reference_stats: np.ndarray) -> float:
    """With a single sample per side (K = 2, 3) the within-side spread cannot be estimated: use the spread of all
    reference statistics around each example's overall mean. It also holds half the in/out shift, so it is an
    over-estimate and makes LiRA conservative."""
    mean = reference_stats.mean(axis=0)
    degrees = reference_stats.shape[0] - 1
    return float(np.sqrt(((reference_stats - mean) ** 2).sum() / (degrees * reference_stats.shape[1])))


def _stds(fit: GaussianFit, *, fixed_variance: bool, fallback: float) -> np.ndarray:
    shared = fit.pooled_std if fit.pooled_std is not None else fallback
    if fixed_variance:
        return np.full_like(fit.mean, max(shared, _MIN_STD))
    # Per-example spread, with the shared one where an example has a single sample on this side.
    return np.maximum(np.where(np.isnan(fit.std), shared, fit.std), _MIN_STD)


def lira_online(target_stat, reference_stats, in_mask, *, fixed_variance: bool = True) -> np.ndarray:
    """Online LiRA (Carlini et al. 2022, Alg. 1): log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2).

    target_stat (N,): phi of the target model; reference_stats (K, N): phi of each reference model;
    in_mask (K, N): True where reference model k trained on example n. Higher = more likely a member.
    """
    target_stat, reference_stats, in_mask = _check_reference(target_stat, reference_stats, in_mask)
    fit_in, fit_out = _fit_side(reference_stats, in_mask), _fit_side(reference_stats, ~in_mask)
    fallback = _shared_fallback(fit_in, fit_out, reference_stats)
    std_in = _stds(fit_in, fixed_variance=fixed_variance, fallback=fallback)
    std_out = _stds(fit_out, fixed_variance=fixed_variance, fallback=fallback)
    return scipy_stats.norm.logpdf(target_stat, fit_in.mean, std_in) - scipy_stats.norm.logpdf(
        target_stat, fit_out.mean, std_out
    )


def lira_offline(target_stat, reference_stats, in_mask, *, fixed_variance: bool = True) -> np.ndarray:
    """Offline LiRA (Carlini et al. 2022, §VI-C): a one-sided test against the OUT Gaussian only.

    The paper's score is Pr[Z < phi], Z ~ N(mu_out, s_out^2); we return the standardised distance
    (phi - mu_out) / s_out, which ranks examples identically (the normal CDF is monotone) without saturating at 1
    for strong members. Only OUT reference models are used. Higher = more likely a member.
    """
    target_stat, reference_stats, in_mask = _check_reference(target_stat, reference_stats, in_mask)
    fit_out = _fit_side(reference_stats, ~in_mask)
    fallback = fit_out.pooled_std if fit_out.pooled_std is not None else _pooled_fallback(reference_stats)
    std_out = _stds(fit_out, fixed_variance=fixed_variance, fallback=fallback)
    return (target_stat - fit_out.mean) / std_out


def _shared_fallback(fit_in: GaussianFit, fit_out: GaussianFit, reference_stats: np.ndarray) -> float:
    # In and out spreads are similar in practice (Carlini et al. 2022, Fig. 4): borrow one side's for the other.
    for fit in (fit_out, fit_in):
        if fit.pooled_std is not None:
            return fit.pooled_std
    return _pooled_fallback(reference_stats)


def rmia(
    target_prob,
    reference_probs,
    in_mask,
    *,
    population_index: np.ndarray,
    gamma: float = 1.0,
    offline_a: float | None = None,
) -> np.ndarray:
    """RMIA (Zarifzadeh et al., ICML 2024): Score(x) = Pr_z[ LR(x, z) >= gamma ] over population samples z.

    target_prob (N,): Pr(x | theta) = the target's probability of the true label; reference_probs (K, N) the same
    for each reference model; in_mask (K, N) their training membership; population_index: indices (into the N
    examples) of the population samples z. LR(x, z) = (Pr(x|theta) / Pr(x)) / (Pr(z|theta) / Pr(z)).

    Pr(.) is the average over reference models (online: half of them trained on each example). With
    ``offline_a`` set, only OUT models are used and Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2, the paper's linear
    approximation of the unseen IN average (Pr_IN ~ a Pr_OUT + 1 - a). An example never counts itself as z.
    Higher = more likely a member.
    """
    target_prob = np.asarray(target_prob, dtype=np.float64)
    reference_probs = np.asarray(reference_probs, dtype=np.float64)
    in_mask = np.asarray(in_mask, dtype=bool)
    if reference_probs.shape != in_mask.shape or reference_probs.shape[1:] != target_prob.shape:
        raise AttackInputError("reference probabilities and the in/out mask must be (n_reference_models, n_examples)")
    if reference_probs.shape[0] < 1:
        raise AttackInputError("RMIA needs at least 1 reference model")
    if gamma <= 0:
        raise AttackInputError(f"gamma must be positive, got {gamma}")
    if offline_a is None:
        marginal = reference_probs.mean(axis=0)  # (N,)
    else:
        out = ~in_mask
        if np.any(out.sum(axis=0) == 0):
            raise AttackInputError("offline RMIA needs at least one OUT reference model per example")
        out_mean = np.where(out, reference_probs, 0.0).sum(axis=0) / out.sum(axis=0)
        marginal = 0.5 * ((1.0 + offline_a) * out_mean + (1.0 - offline_a))
    # Small floor: a probability of exactly 0 would make the ratio undefined.
    ratio = np.maximum(target_prob, 1e-30) / np.maximum(marginal, 1e-30)  # (N,)
    population_index = np.asarray(population_index, dtype=np.int64)
    if population_index.size == 0:
        raise AttackInputError("RMIA needs population samples z")
    sorted_z = np.sort(ratio[population_index])  # (Z,)
    # LR(x, z) >= gamma  <=>  ratio_z <= ratio_x / gamma
    dominated = np.searchsorted(sorted_z, ratio / gamma, side="right").astype(np.float64)  # (N,)
    # An example that is itself a population sample has LR(x, x) = 1: remove that comparison.
    is_z = np.zeros(len(ratio), dtype=bool)
    is_z[population_index] = True
    self_counted = is_z & (1.0 >= gamma)
    dominated -= self_counted
    denominator = population_index.size - is_z.astype(np.float64)
    return dominated / np.maximum(denominator, 1.0)


# ------------------------------------------------------------------------------------------------ evaluation
def _as_labels(scores, members):
    scores = np.asarray(scores, dtype=np.float64)
    members = np.asarray(members, dtype=bool)
    if scores.shape != members.shape or scores.ndim != 1:
        raise AttackInputError(f"scores {scores.shape} and membership {members.shape} must be aligned 1-D arrays")
    if members.all() or not members.any():
        raise AttackInputError("evaluation needs both members and non-members")
    if not np.all(np.isfinite(scores)):
        raise AttackInputError("attack scores must be finite")
    return scores, members


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr: float) -> np.ndarray:
    """Largest TPR with FPR <= ``fpr`` (Carlini et al. 2022), vectorised over leading axes.

    member_scores (..., n_in), nonmember_scores (..., n_out). The threshold is the (k+1)-th largest non-member
    score with k = floor(fpr * n_out) allowed false alarms; members strictly above it are detected. With fewer
    than 1/fpr non-members this is the zero-false-alarm rate: a conservative (lower) estimate.
    """
    nonmember_scores = np.asarray(nonmember_scores, dtype=np.float64)
    member_scores = np.asarray(member_scores, dtype=np.float64)
    n_out = nonmember_scores.shape[-1]
    allowed = int(np.floor(fpr * n_out + 1e-9))
    descending = -np.sort(-nonmember_scores, axis=-1)
    threshold = descending[..., min(allowed, n_out - 1)] if allowed < n_out else np.full(
        nonmember_scores.shape[:-1], -np.inf
    )
    return np.mean(member_scores > np.asarray(threshold)[..., None], axis=-1)


def roc_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> np.ndarray:
    """Area under the ROC curve = P(member score > non-member score) + 1/2 P(tie) (Mann–Whitney), vectorised."""
    member_scores = np.asarray(member_scores, dtype=np.float64)
    nonmember_scores = np.asarray(nonmember_scores, dtype=np.float64)
    n_in, n_out = member_scores.shape[-1], nonmember_scores.shape[-1]
    combined = np.concatenate([member_scores, nonmember_scores], axis=-1)
    ranks = scipy_stats.rankdata(combined, axis=-1)  # average ranks for ties
    rank_sum = ranks[..., :n_in].sum(axis=-1)
    return (rank_sum - n_in * (n_in + 1) / 2.0) / (n_in * n_out)


def balanced_accuracy(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> np.ndarray:
    """Best balanced accuracy over thresholds, max_t (TPR(t) + 1 - FPR(t)) / 2, vectorised over leading axes."""
    member_scores = np.asarray(member_scores, dtype=np.float64)
    nonmember_scores = np.asarray(nonmember_scores, dtype=np.float64)
    n_in, n_out = member_scores.shape[-1], nonmember_scores.shape[-1]
    combined = np.concatenate([member_scores, nonmember_scores], axis=-1)
    is_member = np.concatenate(
        [np.ones(member_scores.shape, bool), np.zeros(nonmember_scores.shape, bool)], axis=-1
    )
    order = np.argsort(-combined, axis=-1, kind="stable")
    sorted_scores = np.take_along_axis(combined, order, axis=-1)
    sorted_members = np.take_along_axis(is_member, order, axis=-1)
    true_positives = np.cumsum(sorted_members, axis=-1)
    false_positives = np.cumsum(~sorted_members, axis=-1)
    value = 0.5 * (true_positives / n_in + 1.0 - false_positives / n_out)
    # A threshold can only fall between distinct scores: the last position of each run of ties.
    boundary = np.ones(sorted_scores.shape, dtype=bool)
    boundary[..., :-1] = sorted_scores[..., :-1] != sorted_scores[..., 1:]
    return np.maximum(np.where(boundary, value, 0.5).max(axis=-1), 0.5)


def roc_on_log_grid(member_scores, nonmember_scores, *, points: int = 60) -> tuple[list[float], list[float]]:
    """TPR at log-spaced FPRs from 1/n_out to 1 (for the log-log ROC chart; keeps results.json small)."""
    member_scores = np.asarray(member_scores, dtype=np.float64)
    nonmember_scores = np.asarray(nonmember_scores, dtype=np.float64)
    low = 1.0 / len(nonmember_scores)
    grid = np.unique(np.concatenate([np.geomspace(low, 1.0, points), [1e-3, 1e-2, 1e-1]]))
    grid = grid[grid >= low - 1e-12]
    tpr = [float(tpr_at_fpr(member_scores, nonmember_scores, fpr)) for fpr in grid]
    return [float(value) for value in grid], tpr


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class AttackEvaluation:
    """Point estimates and stratified-bootstrap percentile intervals of one attack's success."""

    auc: Estimate
    balanced_accuracy: Estimate
    tpr_at_fpr: dict[float, Estimate]
    n_members: int
    n_nonmembers: int


def evaluate_attack(
    scores,
    members,
    *,
    rng: np.random.Generator,
    fprs: tuple[float, ...] = (0.01, 0.001),
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> AttackEvaluation:
    """AUC, best balanced accuracy and TPR at each FPR with bootstrap intervals.

    Members and non-members are resampled separately (stratified) so every replicate keeps both class sizes.
    """
    scores, members = _as_labels(scores, members)
    member_scores, nonmember_scores = scores[members], scores[~members]
    n_in, n_out = len(member_scores), len(nonmember_scores)
    resampled_in = member_scores[rng.integers(0, n_in, size=(n_resamples, n_in))]  # (B, n_in)
    resampled_out = nonmember_scores[rng.integers(0, n_out, size=(n_resamples, n_out))]  # (B, n_out)
    alpha = (1.0 - confidence) / 2.0

    def estimate(function, *extra) -> Estimate:
        point = float(function(member_scores, nonmember_scores, *extra))
        replicates = function(resampled_in, resampled_out, *extra)
        return Estimate(point, float(np.quantile(replicates, alpha)), float(np.quantile(replicates, 1 - alpha)))

    return AttackEvaluation(
        auc=estimate(roc_auc),
        balanced_accuracy=estimate(balanced_accuracy),
        tpr_at_fpr={fpr: estimate(tpr_at_fpr, fpr) for fpr in fprs},
        n_members=n_in,
        n_nonmembers=n_out,
    )


def balanced_in_out_masks(n_models: int, n_examples: int, rng: np.random.Generator) -> np.ndarray:
    """(K, N) in/out assignment where each example is IN for exactly floor(K/2) models and each model holds about
    half the examples (the paired design of Carlini et al. 2022's code: rank uniform draws per example)."""
    if n_models < 1:
        raise AttackInputError(f"need at least one reference model, got {n_models}")
    draws = rng.random((n_models, n_examples))
    ranks = draws.argsort(axis=0).argsort(axis=0)  # (K, N), a random permutation of 0..K-1 per example
    return ranks < n_models // 2 if n_models > 1 else draws < 0.5
