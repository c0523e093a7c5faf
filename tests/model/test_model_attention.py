"""Attention: the SDPA and explicit paths agree, weights are proper distributions, padding is inert."""

import math

import torch

from audit.model import AuditTransformerConfig, AuditTransformerModel
from audit.model.attention import explicit_attention, key_padding_mask, sdpa_attention


def _reference_attention(q, k, v, keep):
    """Loop-per-query textbook reference: softmax over the kept keys only, weighted sum of V."""
    b, h, _, d = q.shape
    out = torch.zeros_like(q)
    for i in range(b):
        kept = keep[i].nonzero().flatten()
        for j in range(h):
            scores = q[i, j] @ k[i, j, kept].T / math.sqrt(d)  # (T, n_kept)
            out[i, j] = torch.softmax(scores, dim=-1) @ v[i, j, kept]
    return out


def test_explicit_and_sdpa_agree_with_reference_formula():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    attention_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    mask = key_padding_mask(attention_mask)
    explicit, weights = explicit_attention(q, k, v, mask)
    fused = sdpa_attention(q, k, v, mask)
    reference = _reference_attention(q, k, v, attention_mask.bool())
    torch.testing.assert_close(explicit, reference, rtol=0, atol=1e-10)
    torch.testing.assert_close(fused, reference, rtol=0, atol=1e-10)
    assert weights.shape == (2, 3, 7, 7)


def test_model_sdpa_and_eager_paths_agree(config, batch, make_config):
    ids, mask = batch
    torch.manual_seed(0)
    model = AuditTransformerModel(config).eval()
    assert model.config._attn_implementation == "sdpa"
    fast = model(ids, attention_mask=mask).last_hidden_state
    with_weights = model(ids, attention_mask=mask, output_attentions=True).last_hidden_state
    torch.manual_seed(0)
    eager = AuditTransformerModel(make_config(attn_implementation="eager")).eval()
    eager_out = eager(ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert (fast[real] - with_weights[real]).abs().max() <= 1e-5
    assert (fast[real] - eager_out[real]).abs().max() <= 1e-5


def test_attention_rows_sum_to_one_with_zero_weight_on_padded_keys(config, batch):
    ids, mask = batch
    model = AuditTransformerModel(config).eval()
    attentions = model(ids, attention_mask=mask, output_attentions=True).attentions
    padded_keys = ~mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    for weights in attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), rtol=0, atol=1e-6)
        assert torch.all(weights.masked_select(padded_keys.expand_as(weights)) == 0)
        assert torch.all(weights >= 0)


def test_appending_padding_leaves_real_tokens_unchanged(config):
    torch.manual_seed(1)
    model = AuditTransformerModel(config).eval()
    ids = torch.randint(1, 99, (2, 6))
    short = model(ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    padded_ids = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    padded_mask = torch.cat([torch.ones(2, 6), torch.zeros(2, 5)], dim=1).long()
    for output_attentions in (False, True):
        long = model(padded_ids, attention_mask=padded_mask, output_attentions=output_attentions)
        assert (long.last_hidden_state[:, :6] - short).abs().max() <= 1e-5


def test_fully_padded_sequence_gives_finite_outputs(config):
    model = AuditTransformerModel(config).eval()
    ids = torch.tensor([[5, 6, 7, 8], [0, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]])
    for output_attentions in (False, True):
        out = model(ids, attention_mask=mask, output_attentions=output_attentions).last_hidden_state
        assert torch.isfinite(out).all()


def test_eager_is_a_config_choice():
    cfg = AuditTransformerConfig(
        vocab_size=99, hidden_size=32, num_attention_heads=4, attn_implementation="eager"
    )
    assert cfg._attn_implementation == "eager"


def test_attention_module_matches_textbook_projections():
    """Output = W_o · concat_h softmax(Q_h K_hᵀ/√d_k) V_h with Q = x W_q, K = x W_k, V = x W_v (separately)."""
    from audit.model.attention import MultiHeadSelfAttention

    torch.manual_seed(2)
    attention = MultiHeadSelfAttention(hidden_size=32, num_heads=4, dropout_prob=0.0).eval()
    x = torch.randn(2, 5, 32)
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    # The fused projection's rows are [W_q; W_k; W_v]: each applied separately, as in the paper.
    weights, biases = attention.qkv.weight.chunk(3), attention.qkv.bias.chunk(3)
    q, k, v = (
        torch.nn.functional.linear(x, weight, bias).view(2, 5, 4, 8).transpose(1, 2)
        for weight, bias in zip(weights, biases, strict=True)
    )
    context = _reference_attention(q, k, v, attention_mask.bool())  # (B, h, T, d_k)
    expected = attention.output(context.transpose(1, 2).reshape(2, 5, 32))
    for explicit in (False, True):
        out, _ = attention(x, key_padding_mask(attention_mask), explicit=explicit)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_bf16_fast_path_matches_fp32_sdpa_within_bf16_precision(config, batch):
    """In bf16 on CPU the fast path is the written-out formula; it must still compute the same function."""
    ids, mask = batch
    model = AuditTransformerModel(config).eval()
    reference = model(ids, attention_mask=mask).last_hidden_state
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids, attention_mask=mask).last_hidden_state.float()
    real = mask.bool()
    assert (
        low[real] - reference[real]
    ).abs().max() < 0.1  # bf16 keeps ~3 significant digits; outputs are O(1)
    assert torch.isfinite(low).all()
