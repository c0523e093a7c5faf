"""Masked-LM logits for every single-token masked copy of a sentence, without recomputing what copies share.

Pseudo-log-likelihood scoring (Salazar et al., ACL 2020, "Masked Language Model Scoring"; Wang & Cho, 2019) runs
the encoder once per masked copy: copy (s, p) is sentence s with token p replaced by [MASK], and only the logits at
p are read. A plain batched forward of the copies computes, per copy and layer, the full block at every position.
Three parts of that work are shared between copies or provably redundant, and this module does them once or
not at all — the results are the same logits up to floating-point summation order (tests hold them to the plain
forward within 1e-5):

- **first block, up to the attention weights.** Before the first attention, a copy differs from its sentence in
  one row only (the [MASK] embedding at p), so its queries, keys and values are the sentence's with row p
  replaced by [MASK]'s. The embeddings, the first LayerNorm and the Q/K/V projections are therefore computed
  once per sentence and once for [MASK] at each position; so are the attention scores, as four small per-sentence
  tables (sentence or [MASK] query against sentence or [MASK] key), from which each copy's scores are gathered
  (``_first_block_attention_weights``). (From the first attention on, every row of a copy depends on the [MASK],
  so the rest of the network runs per copy.)
- **first block, the output projection.** W_o is linear, so it can be applied to the sentences' values before
  the attention-weighted sum instead of to each copy's context after it (``_add_folded_output_``): per copy that
  replaces a (T × H × H) product with a (T × heads·T × H) one, less work whenever heads·T ≤ H (T ≤ 64 for the
  `small` preset: every CrowS-Pairs sentence). Longer sequences keep the per-copy W_o.
- **last block, outside the masked position.** Only the hidden state at p reaches the vocabulary head. In the
  last block, the other positions contribute their keys and values and nothing else, so the query, the output
  projection, the feed-forward network, the final LayerNorm and the head run at p alone — and since there is one
  query, the keys and values are never projected at all: the query is moved into the input space instead
  (see ``_block_at_position``).

For the `small` preset (4 blocks) this removes about a third of the per-copy matrix-multiply work (what is
left: the feed-forward network of the first block, its folded output projection, and the middle blocks in full);
the rest of the speed-up over the textbook loop (one batch-1 forward per masked token with the full T × vocabulary
head) comes from batching the copies of many equal-length sentences (``audit.subject.ModelUnderAudit.pll_scores``).
Residual connections are accumulated in place (``_add_linear_``): the copies' hidden states are this module's
own tensor, so nothing else sees them change, and at these sizes the saved memory pass is a few percent. For
the same reason the per-copy Q/K/V and feed-forward activations of every block are written into one scratch
buffer allocated per call (``_linear_into``) rather than into new tensors. The weights of the per-copy products
are laid out for them once per scoring pass (``MaskedCopyScorer``), not once per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from audit.model.attention import MultiHeadSelfAttention
from audit.model.modeling import AuditTransformerForMaskedLM, TransformerBlock


@dataclass(frozen=True)
class _Product:
    """The affine map x ↦ x Wᵀ + b of one linear layer, with Wᵀ stored as a contiguous (in, out) matrix.

    At the masked-copies shapes (~2,000 rows, hidden 256, 2 threads) MKL's sgemm ran 1-5% faster on a plain right
    operand than on the transposed view of ``nn.Linear``'s (out, in) weight (per product, interleaved runs), with
    bit-identical results.
    """

    weight_t: torch.Tensor  # (in, out)
    bias: torch.Tensor  # (out,)

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor) -> _Product:
        return cls(weight.t().contiguous(), bias)


@dataclass(frozen=True)
class _BlockProducts:
    """A block's per-copy products: [W_q | W_k | W_v] as one map, W_o, and the feed-forward network's W₁ and W₂."""

    qkv: _Product
    output: _Product
    intermediate: _Product
    feed_forward_output: _Product

    @classmethod
    def of(cls, block: TransformerBlock) -> _BlockProducts:
        attention, feed_forward = block.attention, block.feed_forward
        return cls(
            qkv=_Product.of(attention.qkv.weight, attention.qkv.bias),
            output=_Product.of(attention.output.weight, attention.output.bias),
            intermediate=_Product.of(feed_forward.intermediate.weight, feed_forward.intermediate.bias),
            feed_forward_output=_Product.of(feed_forward.output.weight, feed_forward.output.bias),
        )


class MaskedCopyScorer:
    """Scores masked copies (``__call__``) with the model's weights laid out for that once, for many calls.

    Preparing copies the weights of the per-copy products (about 4 MB for the `small` preset), so make one scorer
    per scoring pass over many chunks of copies. It does not see changes made to the model's weights afterwards.
    """

    @torch.no_grad()
    def __init__(self, model: AuditTransformerForMaskedLM):
        self.model = model
        # The last block and the head run at the masked positions only (small products): the model's own layers.
        self.blocks = [_BlockProducts.of(block) for block in model.transformer.layers[:-1]]

    @torch.no_grad()  # inference only; the in-place products and the scratch buffer have no gradient
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
        (dropout would make copies differ by more than their mask), checked here rather than when preparing, since
        the model may be switched between the two.
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
        first_products, *middle_products = self.blocks
        _add_first_block_attention_(
            x, first.attention, first_products.output,
            _linear(first.attention_norm(sentence_embeddings), first_products.qkv),
            _linear(first.attention_norm(mask_embeddings), first_products.qkv),
            copy_sentence, copy_position, rows,
        )
        # One buffer for the widest per-copy intermediate (Q/K/V or the feed-forward activations), reused by every
        # block.
        widest = max(first_products.qkv.weight_t.shape[1], first_products.intermediate.weight_t.shape[1])
        scratch = x.new_empty(x.shape[0] * length * widest)
        _feed_forward_in_place(first, first_products, x, scratch)
        *middle, last = rest
        for block, products in zip(middle, middle_products, strict=True):
            _block_in_place(block, products, x, scratch)
        return self._logits(_block_at_position(last, x, last.attention_norm(x), rows, copy_position))

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The MLM head on the last block's output (C, H) at the masked positions -> (C, V)."""
        return self.model.lm_head(self.model.transformer.final_norm(hidden))


