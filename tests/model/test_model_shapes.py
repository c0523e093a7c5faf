"""Output shapes and input handling of the encoder and its heads, at odd sizes."""

import pytest
import torch

from audit.model import (
    AuditTransformerForMaskedLM,
    AuditTransformerForSequenceClassification,
    AuditTransformerModel,
    ConfigError,
    ModelInputError,
)


def test_encoder_shapes_hidden_states_and_attentions(config, batch):
    ids, mask = batch
    model = AuditTransformerModel(config).eval()
    out = model(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (3, 13, 32)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert all(h.shape == (3, 13, 32) for h in out.hidden_states)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert len(out.attentions) == config.num_hidden_layers
    assert all(a.shape == (3, 4, 13, 13) for a in out.attentions)
    plain = model(ids, attention_mask=mask)
    assert plain.hidden_states is None and plain.attentions is None


def test_mlm_logits_shape_without_and_with_labels(config, batch):
    ids, mask = batch
    model = AuditTransformerForMaskedLM(config).eval()
    assert model(ids, attention_mask=mask).logits.shape == (3, 13, 99)
    labels = torch.full_like(ids, -100)
    labels[0, 2] = 5
    labels[2, 4] = 17
    labels[1, 0] = 98
    out = model(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, 99)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)


def test_classifier_logits_shape_and_loss(config, batch):
    ids, mask = batch
    model = AuditTransformerForSequenceClassification(config).eval()
    out = model(ids, attention_mask=mask, labels=torch.tensor([0, 2, 1]))
    assert out.logits.shape == (3, 3)
    assert torch.isfinite(out.loss)


def test_inputs_embeds_matches_input_ids(config, batch):
    ids, mask = batch
    model = AuditTransformerForSequenceClassification(config).eval()
    embeds = model.get_input_embeddings()(ids)
    assert isinstance(model.get_input_embeddings(), torch.nn.Embedding)
    from_ids = model(ids, attention_mask=mask).logits
    from_embeds = model(inputs_embeds=embeds, attention_mask=mask).logits
    torch.testing.assert_close(from_embeds, from_ids, rtol=0, atol=0)


def test_return_dict_false_gives_tuple(config, batch):
    ids, mask = batch
    model = AuditTransformerModel(config).eval()
    out = model(ids, attention_mask=mask, return_dict=False)
    assert isinstance(out, tuple) and out[0].shape == (3, 13, 32)


def test_bad_inputs_raise_named_errors(config, make_config):
    model = AuditTransformerModel(config).eval()
    with pytest.raises(ModelInputError, match="exactly one"):
        model()
    with pytest.raises(ModelInputError, match="max_position_embeddings"):
        model(torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(ConfigError, match="divisible"):
        make_config(hidden_size=30)
    with pytest.raises(ConfigError, match="vocab_size"):
        make_config(vocab_size=0)
