"""save_pretrained → Auto*.from_pretrained (after `import audit`) gives identical logits, as safetensors."""

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

from audit.model import (
    AuditTransformerConfig,
    AuditTransformerForMaskedLM,
    AuditTransformerForSequenceClassification,
    AuditTransformerModel,
)


def test_masked_lm_round_trip_keeps_logits_and_tying(tmp_path, config, batch):
    ids, mask = batch
    model = AuditTransformerForMaskedLM(config).eval()
    with torch.no_grad():  # make the decoder bias non-trivial so a lost bias would show
        model.lm_head.decoder.bias.normal_()
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and "config.json" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), AuditTransformerConfig)

    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is AuditTransformerForMaskedLM
    assert loaded.lm_head.decoder.weight is loaded.get_input_embeddings().weight
    torch.testing.assert_close(
        loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits, rtol=0, atol=0
    )
    encoder = AutoModel.from_pretrained(tmp_path).eval()
    assert type(encoder) is AuditTransformerModel
    torch.testing.assert_close(
        encoder(ids, attention_mask=mask).last_hidden_state,
        model.transformer(ids, attention_mask=mask).last_hidden_state,
        rtol=0,
        atol=0,
    )


def test_classifier_round_trip_keeps_logits(tmp_path, config, batch):
    ids, mask = batch
    model = AuditTransformerForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is AuditTransformerForSequenceClassification
    assert loaded.config.num_labels == 3
    torch.testing.assert_close(
        loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits, rtol=0, atol=0
    )


def test_classifier_from_masked_lm_checkpoint_reuses_encoder(tmp_path, config, batch):
    ids, mask = batch
    mlm = AuditTransformerForMaskedLM(config).eval()
    mlm.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    assert "transformer.embeddings.word_embeddings.weight" in stored
    clf = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2).eval()
    torch.testing.assert_close(
        clf.transformer(ids, attention_mask=mask).last_hidden_state,
        mlm.transformer(ids, attention_mask=mask).last_hidden_state,
        rtol=0,
        atol=0,
    )
    assert clf.classifier.out_proj.out_features == 2
