"""Classifier operations: probabilities, logits, losses, differentiable forward for captum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from audit.subject import ModelUnderAudit


@pytest.fixture(scope="module", params=["distil_cls", "bert_cls_ft", "ours_cls_ft"])
def classifier(request, model_dirs):
    return ModelUnderAudit.from_pretrained(model_dirs[request.param], device="cpu")


def one_at_a_time(subject, texts):
    """Reference: unpadded single-text forward of the raw HF model."""
    rows = []
    with torch.no_grad():
        for text in texts:
            encoded = subject.tokenizer(text, return_tensors="pt", truncation=True, max_length=subject.max_length)
            rows.append(subject.classifier(input_ids=encoded["input_ids"],
                                           attention_mask=encoded["attention_mask"]).logits[0].numpy())
    return np.stack(rows)


def test_logits_equal_single_text_forwards_in_input_order(classifier, sentences):
    np.testing.assert_allclose(classifier.logits(sentences, batch_size=3), one_at_a_time(classifier, sentences),
                               atol=1e-5, rtol=0)


def test_probabilities_and_batch_invariance(classifier, sentences):
    proba = classifier.predict_proba(sentences, batch_size=64)
    assert proba.shape == (len(sentences), classifier.num_labels)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    for batch_size in (1, 2, 5):
        np.testing.assert_allclose(classifier.predict_proba(sentences, batch_size=batch_size), proba, atol=1e-5)
    reversed_proba = classifier.predict_proba(sentences[::-1])
    np.testing.assert_allclose(reversed_proba[::-1], proba, atol=1e-5)
    assert classifier.predict_proba([]).shape == (0, classifier.num_labels)


def test_per_example_loss_is_negative_log_probability(classifier, sentences):
    labels = np.arange(len(sentences)) % classifier.num_labels
    loss = classifier.per_example_loss(sentences, labels)
    proba = classifier.predict_proba(sentences)
    np.testing.assert_allclose(loss, -np.log(proba[np.arange(len(sentences)), labels]), atol=1e-5)
    with pytest.raises(ValueError, match="integer class ids"):
        classifier.per_example_loss(sentences, labels[:-1])
    with pytest.raises(ValueError, match="labels must lie in"):
        classifier.per_example_loss(sentences, labels + 5)


def test_long_texts_are_truncated_not_refused(classifier):
    long_text = " ".join(["the doctor said she would arrive soon"] * 30)
    encoded = classifier.tokenizer(long_text)["input_ids"]
    assert len(encoded) > classifier.max_length
    truncated = classifier.tokenizer.decode(encoded[1:classifier.max_length - 1])
    np.testing.assert_allclose(classifier.logits([long_text]), classifier.logits([truncated]), atol=1e-5)


def test_texts_must_be_a_list_of_strings(classifier):
    with pytest.raises(TypeError, match="single string"):
        classifier.predict_proba("the doctor")
    with pytest.raises(TypeError, match="texts\\[1\\]"):
        classifier.predict_proba(["the doctor", 3])


def test_classifier_forward_is_differentiable_and_matches(classifier, sentences):
    encoded = classifier.encode(sentences[:3])
    logits = classifier.classifier_forward(encoded["input_ids"], encoded["attention_mask"])
    assert logits.requires_grad
    np.testing.assert_allclose(logits.detach().numpy(), classifier.logits(sentences[:3]), atol=1e-5)
    logits[:, 0].sum().backward()
    assert classifier.input_embeddings().weight.grad is not None
    classifier.model.zero_grad(set_to_none=True)


def test_captum_integrated_gradients_over_the_input_embeddings(classifier):
    """Completeness (Sundararajan et al., 2017): attributions sum to f(x) - f(baseline), up to the delta."""
    embeddings = classifier.input_embeddings()
    assert isinstance(embeddings, nn.Embedding)
    assert embeddings is classifier.classifier.get_input_embeddings()
    encoded = classifier.encode(["the doctor said she would arrive soon", "he cooked bread"])
    input_ids, attention_mask = encoded["input_ids"], encoded["attention_mask"]
    baseline = torch.where(attention_mask.bool() & (input_ids != classifier.tokenizer.cls_token_id)
                           & (input_ids != classifier.tokenizer.sep_token_id),
                           torch.full_like(input_ids, classifier.tokenizer.pad_token_id), input_ids)
    integrated = LayerIntegratedGradients(classifier.classifier_forward, embeddings)
    attributions, delta = integrated.attribute(input_ids, baselines=baseline, target=1,
                                               additional_forward_args=(attention_mask,), n_steps=64,
                                               return_convergence_delta=True)
    assert attributions.shape == (*input_ids.shape, embeddings.embedding_dim)
    assert delta.abs().max().item() < 1e-3
    classifier.model.zero_grad(set_to_none=True)
