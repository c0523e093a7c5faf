"""Masked-LM logits for every single-token masked copy of a sentence, without recomputing what copies share.

Pseudo-log-likelihood scoring (Salazar et al., ACL 2020, "Masked Language Model Scoring"; Wang & Cho, 2019) runs
the encoder once per masked copy: copy (s, p) is sentence s with token p replaced by [MASK], and only the logits at
p are read. A plain batched forward of the copies computes, per copy and layer, the full block at every position.
Two parts of that work are provably redundant, and this module skips them — the results are the same logits up
to floating-point summation order (tests hold them to the plain forward within 1e-5):

- **first block, up to the attention scores.** Before the first attention, a copy differs from its sentence in
  one row only (the [MASK] embedding at p). The embeddings, the first LayerNorm and the Q/K/V projections are
  therefore computed once per sentence and once for [MASK] at each position, and each copy's Q/K/V is assembled
  by replacing one row. (From the first attention on, every row of a copy depends on the [MASK], so the
  remaining blocks run per copy.)
- **last block, outside the masked position.** Only the hidden state at p reaches the vocabulary head. In the
  last block, the other positions contribute their keys and values and nothing else, so the query, the output
  projection, the feed-forward network, the final LayerNorm and the head run at p alone — and since there is one
  query, the keys and values are never projected at all: the query is moved into the input space instead
  (see ``_block_at_position``).

For the `small` preset (4 blocks) this removes about a third of the per-copy matrix-multiply work (what is
left: the output projection and feed-forward network of the first block, and the middle blocks in full); the rest of
the speed-up over the textbook loop (one batch-1 forward per masked token with the full T × vocabulary head)
comes from batching the copies of many equal-length sentences (``audit.subject.ModelUnderAudit.pll_scores``).
"""

from __future__ import annotations

import math

import torch

from audit.model.attention import MultiHeadSelfAttention
from audit.model.modeling import AuditTransformerForMaskedLM


def masked_copy_logits(
    model: AuditTransformerForMaskedLM,
    sentence_ids: torch.Tensor,
    copy_sentence: torch.Tensor,
    copy_position: torch.Tensor,
    mask_token_id: int,
) -> torch.Tensor:
    """Vocabulary logits (C, V) of masked copies, row c = sentence ``copy_sentence[c]`` with its token at
    ``copy_position[c]`` replaced by ``mask_token_id``, read at that position.

    sentence_ids: (N, T), equal-length, unpadded sentences. Inference only (the model must be in eval mode:
    dropout would make copies differ by more than their mask).
    """
    if model.training:
        raise RuntimeError("masked_copy_logits is an inference path; call model.eval() first")
    encoder = model.transformer
    length = sentence_ids.shape[1]
    rows = torch.arange(copy_sentence.numel(), device=sentence_ids.device)

    def one_row_replaced(per_sentence: torch.Tensor, per_position: torch.Tensor) -> torch.Tensor:
        """(N, T, D) per sentence and (T, D) for [MASK] at each position -> (C, T, D) per copy."""
        copies = per_sentence[copy_sentence]
        copies[rows, copy_position] = per_position[copy_position]
        return copies

    mask_ids = torch.full((1, length), mask_token_id, dtype=sentence_ids.dtype, device=sentence_ids.device)
    sentence_embeddings = encoder.embeddings(sentence_ids, None)  # (N, T, H)
    mask_embeddings = encoder.embeddings(mask_ids, None)[0]  # (T, H): [MASK] at every position
    x = one_row_replaced(sentence_embeddings, mask_embeddings)  # (C, T, H)

    first, *rest = encoder.layers
    if not rest:  # a one-block encoder: its first block is also its last
        normed = one_row_replaced(first.attention_norm(sentence_embeddings), first.attention_norm(mask_embeddings))
        return model.lm_head(encoder.final_norm(_block_at_position(first, x, normed, rows, copy_position)))
    qkv = one_row_replaced(
        first.attention.project_qkv(first.attention_norm(sentence_embeddings)),
        first.attention.project_qkv(first.attention_norm(mask_embeddings)),
    )  # (C, T, 3H)
    x = x + first.attention.attend(qkv, None)[0]
    x = x + first.feed_forward(first.feed_forward_norm(x))
    *middle, last = rest
    for block in middle:
        x, _ = block(x, None, False)
    x = _block_at_position(last, x, last.attention_norm(x), rows, copy_position)
    return model.lm_head(encoder.final_norm(x))  # (C, V)


def _block_at_position(block, x: torch.Tensor, normed: torch.Tensor, rows: torch.Tensor, position: torch.Tensor
                       ) -> torch.Tensor:
    """The block's output (C, H) at ``position`` only. x: the block's input (C, T, H); normed: its attention
    LayerNorm applied, (C, T, H).

    With a single query per copy the keys and values need not be projected at every position: per head,
    q·(W_k n_j + b_k) = (W_kᵀ q)·n_j + q·b_k, whose last term is the same for every key and cancels in the
    softmax, and Σ_j p_j (W_v n_j + b_v) = W_v (Σ_j p_j n_j) + b_v because the p_j sum to 1. That turns two
    (T × H × H) projections per copy into two (H × H) ones and two (heads × T × H) products.
    """
    attention: MultiHeadSelfAttention = block.attention
    copies, _, hidden = normed.shape
    heads, head_dim = attention.num_heads, attention.head_dim
    query = attention.query(normed[rows, position]).view(copies, heads, head_dim)  # (C, h, d_k)
    key_weight = attention.key.weight.view(heads, head_dim, hidden)  # (h, d_k, H)
    value_weight = attention.value.weight.view(heads, head_dim, hidden)
    query_in_input_space = torch.einsum("chd,hdi->chi", query, key_weight)  # (C, h, H)
    scores = torch.bmm(query_in_input_space, normed.transpose(1, 2)) / math.sqrt(head_dim)  # (C, h, T)
    pooled = torch.bmm(torch.softmax(scores, dim=-1), normed)  # (C, h, H): attention-weighted inputs
    context = torch.einsum("chi,hdi->chd", pooled, value_weight) + attention.value.bias.view(heads, head_dim)
    y = x[rows, position] + attention.output(context.reshape(copies, hidden))
    return y + block.feed_forward(block.feed_forward_norm(y))

