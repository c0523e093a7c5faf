"""Attack maths on synthetic statistics with known answers (fast)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from probes.privacy import attacks

NORMAL = stats.norm


def _gaussians(separation: float, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(separation, 1.0, n), rng.normal(0.0, 1.0, n)


@pytest.mark.parametrize("fpr", [0.01, 0.001])
def test_tpr_at_fpr_matches_the_two_gaussian_closed_form(fpr):
    # Members N(mu, 1), non-members N(0, 1): threshold Phi^-1(1 - fpr), so TPR = Phi(mu + Phi^-1(fpr)).
    mu = 2.0
    members, nonmembers = _gaussians(mu, 400_000)
    expected = NORMAL.cdf(mu + NORMAL.ppf(fpr))
    assert attacks.tpr_at_fpr(members, nonmembers, fpr) == pytest.approx(expected, abs=0.01)


def test_auc_and_balanced_accuracy_match_closed_forms():
    # AUC = P(X_in > X_out) = Phi(mu / sqrt 2); best balanced accuracy at threshold mu/2 is Phi(mu / 2).
    mu = 1.5
    members, nonmembers = _gaussians(mu, 100_000, seed=1)
    assert attacks.roc_auc(members, nonmembers) == pytest.approx(NORMAL.cdf(mu / np.sqrt(2)), abs=0.005)
    assert attacks.balanced_accuracy(members, nonmembers) == pytest.approx(NORMAL.cdf(mu / 2), abs=0.005)


def test_auc_and_tpr_agree_with_sklearn_on_tied_scores():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 20, size=600).astype(float)  # heavy ties
    members = rng.random(600) < 0.5
    scores[members] += 2
    assert attacks.roc_auc(scores[members], scores[~members]) == pytest.approx(roc_auc_score(members, scores))
    fpr_curve, tpr_curve, _ = roc_curve(members, scores)
    for fpr in (0.01, 0.05, 0.2):
        reference = tpr_curve[fpr_curve <= fpr].max()
        assert attacks.tpr_at_fpr(scores[members], scores[~members], fpr) == pytest.approx(reference)
    best = max(0.5 * (t + 1 - f) for f, t in zip(fpr_curve, tpr_curve))
    assert attacks.balanced_accuracy(scores[members], scores[~members]) == pytest.approx(best)


def test_no_separation_gives_chance_with_a_ci_covering_it():
    members, nonmembers = _gaussians(0.0, 1500, seed=4)
    scores = np.concatenate([members, nonmembers])
    labels = np.r_[np.ones(1500, bool), np.zeros(1500, bool)]
    evaluation = attacks.evaluate_attack(scores, labels, rng=np.random.default_rng(0), n_resamples=400)
    assert evaluation.auc.ci_low <= 0.5 <= evaluation.auc.ci_high
    assert evaluation.tpr_at_fpr[0.01].ci_low <= 0.01 <= evaluation.tpr_at_fpr[0.01].ci_high
    assert evaluation.auc.ci_high - evaluation.auc.ci_low < 0.06


def test_bootstrap_interval_covers_the_true_auc_and_excludes_chance():
    mu = 0.8
    members, nonmembers = _gaussians(mu, 800, seed=5)
    scores = np.concatenate([members, nonmembers])
    labels = np.r_[np.ones(800, bool), np.zeros(800, bool)]
    evaluation = attacks.evaluate_attack(scores, labels, rng=np.random.default_rng(1), n_resamples=500)
    truth = NORMAL.cdf(mu / np.sqrt(2))
    assert evaluation.auc.ci_low <= truth <= evaluation.auc.ci_high
    assert evaluation.auc.ci_low > 0.55


def test_evaluation_is_reproducible_with_the_same_rng_seed():
    members, nonmembers = _gaussians(1.0, 300, seed=6)
    scores = np.concatenate([members, nonmembers])
    labels = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    first = attacks.evaluate_attack(scores, labels, rng=np.random.default_rng(9), n_resamples=200)
    second = attacks.evaluate_attack(scores, labels, rng=np.random.default_rng(9), n_resamples=200)
    assert first == second


def test_logit_scaled_confidence_is_log_odds_and_stays_finite():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 50.0, -50.0], [800.0, -800.0, 0.0]])
    labels = np.array([0, 1, 0])
    phi = attacks.logit_scaled_confidence(logits, labels)
    p = np.exp(attacks.true_class_log_prob(logits, labels))
    assert phi[0] == pytest.approx(np.log(p[0] / (1 - p[0])))
    assert np.all(np.isfinite(phi)) and phi[2] > 700  # p rounds to 1.0 but phi does not overflow


# ------------------------------------------------------------------------------------------------ reference attacks
def _synthetic_population(n_examples=4000, n_models=16, shift=1.0, noise=0.5, hardness=3.0, seed=0):
    """phi = hardness_n + shift * [in] + noise: examples differ a lot in difficulty, so a global threshold (the
    loss attack) is weak while per-example calibration (LiRA) recovers the Gaussian test between
    N(b + shift, noise^2) and N(b, noise^2): TPR = Phi(shift / noise + Phi^-1(FPR))."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, hardness, n_examples)
    in_mask = attacks.balanced_in_out_masks(n_models, n_examples, rng)
    reference = base + shift * in_mask + rng.normal(0.0, noise, (n_models, n_examples))
    members = rng.random(n_examples) < 0.5
    target = base + shift * members + rng.normal(0.0, noise, n_examples)
    return target, reference, in_mask, members


