"""Cascading randomisation (Adebayo et al. 2018): stages found on ours and BERT, the original is never touched,
randomising a trained model collapses the rank correlation while a no-op 'randomisation' keeps it at 1."""

from __future__ import annotations

import copy

import numpy as np
import torch
from attribution_helpers import sentiment_texts

from probes.attribution.sanity import (
    SanityProbe,
    cascading_correlations,
    randomization_stages,
    randomize_parameters,
)
from probes.base import ProbeContext


def test_stages_cover_every_parameter_top_down(tiny_ours, tiny_bert):
    for model, expected in ((tiny_ours, "transformer.layers"), (tiny_bert, "bert.encoder.layer")):
        stages = randomization_stages(model)
        assert [name for name, _ in stages] == ["head", "block 1", "block 0", "embeddings"]
        covered = [name for _, names in stages for name in names]
        assert sorted(covered) == sorted(name for name, _ in model.named_parameters())
        assert all(name.startswith(f"{expected}.1.") for name in stages[1][1])
        assert any("word_embeddings" in name for name in stages[-1][1])
        assert any("classifier" in name for name in stages[0][1])


def test_randomisation_is_seeded_keeps_scale_and_works_on_a_copy(tiny_ours):
    before = {name: p.detach().clone() for name, p in tiny_ours.named_parameters()}
    copies = [copy.deepcopy(tiny_ours) for _ in range(2)]
    name = "transformer.layers.0.attention.qkv.weight"
    for model in copies:
        randomize_parameters(model, [name], torch.Generator().manual_seed(3))
    first, second = (dict(m.named_parameters())[name] for m in copies)
    torch.testing.assert_close(first, second)  # same seed, same noise
    assert not torch.allclose(first, before[name])
    assert abs(float(first.detach().std()) / float(before[name].std()) - 1) < 0.1  # same scale, new values
    for parameter_name, parameter in tiny_ours.named_parameters():  # the original is untouched
        torch.testing.assert_close(parameter, before[parameter_name])


def test_randomising_a_trained_model_collapses_rank_correlation(tiny_tokenizer, trained_sentiment):
    texts, _ = sentiment_texts(24, seed=3)
    before = {name: p.detach().clone() for name, p in trained_sentiment.named_parameters()}
    stages, correlations = cascading_correlations(
        trained_sentiment, tiny_tokenizer, texts, "integrated_gradients", generator=torch.Generator().manual_seed(0),
        n_steps=20,
    )
    assert stages == ["head", "block 1", "block 0", "embeddings"]
    final = np.nanmean(correlations[-1])
    assert final < 0.3
    for name, parameter in trained_sentiment.named_parameters():
        torch.testing.assert_close(parameter, before[name])


def test_no_op_randomisation_keeps_correlation_at_one(tiny_tokenizer, trained_sentiment, monkeypatch):
    """Control: if nothing is randomised, every stage must report a perfect rank correlation."""
    from probes.attribution import sanity

    monkeypatch.setattr(sanity, "randomize_parameters", lambda model, names, generator: None)
    texts, _ = sentiment_texts(8, seed=4)
    _, correlations = sanity.cascading_correlations(
        trained_sentiment, tiny_tokenizer, texts, "gradient_x_input", generator=torch.Generator().manual_seed(0)
    )
    np.testing.assert_allclose(correlations, 1.0, atol=1e-9)


def test_probe_reports_curve_and_passes_on_trained_model(tmp_path, tiny_tokenizer, trained_sentiment):
    from attribution_helpers import save_subject

    subject = save_subject(trained_sentiment, tiny_tokenizer, tmp_path / "sanity")
    texts, _ = sentiment_texts(16, seed=8)
    probe = SanityProbe({"texts": texts, "n_steps": 10, "n_bootstrap": 200,
                         "methods": ["integrated_gradients", "attention_rollout"]})
    result = probe.execute(ProbeContext(subject=subject, seed=0))
    assert result.status == "ok", result.message
    [figure] = result.figures
    assert figure.kind == "line" and len(figure.data["series"]) == 2
    ig = figure.data["series"][0]
    assert ig["y"][0] == 1.0 and len(ig["y"]) == 5
    final = result.metric("final_rank_correlation", "integrated_gradients")
    assert final.value < 0.5 and final.higher_is_better is False
    assert result.findings[0].level == "pass"
    assert len(result.per_example["integrated_gradients_final_rank_correlation"]) == 16
