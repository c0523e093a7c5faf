"""Multi-head self-attention (Vaswani et al., 2017, "Attention Is All You Need", section 3.2).

For each head: Q = x W_q, K = x W_k, V = x W_v, weights = softmax(Q Kᵀ / √d_k) with padded keys excluded,
output = weights · V; the heads are concatenated and projected by W_o.

Two interchangeable paths compute the same thing:
- ``sdpa_attention``: ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels, no weights returned),
  the default path — except in bf16/fp16 on CPU, where the written-out formula is faster (see
  ``_sdpa_is_slower``);
- ``explicit_attention``: the formula written out, which also returns the attention weights (explanation
  probes read them). Tests hold the two to agree within 1e-5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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


def explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention written out; returns (context, weights).

    q, k, v: (B, h, T, d_k); mask: (B, 1, 1, T) bool (True = attend) or None.
    context: (B, h, T, d_k); weights: (B, h, T, T), each row sums to 1, exactly 0 on masked keys.
    """
    d_k = q.size(-1)
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)  # (B, h, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # softmax in at least fp32 (bf16 under autocast would lose the small weights)
    weights = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1).to(v.dtype)
    attended = F.dropout(weights, p=dropout_p) if dropout_p > 0.0 else weights
    context = torch.matmul(attended, v)  # (B, h, T, d_k)
    return context, weights


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """The same computation through PyTorch's fused kernel; returns context (B, h, T, d_k)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def _sdpa_is_slower(q: torch.Tensor) -> bool:
    """True for bf16/fp16 on CPU, where the written-out formula beats PyTorch's fused kernel.

    Measured with torch 2.13 on one core, (B, h, T, d) = (32, 4, 128, 64), forward + backward: the CPU flash
    kernel takes 48 ms in bf16 against 18 ms for two batched matmuls and a softmax (fp32: 25 vs 22 ms, so SDPA
    stays the fast path there and on accelerators).
    """
    return q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with separate W_q, W_k, W_v (as in the paper) and an output projection W_o."""

    def __init__(self, hidden_size: int, num_heads: int, dropout_prob: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.dropout_prob = dropout_prob

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """[Q | K | V] = x [W_q | W_k | W_v] + [b_q | b_k | b_v]: (..., H) -> (..., 3H).

        The same three products as one matrix multiply, which reads x (and accumulates its gradient) once instead
        of three times. (Forward hooks on self.query / self.key / self.value therefore do not fire.)
        """
        return F.linear(x, *self.qkv_weight_and_bias())

    def qkv_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[W_q | W_k | W_v] stacked as (3H, H) and [b_q | b_k | b_v] as (3H,): the parameters of ``project_qkv``."""
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        return weight, bias

    def attend(
        self,
        qkv: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        explicit: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention from projected ``qkv`` (B, T, 3H) through W_o: (output (B, T, H), weights or None)."""
        context, weights = self.context(qkv, mask, explicit=explicit)
        return self.output(context), weights

    def context(
        self,
        qkv: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        explicit: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The heads' attention-weighted values, concatenated, before W_o: (context (B, T, H), weights or None)."""
        b, t, three_hidden = qkv.shape
        hidden = three_hidden // 3
        q, k, v = qkv.view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, T, d_k)
        dropout_p = self.dropout_prob if self.training else 0.0
        if explicit:
            context, weights = explicit_attention(q, k, v, mask, dropout_p)
        elif _sdpa_is_slower(q):
            context, weights = explicit_attention(q, k, v, mask, dropout_p)[0], None
        else:
            context, weights = sdpa_attention(q, k, v, mask, dropout_p), None
        return context.transpose(1, 2).reshape(b, t, hidden), weights  # heads concatenated

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        explicit: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, H); mask from ``key_padding_mask``. Returns (output (B, T, H), weights (B, h, T, T) or None).

        ``explicit=True`` takes the written-out path and returns the weights; otherwise SDPA, weights None.
        """
        return self.attend(self.project_qkv(x), mask, explicit=explicit)
