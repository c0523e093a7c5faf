"""The shared-work masked-copy path equals a plain forward over materialised masked copies."""

from __future__ import annotations

import pytest
import torch

from audit.model import AuditTransformerConfig, AuditTransformerForMaskedLM
from audit.model.masked_copies import MaskedCopyScorer

MASK_ID = 4


def _model(layers: int) -> AuditTransformerForMaskedLM:
    torch.manual_seed(layers)
    config = AuditTransformerConfig(vocab_size=99, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                                    intermediate_size=64, max_position_embeddings=32, pad_token_id=0)
    model = AuditTransformerForMaskedLM(config).eval()
    with torch.no_grad():  # weights far from the 0.02 init, so that attention is peaked and errors would show
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return model


def _plain(model, sentence_ids, copy_sentence, copy_position):
    copies = sentence_ids[copy_sentence].clone()
    rows = torch.arange(len(copy_sentence))
    copies[rows, copy_position] = MASK_ID
    return model(input_ids=copies).logits[rows, copy_position]  # full (C, T, V) head, read at the mask


@pytest.mark.parametrize("layers", [1, 2, 4])
@pytest.mark.parametrize("length", [7, 11])
def test_equals_the_plain_forward_of_each_copy(layers, length):
    model = _model(layers)
    generator = torch.Generator().manual_seed(0)
    sentence_ids = torch.randint(5, 99, (3, length), generator=generator)
    # every position of sentence 0 (incl. the ends), a few of sentence 2, none of sentence 1, one repeated, and
    # one more of sentence 0 between those of sentence 2 (a sentence's copies need not be consecutive)
    copy_sentence = torch.tensor([0] * length + [2, 2, 0, 2])
    copy_position = torch.tensor(list(range(length)) + [5, 1, 3, 5])
    with torch.inference_mode():
        plain = _plain(model, sentence_ids, copy_sentence, copy_position)
    with torch.inference_mode():
        ours = MaskedCopyScorer(model)(sentence_ids, copy_sentence, copy_position, MASK_ID)
    assert ours.shape == (length + 4, 99)
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=0)


def test_refuses_training_mode_even_when_prepared_in_eval_mode():
    model = _model(2)
    scorer = MaskedCopyScorer(model)
    model.train()
    with pytest.raises(RuntimeError, match="eval"):
        scorer(torch.randint(5, 99, (1, 4)), torch.tensor([0]), torch.tensor([1]), MASK_ID)


def test_runs_with_gradients_enabled():
    """Called outside inference mode, it returns the plain forward's logits, without a gradient."""
    model = _model(3)
    sentence_ids = torch.randint(5, 99, (2, 7), generator=torch.Generator().manual_seed(1))
    copy_sentence, copy_position = torch.tensor([0, 0, 1]), torch.tensor([2, 5, 3])
    ours = MaskedCopyScorer(model)(sentence_ids, copy_sentence, copy_position, MASK_ID)
    assert not ours.requires_grad
    with torch.inference_mode():
        plain = _plain(model, sentence_ids, copy_sentence, copy_position)
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=0)


def test_one_scorer_scores_calls_of_any_shape_with_the_current_weights():
    """A scorer keeps nothing between calls: each call of a new shape, and one after the weights changed in place,
    gives the plain forward's logits."""
    model = _model(4)
    scorer = MaskedCopyScorer(model)
    generator = torch.Generator().manual_seed(2)
    for sentences, length in ((3, 9), (1, 5), (2, 14), (3, 9)):
        sentence_ids = torch.randint(5, 99, (sentences, length), generator=generator)
        copy_sentence = torch.arange(sentences).repeat_interleave(length - 2)
        copy_position = torch.arange(1, length - 1).repeat(sentences)
        if length == 14:
            with torch.no_grad():
                model.transformer.layers[1].feed_forward.intermediate.weight.mul_(2.0)
        ours = scorer(sentence_ids, copy_sentence, copy_position, MASK_ID)
        with torch.inference_mode():
            plain = _plain(model, sentence_ids, copy_sentence, copy_position)
        torch.testing.assert_close(ours, plain, atol=1e-5, rtol=0)
