"""Batched pseudo-log-likelihood against the one-forward-per-masked-token reference (Salazar et al., 2020)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from audit.subject import ModelUnderAudit, SequenceTooLongError, full_vocabulary_scorer, masked_scorer_for


def _inputs(subject, sentences):
    ids = [subject.tokenizer(text)["input_ids"] for text in sentences]
    positions = [list(range(1, len(sequence) - 1)) for sequence in ids]  # every non-special token
    return ids, positions


def plain_loop(model, ids, positions, mask_id):
    """Independent reference: batch 1, one forward per masked token, full-vocabulary head."""
    out = []
    with torch.no_grad():
        for sequence, sequence_positions in zip(ids, positions):
            values = []
            for position in sequence_positions:
                masked = list(sequence)
                masked[position] = mask_id
                logits = model(input_ids=torch.tensor([masked])).logits[0, position]
                values.append(torch.log_softmax(logits, dim=-1)[sequence[position]].item())
            out.append(np.array(values))
    return out


@pytest.fixture(scope="module", params=["bert_mlm", "distil_mlm", "ours_mlm"])
def mlm_subject(request, model_dirs):
    return ModelUnderAudit.from_pretrained(model_dirs[request.param], device="cpu")


def test_batched_pll_equals_the_plain_loop(mlm_subject, sentences):
    ids, positions = _inputs(mlm_subject, [text for text in sentences if len(text) < 40])  # keeps the loop short
    batched = mlm_subject.pll_scores(ids, positions, batch_size=16)
    reference = plain_loop(mlm_subject.mlm, ids, positions, mlm_subject.tokenizer.mask_token_id)
    for ours, theirs in zip(batched, reference):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    for again, theirs in zip(mlm_subject.pll_scores_reference(ids[:2], positions[:2]), reference):
        np.testing.assert_allclose(again, theirs, atol=1e-6, rtol=0)


def test_sparse_strategy_is_used_and_projects_only_masked_rows(mlm_subject, sentences):
    scorer = masked_scorer_for(mlm_subject.mlm)
    assert scorer.sparse and scorer.name in {"bert-cls", "distilbert-vocab", "shared-masked-copies"}
    projector = mlm_subject.mlm.get_output_embeddings()
    rows = []
    handle = projector.register_forward_hook(lambda module, args, output: rows.append(output.shape))
    try:
        ids, positions = _inputs(mlm_subject, sentences[:1])
        mlm_subject.pll_scores(ids, positions)
    finally:
        handle.remove()
    assert rows == [torch.Size([len(positions[0]), mlm_subject.mlm.config.vocab_size])]


def test_all_masked_copies_of_a_sentence_share_one_forward(mlm_subject, sentences):
    calls = []  # the vocabulary projection runs once per forward pass, whichever scoring path is taken
    handle = mlm_subject.mlm.get_output_embeddings().register_forward_hook(lambda *_: calls.append(1))
    try:
        ids, positions = _inputs(mlm_subject, sentences)
        mlm_subject.pll_scores(ids, positions, batch_size=1000)
    finally:
        handle.remove()
    assert len(calls) == len({len(sequence) for sequence in ids})  # one pass per distinct length


def test_full_vocabulary_fallback_agrees(mlm_subject, sentences):
    ids, positions = _inputs(mlm_subject, sentences)
    sparse = mlm_subject.pll_scores(ids, positions)
    mlm_subject._mlm_scorer = full_vocabulary_scorer(mlm_subject.mlm)
    try:
        full = mlm_subject.pll_scores(ids, positions)
    finally:
        mlm_subject._mlm_scorer = masked_scorer_for(mlm_subject.mlm)
    for a, b in zip(sparse, full):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch_size", [2, 1000])
def test_batch_size_invariance(mlm_subject, sentences, batch_size):
    ids, positions = _inputs(mlm_subject, sentences)
    baseline = mlm_subject.pll_scores(ids, positions, batch_size=64)
    for a, b in zip(baseline, mlm_subject.pll_scores(ids, positions, batch_size=batch_size)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_order_invariance_and_subset_positions(mlm_subject, sentences):
    ids, positions = _inputs(mlm_subject, sentences)
    baseline = mlm_subject.pll_scores(ids, positions)
    order = list(range(len(ids)))
    random.Random(3).shuffle(order)
    reversed_positions = [positions[i][::-1] for i in order]
    shuffled = mlm_subject.pll_scores([ids[i] for i in order], reversed_positions)
    for new_index, old_index in enumerate(order):
        np.testing.assert_allclose(shuffled[new_index], baseline[old_index][::-1], atol=1e-5, rtol=0)
    # a subset of positions scores the same values as in the full run
    subset = mlm_subject.pll_scores([ids[0]], [positions[0][::2]])[0]
    np.testing.assert_allclose(subset, baseline[0][::2], atol=1e-5, rtol=0)


def test_scores_follow_weights_changed_between_calls(model_dirs, sentences):
    """Our model's scorer (MaskedCopyScorer) keeps no copy of the weights, so a call after the weights changed in
    place scores the changed model."""
    subject = ModelUnderAudit.from_pretrained(model_dirs["ours_mlm"], device="cpu")
    ids, positions = _inputs(subject, sentences[:3])
    before = subject.pll_scores(ids, positions)
    with torch.no_grad():
        subject.mlm.transformer.layers[0].feed_forward.intermediate.weight.mul_(3.0)
    after = subject.pll_scores(ids, positions)
    assert max(np.abs(a - b).max() for a, b in zip(before, after)) > 1e-3
    reference = plain_loop(subject.mlm, ids, positions, subject.tokenizer.mask_token_id)
    for ours, theirs in zip(after, reference):
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def test_deterministic_across_loads(model_dirs, sentences):
    first = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cpu")
    second = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cpu")
    ids, positions = _inputs(first, sentences)
    for a, b in zip(first.pll_scores(ids, positions), second.pll_scores(ids, positions)):
        assert a.tolist() == b.tolist()


def test_planted_preference_is_recovered(model_dirs, sentences):
    """Known answer: push the output bias of one token up; only positions holding it become near-certain."""
    subject = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cpu")
    favoured = subject.tokenizer.convert_tokens_to_ids("the")
    with torch.no_grad():
        subject.mlm.cls.predictions.bias[favoured] += 40.0
    ids, positions = _inputs(subject, sentences)
    for sequence, sequence_positions, scores in zip(ids, positions, subject.pll_scores(ids, positions)):
        for position, score in zip(sequence_positions, scores):
            if sequence[position] == favoured:
                assert score > -1e-3
            else:
                assert score < -30.0


def test_too_long_sequences_raise_and_fits_tells(model_dirs):
    subject = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cpu", max_length=8)
    short, long = [2, 10, 11, 3], [2] + [10] * 8 + [3]
    assert subject.fits(short) and not subject.fits(long) and not subject.fits([])
    with pytest.raises(SequenceTooLongError, match="token_ids\\[1\\] has 10 tokens, more than max_length 8"):
        subject.pll_scores([short, long], [[1], [1]])


def test_bad_inputs_are_named(model_dirs):
    subject = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cpu")
    with pytest.raises(ValueError, match="positions has 1"):
        subject.pll_scores([[2, 10, 3], [2, 11, 3]], [[1]])
    with pytest.raises(ValueError, match="outside \\[0, 3\\)"):
        subject.pll_scores([[2, 10, 3]], [[3]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        subject.pll_scores([[2, 999, 3]], [[1]])
    with pytest.raises(ValueError, match="batch_size"):
        subject.pll_scores([[2, 10, 3]], [[1]], batch_size=0)
    assert subject.pll_scores([[2, 10, 3]], [[]])[0].shape == (0,)
