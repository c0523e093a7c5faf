"""Multi-head self-attention (Vaswani et al., 2017, "Attention Is All You Need", section 3.2).

For each head: Q = x W_q, K = x W_k, V = x W_v, weights = softmax(Q Kᵀ / √d_k) with padded keys excluded,
output = weights · V; the heads are concatenated and projected by W_o. A decoder (Radford et al., 2019, GPT-2)
also excludes the keys after each query (``attention_mask_for`` with ``causal=True``, §3.2.3 of Vaswani et al.)
and may carry a key/value cache across calls.

Two interchangeable paths compute the same thing:
- ``sdpa_attention``: ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels, no weights returned),
  the default path — except in bf16/fp16 on CPU, where the written-out formula is faster (see
  ``_sdpa_is_slower``);
- ``explicit_attention``: the formula written out, which also returns the attention weights (explanation
  probes read them). Tests hold the two to agree within 1e-5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Cache


def key_padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Boolean mask (B, 1, 1, T), True where a query may attend to the key; None when nothing is padded.

    A sequence whose keys are all padding would give a softmax over an empty set (NaN in SDPA); such rows
    are allowed to attend to every key instead. Their outputs are meaningless either way, but finite.
    """
    if attention_mask is None:
        return None
    keep = attention_mask.to(torch.bool)
    if bool(keep.all()):
        return None  # lets SDPA pick its fastest, mask-free kernel
    keep = keep | ~keep.any(dim=-1, keepdim=True)
    return keep[:, None, None, :]


@dataclass(frozen=True)
class AttentionMask:
    """Which keys each query may attend to, in the form the attention kernels take.

    ``mask``: bool, broadcastable to (B, h, T_q, T_k), True = attend; None = every key. ``is_causal``: on top of
    that, query i sees keys j <= i only (T_q == T_k, nothing cached); kept as a flag rather than a tensor so SDPA
    can run its causal kernel, which skips the masked half of the scores instead of computing and discarding it.
    """

    mask: torch.Tensor | None = None
    is_causal: bool = False


def attention_mask_for(
    attention_mask: torch.Tensor | None,
    *,
    causal: bool,
    query_length: int,
    key_length: int,
    device: torch.device,
) -> AttentionMask:
    """The mask of one forward pass: key padding, and for a decoder also causality (Vaswani et al., 2017, §3.2.3;
    Radford et al., 2019, GPT-2).

    attention_mask: (B, T_k) with 1 on real tokens, 0 on padding, or None. With a key/value cache the queries
    are the last ``query_length`` of the ``key_length`` positions, so query i sits at position
    ``key_length - query_length + i`` and sees the keys up to it. A query row left with no key to attend to (a
    padding position at the front of a left-padded sequence) attends causally to every key before it instead:
    finite, never used, and no later position sees it, since padded keys stay masked for every query.
    """
    padding = key_padding_mask(attention_mask)
    if not causal:
        return AttentionMask(padding)
    if padding is None:
        if query_length == key_length:
            return AttentionMask(None, is_causal=True)
        if query_length == 1:
            return AttentionMask(None)  # the newest position sees every cached key
    offset = key_length - query_length
    query_position = torch.arange(query_length, device=device)[:, None] + offset
    allowed = torch.arange(key_length, device=device)[None, :] <= query_position  # (T_q, T_k)
    if padding is None:
        return AttentionMask(allowed)
    keep = attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]  # (B, 1, 1, T_k)
    combined = allowed & keep  # (B, 1, T_q, T_k)
    combined = combined | (~combined.any(dim=-1, keepdim=True) & allowed)
    return AttentionMask(combined)


def _causal_mask(query_length: int, key_length: int, device: torch.device) -> torch.Tensor:
    """(T_q, T_k) bool, True where key j <= query i (the same convention as SDPA's ``is_causal``)."""
    return torch.ones(query_length, key_length, dtype=torch.bool, device=device).tril()


def explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float = 0.0,
    *,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention written out; returns (context, weights).

    q: (B, h, T_q, d_k); k, v: (B, h, T_k, d_k); mask: bool, broadcastable to (B, h, T_q, T_k), True = attend,
    or None; ``is_causal`` adds the lower-triangular mask. context: (B, h, T_q, d_k); weights: (B, h, T_q, T_k),
    each row sums to 1, exactly 0 on masked keys.
    """
    d_k = q.size(-1)
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)  # (B, h, T_q, T_k)
    if is_causal:
        causal = _causal_mask(q.size(-2), k.size(-2), q.device)
        mask = causal if mask is None else mask & causal
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # softmax in at least fp32 (bf16 under autocast would lose the small weights)
    weights = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1).to(v.dtype)
    attended = F.dropout(weights, p=dropout_p) if dropout_p > 0.0 else weights
    context = torch.matmul(attended, v)  # (B, h, T_q, d_k)
    return context, weights


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float = 0.0,
    *,
    is_causal: bool = False,
) -> torch.Tensor:
    """The same computation through PyTorch's fused kernel; returns context (B, h, T_q, d_k)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)


def _sdpa_is_slower(q: torch.Tensor) -> bool:
    """True for bf16/fp16 on CPU, where the written-out formula beats PyTorch's fused kernel.

    Measured with torch 2.13 on one core, (B, h, T, d) = (32, 4, 128, 64), forward + backward: the CPU flash
    kernel takes 48 ms in bf16 against 18 ms for two batched matmuls and a softmax (fp32: 25 vs 22 ms, so SDPA
    stays the fast path there and on accelerators).
    """
    return q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with the query, key and value projections fused into one (H → 3H) linear map ``qkv``
    (rows [W_q; W_k; W_v], so one matrix multiply reads x once) and an output projection W_o.

    With a key/value cache (transformers' ``Cache``) the new keys and values are appended to those of earlier
    positions (``cache.update(key, value, layer_index)``) and the queries attend to all of them: decoding then
    computes one position per step instead of recomputing the whole prefix.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout_prob: float, *, layer_index: int = 0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.layer_index = layer_index  # this layer's slot in a key/value cache
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.dropout_prob = dropout_prob

    def context(
        self,
        qkv: torch.Tensor,
        mask: AttentionMask | torch.Tensor | None,
        *,
        explicit: bool = False,
        cache: Cache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The heads' attention-weighted values, concatenated, before W_o: (context (B, T, H), weights or None).

        qkv: (B, T, 3H), the output of ``self.qkv``. mask: an ``AttentionMask`` (or a bare bool mask tensor).
        """
        if not isinstance(mask, AttentionMask):
            mask = AttentionMask(mask)
        b, t, three_hidden = qkv.shape
        hidden = three_hidden // 3
        q, k, v = qkv.view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, T, d_k)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_index)  # (B, h, T_past + T, d_k)
        dropout_p = self.dropout_prob if self.training else 0.0
        if explicit:
            context, weights = explicit_attention(q, k, v, mask.mask, dropout_p, is_causal=mask.is_causal)
        elif _sdpa_is_slower(q):
            context = explicit_attention(q, k, v, mask.mask, dropout_p, is_causal=mask.is_causal)[0]
            weights = None
        else:
            context, weights = sdpa_attention(q, k, v, mask.mask, dropout_p, is_causal=mask.is_causal), None
        return context.transpose(1, 2).reshape(b, t, hidden), weights  # heads concatenated

    def forward(
        self,
        x: torch.Tensor,
        mask: AttentionMask | torch.Tensor | None,
        *,
        explicit: bool = False,
        cache: Cache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, H); mask from ``attention_mask_for`` (or ``key_padding_mask``). Returns (output (B, T, H),
        weights (B, h, T, T_k) or None).

        ``explicit=True`` takes the written-out path and returns the weights; otherwise SDPA, weights None.
        """
        context, weights = self.context(self.qkv(x), mask, explicit=explicit, cache=cache)
        return self.output(context), weights