def _add_linear_(residual: torch.Tensor, inputs: torch.Tensor, product: _Product) -> None:
    """residual += inputs Wᵀ + b, in place: (..., H) += (..., K)(K, H) + (H,).

    One matrix multiply accumulating into the residual stream (BLAS beta = 1) instead of writing the product out
    and adding it in a second pass over a freshly allocated tensor.
    """
    flat = residual.view(-1, residual.shape[-1])
    flat.addmm_(inputs.reshape(-1, inputs.shape[-1]), product.weight_t).add_(product.bias)


def _linear(inputs: torch.Tensor, product: _Product) -> torch.Tensor:
    """inputs Wᵀ + b: (..., K) -> (..., out), a new tensor."""
    flat = torch.addmm(product.bias, inputs.reshape(-1, inputs.shape[-1]), product.weight_t)
    return flat.view(*inputs.shape[:-1], -1)


def _linear_into(scratch: torch.Tensor, inputs: torch.Tensor, product: _Product) -> torch.Tensor:
    """inputs Wᵀ + b, (rows, K) -> (rows, out), written into the front of the flat ``scratch`` buffer."""
    flat = inputs.reshape(-1, inputs.shape[-1])
    width = product.weight_t.shape[1]
    out = scratch[: flat.shape[0] * width].view(flat.shape[0], width)
    return torch.mm(flat, product.weight_t, out=out).add_(product.bias)


def _feed_forward_in_place(block: TransformerBlock, products: _BlockProducts, x: torch.Tensor,
                           scratch: torch.Tensor) -> None:
    """x += FFN(LN(x)), the (C·T × intermediate) activations living in ``scratch``.

    The same GELU(x W₁ + b₁) W₂ + b₂ as ``FeedForward`` (exact erf GELU; the logits came out bit-identical in
    our comparisons), computed as a plain product into the reused buffer with bias and GELU applied in place,
    instead of oneDNN's fused linear + GELU, which allocates a new (C·T × intermediate) output in every block.
    At these sizes (~2,000 rows per pass, 2 threads) the buffered form measured 4-6% faster per masked copy
    (paired, alternating runs); in isolation the fused kernel is as fast, so ``FeedForward`` keeps it.
    """
    activations = _linear_into(scratch, block.feed_forward_norm(x), products.intermediate)
    _add_linear_(x, torch.ops.aten.gelu_(activations), products.feed_forward_output)


