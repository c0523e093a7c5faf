"""Embeddings, word embeddings, encoding and word↔token alignment (tiny models and all-MiniLM-L6-v2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audit.subject import ModelUnderAudit, minilm_path


@pytest.fixture(scope="module", params=["bert_base", "bert_mlm", "distil_cls", "ours_cls_ft"])
def encoder_subject(request, model_dirs):
    return ModelUnderAudit.from_pretrained(model_dirs[request.param], device="cpu")


def hidden_of(subject, text, layer=-1):
    """Reference: one unpadded forward of the base encoder, all hidden states."""
    encoded = subject.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        outputs = subject.model.base_model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                                           output_hidden_states=True)
    return outputs.hidden_states[layer][0].numpy(), encoded


def test_mean_and_cls_pooling_match_single_forwards(encoder_subject, sentences):
    mean = encoder_subject.embed(sentences, batch_size=3)
    cls = encoder_subject.embed(sentences, pooling="cls")
    first_layer = encoder_subject.embed(sentences, layer=0)
    for row, text in enumerate(sentences):
        hidden, _ = hidden_of(encoder_subject, text)
        np.testing.assert_allclose(mean[row], hidden.mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(cls[row], hidden[0], atol=1e-5)
        np.testing.assert_allclose(first_layer[row], hidden_of(encoder_subject, text, layer=0)[0].mean(axis=0),
                                   atol=1e-5)
    assert not np.allclose(mean, first_layer)


def test_embedding_batch_and_order_invariance(encoder_subject, sentences):
    baseline = encoder_subject.embed(sentences)
    np.testing.assert_allclose(encoder_subject.embed(sentences, batch_size=1), baseline, atol=1e-5)
    np.testing.assert_allclose(encoder_subject.embed(sentences[::-1])[::-1], baseline, atol=1e-5)
    assert encoder_subject.embed([]).shape == (0, baseline.shape[1])


def test_bad_pooling_and_layer(encoder_subject):
    with pytest.raises(ValueError, match="pooling"):
        encoder_subject.embed(["he"], pooling="max")
    with pytest.raises(ValueError, match="layer must be in"):
        encoder_subject.embed(["he"], layer=7)


def test_embed_words_averages_the_sub_tokens_of_the_span(encoder_subject):
    texts = ["unbelievably the engineer played", "my kind neighbour fixed the bridge"]
    spans = [(17, 25), (8, 17)]  # "engineer", "neighbour"
    assert [text[a:b] for text, (a, b) in zip(texts, spans)] == ["engineer", "neighbour"]
    words = encoder_subject.embed_words(texts, spans, batch_size=1)
    for row, (text, (start, end)) in enumerate(zip(texts, spans)):
        hidden, encoded = hidden_of(encoder_subject, text)
        tokens = [index for index in range(encoded["input_ids"].shape[1])
                  if encoded.token_to_chars(index) is not None
                  and encoded.token_to_chars(index).start >= start and encoded.token_to_chars(index).end <= end]
        assert len(tokens) >= 2  # the tiny vocabulary splits these words into several pieces
        np.testing.assert_allclose(words[row], hidden[tokens].mean(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="one span per text"):
        encoder_subject.embed_words(texts, spans[:1])
    with pytest.raises(ValueError, match="not a span"):
        encoder_subject.embed_words(texts[:1], [(5, 200)])
    with pytest.raises(ValueError, match="covers no token"):
        encoder_subject.embed_words(["a  b"], [(1, 3)])


def test_encode_and_word_alignment(encoder_subject):
    text = "Unbelievably, the engineer!"
    alignment = encoder_subject.word_alignment(text)
    assert [word for word, _ in alignment] == ["Unbelievably", ",", "the", "engineer", "!"]
    tokens = encoder_subject.tokenizer(text)["input_ids"]
    flat = [index for _, indices in alignment for index in indices]
    assert flat == list(range(1, len(tokens) - 1))  # every non-special token, in order, once
    encoded = encoder_subject.encode([text, "he"])
    assert set(encoded) >= {"input_ids", "attention_mask", "offset_mapping"}
    assert encoded["input_ids"].shape == encoded["attention_mask"].shape
    assert encoded["attention_mask"][1].sum().item() == 3


def test_minilm_sentence_embeddings_rank_paraphrases_first():
    """Known answer on the real all-MiniLM-L6-v2: a paraphrase is nearer than an unrelated sentence."""
    subject = ModelUnderAudit.from_pretrained(minilm_path(), device="cpu")
    vectors = subject.embed(["A man is playing a guitar.", "Someone plays the guitar.",
                             "The stock market fell sharply today."])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    paraphrase, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert paraphrase > 0.6 and unrelated < 0.3
    doctor = subject.embed_words(["the doctor arrived"], [(4, 10)])
    assert doctor.shape == (1, 384) and np.isfinite(doctor).all()
    assert [word for word, _ in subject.word_alignment("The doctor's bag")] == ["The", "doctor", "'", "s", "bag"]
