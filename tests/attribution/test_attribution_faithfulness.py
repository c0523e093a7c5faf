"""ERASER faithfulness: erasure arithmetic by hand, IG beats random on a model that reads one word, and a
ranking that is deliberately wrong is flagged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from attribution_helpers import NEGATIVE, POSITIVE, sentiment_texts

from probes.attribution.adapter import AttributionModel
from probes.attribution.faithfulness import (
    FaithfulnessProbe,
    erasure_curves,
    importance_ranking,
    random_ranking,
    top_count,
)
from probes.attribution.methods import compute_attributions, integrated_gradients
from probes.base import ProbeContext, ProbeInputError


def test_top_count():
    assert [top_count(k, 10) for k in (1, 5, 10, 20, 50)] == [1, 1, 1, 2, 5]
    assert top_count(50, 3) == 2 and top_count(100, 3) == 3 and top_count(1, 1) == 1


def test_erasure_curves_match_hand_computed_probabilities(tiny_tokenizer, tiny_ours):
    view = AttributionModel.from_model(tiny_ours, tiny_tokenizer)
    [attribution] = integrated_gradients(view, ["the movie was really good"], n_steps=5)
    ranking = np.array([4, 1, 2, 3, 5])  # "really" first, then "the", ...
    comp, suff = erasure_curves(view, [attribution], [ranking], bins=[20, 40], removal="delete", baseline_id=0)

    def probability(ids):
        with torch.no_grad():
            logits = tiny_ours(input_ids=torch.tensor([ids])).logits[0]
        return float(torch.softmax(logits.double(), -1)[attribution.target])

    full = probability(attribution.input_ids)
    cls, sep = attribution.input_ids[0], attribution.input_ids[-1]
    the, movie, was, really, good = attribution.input_ids[1:6]
    assert comp[0, 0] == pytest.approx(full - probability([cls, the, movie, was, good, sep]), abs=1e-6)
    assert suff[0, 0] == pytest.approx(full - probability([cls, really, sep]), abs=1e-6)
    assert comp[0, 1] == pytest.approx(full - probability([cls, movie, was, good, sep]), abs=1e-6)
    assert suff[0, 1] == pytest.approx(full - probability([cls, the, really, sep]), abs=1e-6)
    comp_r, _ = erasure_curves(view, [attribution], [ranking], bins=[20], removal="replace", baseline_id=4)
    assert comp_r[0, 0] == pytest.approx(full - probability([cls, the, movie, was, 4, good, sep]), abs=1e-6)


def test_ig_beats_random_on_a_model_that_reads_one_word(tiny_tokenizer, trained_sentiment):
    view = AttributionModel.from_model(trained_sentiment, tiny_tokenizer)
    texts, labels = sentiment_texts(40, seed=11)
    rng = np.random.default_rng(0)
    for method in ("integrated_gradients", "gradient_x_input"):
        attributions = compute_attributions(view, texts, method)
        assert np.mean([a.target == label for a, label in zip(attributions, labels)]) > 0.9
        top = [a.tokens[importance_ranking(a)[0]] for a in attributions]
        if method == "integrated_gradients":  # the cue word ranks first
            assert np.mean([token in POSITIVE + NEGATIVE for token in top]) > 0.9
        comp, suff = erasure_curves(view, attributions, [importance_ranking(a) for a in attributions], baseline_id=0)
        comp_random, suff_random = erasure_curves(
            view, attributions, [random_ranking(a, rng) for a in attributions], baseline_id=0
        )
        assert comp.mean() > comp_random.mean() + 0.1
        assert suff.mean() < suff_random.mean() - 0.1


def _probe(subject_texts, **config):
    return FaithfulnessProbe({"texts": subject_texts, "n_bootstrap": 200, "n_steps": 20, **config})


def test_probe_passes_ig_and_flags_inverted_ranking(tmp_path, tiny_tokenizer, trained_sentiment, monkeypatch):
    from attribution_helpers import save_subject

    subject = save_subject(trained_sentiment, tiny_tokenizer, tmp_path / "sentiment")
    texts, _ = sentiment_texts(30, seed=5)
    result = _probe(texts, methods=["integrated_gradients"]).execute(ProbeContext(subject=subject, seed=1))
    assert result.status == "ok", result.message
    gain = result.metric("comprehensiveness_gain_over_random", "integrated_gradients")
    assert gain.ci_low > 0
    assert [f.level for f in result.findings] == ["pass"]

    # Known wrong answer: rank the least important tokens first; the probe must fail it against random.
    from probes.attribution import faithfulness

    monkeypatch.setattr(faithfulness, "importance_ranking", lambda a: importance_ranking(a)[::-1])
    inverted = _probe(texts, methods=["integrated_gradients"]).execute(ProbeContext(subject=subject, seed=1))
    assert inverted.metric("comprehensiveness_gain_over_random", "integrated_gradients").ci_high < 0
    assert [f.level for f in inverted.findings] == ["fail"]


def test_probe_config_is_validated():
    with pytest.raises(ProbeInputError, match="bins"):
        FaithfulnessProbe({"bins": [0, 10]})
    with pytest.raises(ProbeInputError, match="n_steps"):
        FaithfulnessProbe({"n_steps": 0})