def _block_in_place(block: TransformerBlock, products: _BlockProducts, x: torch.Tensor,
                    scratch: torch.Tensor) -> None:
    """``TransformerBlock.forward`` at inference, without padding, with both residual adds done in place on x and
    the Q/K/V and feed-forward activations in ``scratch``."""
    qkv = _linear_into(scratch, block.attention_norm(x), products.qkv).view(*x.shape[:2], -1)
    context, _ = block.attention.context(qkv, None)  # a new tensor: scratch is free again
    _add_linear_(x, context, products.output)
    _feed_forward_in_place(block, products, x, scratch)


def _add_first_block_attention_(
    x: torch.Tensor,
    attention: MultiHeadSelfAttention,
    output: _Product,
    qkv_sentences: torch.Tensor,
    qkv_mask: torch.Tensor,
    copy_sentence: torch.Tensor,
    copy_position: torch.Tensor,
    rows: torch.Tensor,
) -> None:
    """x += the first block's attention output (its context through W_o, plus b_o) for every masked copy, in place.

    x: (C, T, H), the copies' embeddings. qkv_sentences: (N, T, 3H), the sentences' projected queries, keys and
    values; qkv_mask: (T, 3H), those of [MASK] at each position. Short sequences (heads · T ≤ H, e.g. T ≤ 64 for
    the `small` preset) take W_o through the weighted sum of values instead of applying it per copy
    (``_add_folded_output_``); longer ones form each copy's context and apply W_o to it.
    """
    probabilities, value, mask_value = _first_block_attention_weights(
        attention, qkv_sentences, qkv_mask, copy_sentence, copy_position, rows)
    copies, heads, length, _ = probabilities.shape
    if heads * length <= x.shape[-1]:
        _add_folded_output_(x, probabilities, value, mask_value, output, copy_sentence, copy_position, rows)
        return
    values = value.contiguous()[copy_sentence]  # (C, h, T, d_k)
    values[rows, :, copy_position] = mask_value[:, copy_position].transpose(0, 1)
    context = torch.matmul(probabilities, values)  # (C, h, T, d_k)
    _add_linear_(x, context.transpose(1, 2).reshape(copies, length, -1), output)


