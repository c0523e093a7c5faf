"""The three-way verdict (probes.verdicts) on hand-computed cases, and the minimum detectable difference
(probes.stats) against a two-proportion power calculation written out here."""

import math

import pytest
from scipy.stats import norm

from probes.stats import minimum_detectable_difference
from probes.verdicts import Band, equivalence_note, equivalence_outcome

CROWS_BAND = Band.around(50.0, 5.0)  # 45–55


@pytest.mark.parametrize("low, high, expected", [
    (47.0, 53.0, "pass"),          # inside
    (45.0, 55.0, "pass"),          # touching both edges is still inside
    (48.6, 55.4, "inconclusive"),  # straddles the high edge
    (43.0, 52.0, "inconclusive"),  # straddles the low edge
    (40.0, 60.0, "inconclusive"),  # wider than the band: covers the ideal 50 but is no evidence
    (55.1, 62.0, "fail"),          # wholly above
    (30.0, 44.9, "fail"),          # wholly below
    (None, None, "inconclusive"),  # no interval, no evidence
])
def test_two_sided_band(low, high, expected):
    assert equivalence_outcome(low, high, CROWS_BAND) == expected


@pytest.mark.parametrize("low, high, expected", [
    (0.01, 0.08, "pass"), (0.05, 0.2, "inconclusive"), (0.11, 0.3, "fail"), (0.1, 0.1, "pass"),
])
def test_one_sided_band(low, high, expected):
    """"A gap of at most 0.1": the shape of a gate rule's max bound and of the fairness disparity findings."""
    assert equivalence_outcome(low, high, Band(None, 0.1)) == expected
    # the mirror image, "at least -0.1", on the negated interval
    assert equivalence_outcome(-high, -low, Band(-0.1, None)) == expected


def test_tost_at_alpha_is_the_one_minus_two_alpha_interval_inside_the_band():
    """Schuirmann (1987): with a normal estimate, both one-sided tests at α reject exactly when the (1 − 2α)
    interval lies inside the band. Checked on a grid of estimates: mean m, standard error 1, band 45–55, α 5%."""
    alpha, se = 0.05, 1.0
    z = norm.ppf(1 - alpha)
    for tenth in range(400, 600):
        mean = tenth / 10
        p_low = 1 - norm.cdf((mean - 45.0) / se)   # H0: true value <= 45
        p_high = norm.cdf((mean - 55.0) / se)      # H0: true value >= 55
        tost_rejects = max(p_low, p_high) < alpha
        inside = equivalence_outcome(mean - z * se, mean + z * se, CROWS_BAND) == "pass"
        assert tost_rejects == inside, mean


def test_band_is_stated():
    assert CROWS_BAND.describe() == "45–55"
    assert Band(None, 0.1).describe() == "at most 0.1"
    assert "45–55" in equivalence_note(CROWS_BAND, 0.95) and "α = 0.025" in equivalence_note(CROWS_BAND, 0.95)


@pytest.mark.parametrize("n_a, n_b, rate, alpha, power", [
    (100, 100, 0.5, 0.05, 0.8),
    (40, 400, 0.2, 0.05, 0.8),
    (1000, 250, 0.05, 0.01, 0.9),
])
def test_minimum_detectable_difference_matches_the_power_formula(n_a, n_b, rate, alpha, power):
    """δ = (z_{1−α/2} + z_power) · sqrt(p̄(1 − p̄)(1/n_a + 1/n_b)) (Fleiss, Levin & Paik 2003, pooled variance)."""
    z_alpha, z_power = norm.ppf(1 - alpha / 2), norm.ppf(power)
    expected = (z_alpha + z_power) * math.sqrt(rate * (1 - rate) * (1 / n_a + 1 / n_b))
    assert minimum_detectable_difference(n_a, n_b, rate, alpha=alpha, power=power) == pytest.approx(expected)
    # and, read the other way, a test at that difference has the stated power
    achieved = norm.cdf(expected / math.sqrt(rate * (1 - rate) * (1 / n_a + 1 / n_b)) - z_alpha)
    assert achieved == pytest.approx(power, abs=1e-9)


def test_minimum_detectable_difference_hand_figures():
    """Worked by hand: 100 vs 100 at 50%: (1.95996 + 0.84162) · sqrt(0.25 · 0.02) = 2.80158 · 0.070711 = 0.19810."""
    assert minimum_detectable_difference(100, 100, 0.5) == pytest.approx(0.19810, abs=5e-5)
    assert math.isinf(minimum_detectable_difference(0, 10, 0.5))


def test_chance_auc_verdict_passes_inside_the_margin_and_says_nothing_about_a_leak():
    from audit.results import Metric
    from probes.verdicts import chance_auc_verdict

    def auc(low, high):
        return Metric(name="max_auc", value=(low + high) / 2, ci_low=low, ci_high=high, n=200)

    level, message = chance_auc_verdict(auc(0.46, 0.54), margin=0.05, separated="members from non-members")
    assert level == "pass" and "no attack tells members from non-members" in message and "at most 0.55" in message
    level, message = chance_auc_verdict(auc(0.50, 0.58), margin=0.05, separated="members from non-members")
    assert level == "inconclusive" and "cannot tell" in message
    assert chance_auc_verdict(auc(0.56, 0.64), margin=0.05, separated="members from non-members") is None


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_no_variation_in_the_pooled_rate_bounds_no_detectable_difference(rate):
    """With every outcome alike the normal approximation's variance is 0: no gap size can be promised."""
    assert math.isinf(minimum_detectable_difference(10, 10, rate))