def test_balanced_masks_put_each_example_in_half_the_models_reproducibly():
    mask = attacks.balanced_in_out_masks(6, 500, np.random.default_rng(2))
    assert mask.shape == (6, 500) and np.all(mask.sum(axis=0) == 3)
    assert abs(mask.sum(axis=1).mean() - 250) < 30
    np.testing.assert_array_equal(mask, attacks.balanced_in_out_masks(6, 500, np.random.default_rng(2)))


def test_lira_recovers_the_optimal_test_and_beats_the_loss_attack():
    target, reference, in_mask, members = _synthetic_population(n_models=32)
    optimal_tpr = NORMAL.cdf(1.0 / 0.5 + NORMAL.ppf(0.01))  # 0.37
    loss = attacks.loss_attack(target)
    for score in (
        attacks.lira_online(target, reference, in_mask, fixed_variance=True),
        attacks.lira_offline(target, reference, in_mask, fixed_variance=True),
        attacks.lira_online(target, reference, in_mask, fixed_variance=False),
    ):
        tpr = attacks.tpr_at_fpr(score[members], score[~members], 0.01)
        assert tpr == pytest.approx(optimal_tpr, abs=0.08)
        assert attacks.roc_auc(score[members], score[~members]) == pytest.approx(NORMAL.cdf(2 / np.sqrt(2)), abs=0.03)
    assert attacks.tpr_at_fpr(loss[members], loss[~members], 0.01) < 0.1
    assert attacks.roc_auc(loss[members], loss[~members]) < 0.6


def test_lira_with_few_models_still_separates_and_without_signal_is_chance():
    target, reference, in_mask, members = _synthetic_population(n_models=2, n_examples=3000, seed=1)
    score = attacks.lira_online(target, reference, in_mask)
    assert attacks.roc_auc(score[members], score[~members]) > 0.75
    quiet = _synthetic_population(n_models=4, shift=0.0, seed=2)
    score = attacks.lira_online(quiet[0], quiet[1], quiet[2])
    assert abs(attacks.roc_auc(score[quiet[3]], score[~quiet[3]]) - 0.5) < 0.04


def test_lira_refuses_fewer_than_two_reference_models():
    target, reference, in_mask, _ = _synthetic_population(n_models=2, n_examples=50)
    with pytest.raises(attacks.AttackInputError, match="at least 2 reference models"):
        attacks.lira_online(target, reference[:1], in_mask[:1])


def _rmia_brute_force(target_prob, reference_prob, in_mask, population, gamma, offline_a=None):
    if offline_a is None:
        marginal = reference_prob.mean(axis=0)
    else:
        out = ~in_mask
        marginal = 0.5 * ((1 + offline_a) * (reference_prob * out).sum(0) / out.sum(0) + (1 - offline_a))
    ratio = target_prob / marginal
    scores = []
    for x in range(len(target_prob)):
        zs = [z for z in population if z != x]
        scores.append(np.mean([ratio[x] / ratio[z] >= gamma for z in zs]))
    return np.array(scores)


@pytest.mark.parametrize("gamma,offline_a", [(1.0, None), (2.0, None), (0.5, None), (2.0, 0.33)])
def test_rmia_matches_its_definition(gamma, offline_a):
    rng = np.random.default_rng(7)
    target = rng.uniform(0.05, 0.95, 60)
    reference = rng.uniform(0.05, 0.95, (4, 60))
    in_mask = attacks.balanced_in_out_masks(4, 60, rng)
    population = np.sort(rng.permutation(60)[:25])
    ours = attacks.rmia(target, reference, in_mask, population_index=population, gamma=gamma, offline_a=offline_a)
    expected = _rmia_brute_force(target, reference, in_mask, population, gamma, offline_a)
    np.testing.assert_allclose(ours, expected)


def test_rmia_separates_members_when_there_is_signal_and_not_otherwise():
    def probabilities(phi):
        return 1 / (1 + np.exp(-phi))

    for shift, check in ((1.0, lambda auc: auc > 0.8), (0.0, lambda auc: abs(auc - 0.5) < 0.04)):
        target, reference, in_mask, members = _synthetic_population(n_models=4, shift=shift, hardness=1.5, seed=3)
        population = np.arange(0, len(target), 4)
        score = attacks.rmia(probabilities(target), probabilities(reference), in_mask, population_index=population)
        assert check(attacks.roc_auc(score[members], score[~members]))


def test_roc_grid_is_positive_and_monotone_for_log_axes():
    members, nonmembers = _gaussians(1.0, 2000, seed=8)
    fpr, tpr = attacks.roc_on_log_grid(members, nonmembers)
    assert fpr[0] == pytest.approx(1 / 2000) and fpr[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(tpr))
    assert 1e-3 in fpr and 1e-2 in fpr
