"""Masked-only MLM loss, learnability (overfitting 8 sentences) and seeded initialisation."""

import torch
import torch.nn.functional as F

from audit.model import AuditTransformerForMaskedLM, AuditTransformerForSequenceClassification

MASK_ID = 4


def _labels_at(ids: torch.Tensor, positions: list[tuple[int, int]]) -> torch.Tensor:
    labels = torch.full_like(ids, -100)
    for row, col in positions:
        labels[row, col] = ids[row, col]
    return labels


def test_masked_only_loss_equals_full_vocab_cross_entropy(config, batch):
    ids, mask = batch
    model = AuditTransformerForMaskedLM(config).eval()
    labels = _labels_at(ids, [(0, 1), (0, 12), (1, 3), (2, 0), (2, 4)])
    out = model(ids, attention_mask=mask, labels=labels)
    full_logits = model(ids, attention_mask=mask).logits  # (B, T, V)
    reference = F.cross_entropy(full_logits.view(-1, 99), labels.view(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.logits, full_logits[labels != -100], rtol=0, atol=1e-6)
    hidden = model.transformer(ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(model.masked_logits(hidden, labels != -100), out.logits, rtol=0, atol=0)


def test_no_scored_position_gives_zero_loss_with_gradient(config, batch):
    ids, mask = batch
    model = AuditTransformerForMaskedLM(config)
    out = model(ids, attention_mask=mask, labels=torch.full_like(ids, -100))
    assert out.logits.shape == (0, 99) and out.loss.item() == 0.0
    out.loss.backward()  # must not raise


def test_tiny_model_overfits_eight_sentences(make_config, single_thread):
    torch.manual_seed(0)
    model = AuditTransformerForMaskedLM(
        make_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    )
    gen = torch.Generator().manual_seed(3)
    sentences = torch.randint(5, 99, (8, 12), generator=gen)
    labels = torch.full_like(sentences, -100)
    inputs = sentences.clone()
    for row in range(8):  # two fixed masked positions per sentence
        for col in (2 + row % 5, 8 + row % 3):
            labels[row, col] = sentences[row, col]
            inputs[row, col] = MASK_ID
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    initial = model(inputs, labels=labels).loss.item()
    for _ in range(200):
        loss = model(inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = model.eval()(inputs, labels=labels)
    assert initial > 4.0  # ≈ ln(99) at init
    assert final.loss.item() < 0.05
    assert torch.equal(final.logits.argmax(-1), labels[labels != -100])


def test_same_seed_gives_bit_identical_weights_and_different_seed_does_not(config):
    def weights(seed, cls):
        torch.manual_seed(seed)
        return cls(config).state_dict()

    for cls in (AuditTransformerForMaskedLM, AuditTransformerForSequenceClassification):
        first, second, other = weights(11, cls), weights(11, cls), weights(12, cls)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)
        assert not torch.equal(
            first["transformer.layers.0.attention.qkv.weight"],
            other["transformer.layers.0.attention.qkv.weight"],
        )