def _first_block_attention_weights(
    attention: MultiHeadSelfAttention,
    qkv_sentences: torch.Tensor,
    qkv_mask: torch.Tensor,
    copy_sentence: torch.Tensor,
    copy_position: torch.Tensor,
    rows: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first block's attention weights (C, h, T, T) of every masked copy, with the sentences' values
    (N, h, T, d_k) and [MASK]'s value at each position (h, T, d_k).

    In copy (s, p) row p of Q, K and V is [MASK]'s, every other row sentence s's. So its score matrix is sentence
    s's (query i · key j), with column p taken from the sentence-query · [MASK]-key table, row p from the
    [MASK]-query · sentence-key table, and entry (p, p) [MASK]'s own query · key. The four tables cost
    O(N·T²·H); per copy only the gathers and the softmax remain — the per-copy Q and K are never assembled.
    """
    sentences, length, _ = qkv_sentences.shape
    heads, head_dim = attention.num_heads, attention.head_dim
    scale = 1.0 / math.sqrt(head_dim)
    query, key, value = qkv_sentences.view(sentences, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    mask_query, mask_key, mask_value = qkv_mask.view(length, 3, heads, head_dim).permute(1, 2, 0, 3)
    query, mask_query = query * scale, mask_query * scale  # (N, h, T, d_k), (h, T, d_k)
    key_t = key.transpose(-1, -2)  # (N, h, d_k, T)
    sentence_to_sentence = torch.matmul(query, key_t)  # (N, h, T, T): [s, :, i, j] = q_i · k_j
    sentence_to_mask = torch.matmul(query, mask_key.transpose(-1, -2))  # [s, :, i, p] = q_i · k[MASK]_p
    mask_to_sentence = torch.matmul(mask_query, key_t)  # [s, :, p, j] = q[MASK]_p · k_j
    mask_to_mask = (mask_query * mask_key).sum(-1)  # (h, T): [:, p] = q[MASK]_p · k[MASK]_p
    scores = sentence_to_sentence[copy_sentence]  # (C, h, T, T)
    scores[rows, :, :, copy_position] = sentence_to_mask[copy_sentence, :, :, copy_position]
    scores[rows, :, copy_position, :] = mask_to_sentence[copy_sentence, :, copy_position, :]
    scores[rows, :, copy_position, copy_position] = mask_to_mask[:, copy_position].T
    return torch.softmax(scores, dim=-1), value, mask_value


def _add_folded_output_(
    x: torch.Tensor,
    probabilities: torch.Tensor,
    value: torch.Tensor,
    mask_value: torch.Tensor,
    output: _Product,
    copy_sentence: torch.Tensor,
    copy_position: torch.Tensor,
    rows: torch.Tensor,
) -> None:
    """x += Σ_h P_h V_h W_o,h + b_o for every copy, with W_o applied to the sentences' values, not to each copy.

    W_o acts on the concatenated heads, so the attention output is Σ_h P_h (V_h W_o,h), W_o,h being head h's
    d_k rows of W_oᵀ. U_h = V_h W_o,h (T × H) is computed once per sentence (and once for [MASK] at each
    position), and a copy's output is then one (T × h·T) by (h·T × H) product of its weights, laid side by side
    per head, with its sentence's U — plus, for the masked column p, the term P_h[:, p] (U[MASK]_h,p − U_h,p)
    that swaps in [MASK]'s values. Per copy that is T·h·T·H + T·h·H multiply-adds in place of the T·T·H of the
    weighted sum and the T·H·H of W_o: fewer whenever h·T ≤ H. The swap's subtraction cancels nothing large: its
    rounding error is a few ulps of the summand P_h,ip U_h,p it replaces, the size of any summand's rounding.
    """
    copies, heads, length, _ = probabilities.shape
    hidden = x.shape[-1]
    per_head_output = output.weight_t.view(heads, -1, hidden)  # (h, d_k, H): W_o,h
    sentence_output = torch.matmul(value, per_head_output)  # (N, h, T, H): U_h per sentence
    mask_output = torch.matmul(mask_value, per_head_output)  # (h, T, H): U_h of [MASK] at each position
    side_by_side = probabilities.transpose(1, 2).reshape(copies, length, heads * length)  # [c, i, h·T + j]
    stacked_output = sentence_output.reshape(-1, heads * length, hidden)  # (N, h·T, H)
    # One product per run of consecutive copies of a sentence (the chunks of pll_scores keep a sentence's copies
    # together, so usually one per sentence).
    runs, run_lengths = torch.unique_consecutive(copy_sentence, return_counts=True)
    start = 0
    for sentence, count in zip(runs.tolist(), run_lengths.tolist(), strict=True):
        x[start:start + count].view(-1, hidden).addmm_(
            side_by_side[start:start + count].view(-1, heads * length), stacked_output[sentence])
        start += count
    to_masked_slot = probabilities[rows, :, :, copy_position].transpose(1, 2)  # (C, T, h): P_h[:, p]
    # (C, h, H): [MASK]'s U_h,p minus the sentence's, per copy
    swap = mask_output[:, copy_position].transpose(0, 1) - sentence_output[copy_sentence, :, copy_position]
    x.baddbmm_(to_masked_slot, swap)
    x.add_(output.bias)


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
    query_weight, key_weight, value_weight = attention.qkv.weight.view(3, heads, head_dim, hidden)  # (h, d_k, H)
    query_bias, _, value_bias = attention.qkv.bias.view(3, heads, head_dim)
    query = torch.einsum("ci,hdi->chd", normed[rows, position], query_weight) + query_bias  # (C, h, d_k)
    query_in_input_space = torch.einsum("chd,hdi->chi", query, key_weight)  # (C, h, H)
    scores = torch.bmm(query_in_input_space, normed.transpose(1, 2)) / math.sqrt(head_dim)  # (C, h, T)
    pooled = torch.bmm(torch.softmax(scores, dim=-1), normed)  # (C, h, H): attention-weighted inputs
    context = torch.einsum("chi,hdi->chd", pooled, value_weight) + value_bias
    y = x[rows, position] + attention.output(context.reshape(copies, hidden))
    return y + block.feed_forward(block.feed_forward_norm(y))

