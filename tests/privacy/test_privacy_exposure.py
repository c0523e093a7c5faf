"""Canary exposure (Carlini et al. 2019): the exposure maths, tokenizer checks and bad input (fast); a real
pretrained model with planted canaries (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from audit.train.canaries import MANIFEST_FILE, draw_canaries
from audit.train.config import CanarySection
from audit.train.tokenizer import train_tokenizer
from probes.base import ProbeContext, ProbeInputError
from probes.privacy import exposure
from probes.privacy.exposure import ExposureProbe

WORDS = ["my", "pin", "code", "is", "the", "a", "of", "and", "to", "in", "was", "he", "she", "it", "model", "data", "text", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]


@pytest.fixture(scope="module")
def tokenizer():
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=12)) for _ in range(300)]
    return train_tokenizer(texts, vocab_size=80, min_frequency=1, min_char_count=1)


@pytest.fixture()
def manifest():
    return draw_canaries(CanarySection(count=8, repeats=[1, 16], length=5, seed=3))


class ScoringDouble:
    """An "MLM" with a fixed random log-probability per (position, token) and a large bonus for the tokens of the
    secrets it "memorised": a known answer for the exposure pipeline without training a model."""

    capabilities = frozenset({"mlm"})

    def __init__(self, tokenizer, memorised: list[list[int]], positions: list[int], bonus: float = 3.0):
        self.tokenizer = tokenizer
        self.table = np.random.default_rng(1).normal(0.0, 1.0, (64, len(tokenizer)))
        self.memorised = {tuple(ids) for ids in memorised}
        self.positions = positions
        self.bonus = bonus
        self.calls = 0

    def pll_scores(self, token_ids, positions, *, batch_size=128):
        self.calls += 1
        out = []
        for ids, where in zip(token_ids, positions):
            bonus = self.bonus if tuple(ids) in self.memorised else 0.0
            out.append(np.array([self.table[p, ids[p]] + bonus for p in where]))
        return out


def _context(subject, manifest, tmp_path):
    manifest.save(tmp_path)
    return ProbeContext(subject=subject, seed=0, canary_manifest=tmp_path / MANIFEST_FILE)


def test_expected_random_exposure_is_about_one_over_ln2():
    assert exposure.expected_random_exposure(10_000) == pytest.approx(1 / math.log(2), abs=0.01)
    assert exposure.expected_random_exposure(1) == 0.0


def test_rank_exposure_counts_better_candidates_and_half_ties():
    candidates = np.array([5.0, 3.0, 1.0, 1.0, -2.0, -4.0, -5.0])  # R = 8 with the secret
    assert exposure.rank_exposure(10.0, candidates) == (1.0, 3.0)
    rank, bits = exposure.rank_exposure(1.0, candidates)
    assert rank == 4.0 and bits == pytest.approx(math.log2(8) - 2)


def test_extrapolation_matches_the_tail_of_a_known_skew_normal():
    distribution = stats.skewnorm(4.0, loc=-20.0, scale=3.0)
    candidates = distribution.rvs(size=20_000, random_state=np.random.default_rng(2))
    for tail in (1e-3, 1e-6):
        secret = distribution.isf(tail)
        bits = exposure.extrapolated_exposure(np.array([secret]), candidates, cap_bits=40.0)[0]
        assert bits == pytest.approx(-math.log2(tail), rel=0.1)
    assert exposure.extrapolated_exposure(np.array([1e6]), candidates, cap_bits=12.0)[0] == 12.0


def test_canary_format_builds_the_same_ids_as_the_tokenizer(tokenizer, manifest):
    layout = exposure.canary_format(manifest, tokenizer)
    secret = manifest.secrets[0]
    assert tokenizer(secret.text)["input_ids"] == layout.token_ids(secret.digits)
    assert [layout.token_ids(secret.digits)[p] for p in layout.positions] == [
        tokenizer.convert_tokens_to_ids(d) for d in secret.digits
    ]


def test_memorised_secrets_rank_first_and_controls_stay_near_chance(tokenizer, manifest, tmp_path):
    layout = exposure.canary_format(manifest, tokenizer)
    planted = [layout.token_ids(s.digits) for s in manifest.secrets if s.repeats == 16]
    subject = ScoringDouble(tokenizer, planted, layout.positions, bonus=10.0)
    probe = ExposureProbe({"n_candidates": 2000})
    result = probe.execute(_context(subject, manifest, tmp_path))
    assert result.status == "ok", result.message
    assert result.metric("exposure", "repeats_16").value == pytest.approx(math.log2(2000))
    control = result.metric("exposure", "control").value
    assert abs(control - exposure.expected_random_exposure(2000)) < 1.2
    assert result.metric("exposure_extrapolated", "repeats_16").value > 11.0
    assert subject.calls == 1  # every candidate and secret in one batched call
    levels = {f.message.split(" have")[0]: f.level for f in result.findings}
    assert levels["Secrets planted 16×"] == "fail" and levels["Secrets planted 1×"] == "pass"
    assert result.per_example["repeats"].count(0) == 8


def test_batched_and_one_at_a_time_agree(tokenizer, manifest):
    layout = exposure.canary_format(manifest, tokenizer)
    subject = ScoringDouble(tokenizer, [], layout.positions)
    batched = exposure.compute_exposure(subject, manifest, n_candidates=300, seed=4)
    single = exposure.compute_exposure(subject, manifest, n_candidates=300, seed=4, one_at_a_time=True)
    np.testing.assert_array_equal(batched.exposure, single.exposure)
    assert subject.calls == 1 + 300 - 1 + len(manifest.secrets)


def test_missing_manifest_is_a_clear_error(tokenizer, tmp_path):
    subject = ScoringDouble(tokenizer, [], [])
    context = ProbeContext(subject=subject, seed=0, canary_manifest=tmp_path / MANIFEST_FILE)
    with pytest.raises(ProbeInputError, match="no canaries.json"):
        ExposureProbe().run(context)
    assert ExposureProbe().execute(ProbeContext(subject=subject, seed=0)).status == "skipped"


def test_manifest_from_another_tokenizer_is_refused(manifest, tmp_path):
    no_digits = train_tokenizer([" ".join(WORDS[:16])] * 50, vocab_size=60, min_frequency=1, min_char_count=1)
    subject = ScoringDouble(no_digits, [], [])
    with pytest.raises(ProbeInputError, match="does not match the model's tokenizer"):
        ExposureProbe().run(_context(subject, manifest, tmp_path))


def test_secrets_written_without_separators_are_refused(tokenizer, tmp_path):
    glued = draw_canaries(CanarySection(count=2, repeats=[4], length=6, seed=1))
    glued = glued.model_copy(update={"separator": ""})
    for secret in glued.secrets:
        secret.text = glued.render(secret.digits)
    with pytest.raises(ProbeInputError, match="does not match the model's tokenizer"):
        exposure.canary_format(glued, tokenizer)


@pytest.mark.slow
def test_secrets_planted_16_times_are_exposed_and_controls_are_not(canary_pretrained_dir):
    from audit.subject import ModelUnderAudit

    subject = ModelUnderAudit.from_pretrained(canary_pretrained_dir)
    context = ProbeContext(subject=subject, seed=0, canary_manifest=canary_pretrained_dir / MANIFEST_FILE)
    result = ExposureProbe({"n_candidates": 2000}).execute(context)
    assert result.status == "ok", result.message
    planted, control = result.metric("exposure", "repeats_16"), result.metric("exposure", "control")
    assert planted.n == control.n == 8
    assert planted.ci_low > control.ci_high
    assert planted.value >= control.value + 4.0
    assert abs(control.value - exposure.expected_random_exposure(2000)) < 1.5
    assert result.metric("exposure_extrapolated", "repeats_16").value > control.value + 4.0
