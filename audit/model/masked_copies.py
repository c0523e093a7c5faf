"""Masked-LM logits for every single-token masked copy of a sentence, without recomputing what copies share.

Pseudo-log-likelihood scoring (Salazar et al., ACL 2020, "Masked Language Model Scoring"; Wang & Cho, 2019) runs
the encoder once per masked copy: copy (s, p) is sentence s with token p replaced by [MASK], and only the logits at
p are read. A plain batched forward of the copies computes every block at every position of every copy. Two parts
of that work are shared between copies or provably unused, and this module does them once or not at all; the
results are the plain forward's logits up to floating-point summation order (tests hold them to it within 1e-5):

- **the first block up to its attention.** Before the first attention a copy differs from its sentence in one row
  only, the [MASK] embedding at p, so its LayerNormed inputs and its queries, keys and values are the sentence's
  with row p replaced by [MASK]'s. The embeddings, the LayerNorm and the Q/K/V projection run once per sentence
  and once for [MASK] at each position; per copy, only the rows are gathered. From the first attention on, every
  row of a copy depends on its [MASK], so the rest of the network runs per copy.
- **the last block outside the masked position.** Only the hidden state at p reaches the vocabulary head, so in
  the last block the other positions contribute their keys and values and nothing else: the query, the output
  projection, the feed-forward network, the final LayerNorm and the head run at p alone, and with one query the
  keys and values need not be projected at all (``_block_at_position``).

Everything between runs the model's own ``TransformerBlock`` on the copies. For the `small` preset's size (4
blocks, hidden 256) on CrowS-Pairs (~20 tokens a sentence) the first part removes about 7% of the per-copy
matrix-multiply work and the second about a quarter; further rewrites (score tables for the first attention, W_o
folded into its values, in-place residual products into reused buffers, pre-transposed weights, oneDNN's fused
linear + GELU) remove a few percent at most and did not show a 5% gain in paired, alternating timings on a
shared 2-core CPU, so they are not used. The rest of the speed-up over the textbook loop (one batch-1 forward
per masked token, with the full T × vocabulary head) comes from batching the copies of many equal-length
sentences (``audit.subject.ModelUnderAudit.pll_scores``).
"""

from __future__ import annotations

import math

import torch

from audit.model.attention import MultiHeadSelfAttention
from audit.model.modeling import AuditTransformerForMaskedLM, TransformerBlock


class MaskedCopyScorer:
    """Scores masked copies of sentences (``__call__``) with the model's current weights."""

    def __init__(self, model: AuditTransformerForMaskedLM):
        self.model = model

    @torch.no_grad()
    def __call__(
        self,
        sentence_ids: torch.Tensor,
        copy_sentence: torch.Tensor,
        copy_position: torch.Tensor,
        mask_token_id: int,
    ) -> torch.Tensor:
        """Vocabulary logits (C, V) of masked copies, row c = sentence ``copy_sentence[c]`` with its token at
        ``copy_position[c]`` replaced by ``mask_token_id``, read at that position.

        sentence_ids: (N, T), equal-length, unpadded sentences. Inference only: the model must be in eval mode
        (dropout would make copies differ by more than their mask).
        """
        if self.model.training:
            raise RuntimeError("masked-copy scoring is an inference path; call model.eval() first")
        encoder = self.model.transformer
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
            normed = one_row_replaced(first.attention_norm(sentence_embeddings),
                                      first.attention_norm(mask_embeddings))
            return self._logits(_block_at_position(first, x, normed, rows, copy_position))
        x = x + _first_attention(first, sentence_embeddings, mask_embeddings, one_row_replaced)
        x = x + first.feed_forward(first.feed_forward_norm(x))
        *middle, last = rest
        for block in middle:
            x, _ = block(x, None, False)
        return self._logits(_block_at_position(last, x, last.attention_norm(x), rows, copy_position))

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The MLM head on the last block's output (C, H) at the masked positions -> (C, V)."""
        return self.model.lm_head(self.model.transformer.final_norm(hidden))


def _first_attention(block: TransformerBlock, sentence_embeddings: torch.Tensor, mask_embeddings: torch.Tensor,
                     one_row_replaced) -> torch.Tensor:
    """The first block's attention output (C, T, H) of every copy, its Q/K/V projected per sentence and for [MASK]
    at each position, then gathered per copy by ``one_row_replaced``."""
    attention: MultiHeadSelfAttention = block.attention
    qkv = one_row_replaced(attention.qkv(block.attention_norm(sentence_embeddings)),
                           attention.qkv(block.attention_norm(mask_embeddings)))  # (C, T, 3H)
    context, _ = attention.context(qkv, None)
    return attention.output(context)


def _block_at_position(block: TransformerBlock, x: torch.Tensor, normed: torch.Tensor, rows: torch.Tensor,
                       position: torch.Tensor) -> torch.Tensor:
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
    query_weight, key_weight, value_weight = attention.qkv.weight.view(3, heads, head_dim, hidden)  # (h, d_k, H)
    query_bias, _, value_bias = attention.qkv.bias.view(3, heads, head_dim)
    query = torch.einsum("ci,hdi->chd", normed[rows, position], query_weight) + query_bias  # (C, h, d_k)
    query_in_input_space = torch.einsum("chd,hdi->chi", query, key_weight)  # (C, h, H)
    scores = torch.bmm(query_in_input_space, normed.transpose(1, 2)) / math.sqrt(head_dim)  # (C, h, T)
    pooled = torch.bmm(torch.softmax(scores, dim=-1), normed)  # (C, h, H): attention-weighted inputs
    context = torch.einsum("chi,hdi->chd", pooled, value_weight) + value_bias
    y = x[rows, position] + attention.output(context.reshape(copies, hidden))
    return y + block.feed_forward(block.feed_forward_norm(y))
