"""Which token a sequence classifier reads, and its logits for a padded batch whatever its pad-token settings.

An encoder classifier (BERT and kin, our encoder) reads [CLS], the first token. A decoder classifier reads the
last real token, the only one whose causal attention covers the whole text (Radford et al., 2019, GPT-2; our
decoder does the same from ``attention_mask``). Hugging Face's decoder classifiers (GPT-2, Llama, Mistral, Qwen,
GPT-NeoX, …: a linear ``score`` head over every position) find that token from the *ids*, as the rightmost id that
is not ``config.pad_token_id``. That breaks in three common cases, which ``classifier_logits`` avoids by reading
the last position of ``attention_mask`` instead:

* ``pad_token_id`` is None (GPT-2 and Llama checkpoints as released): any batch of more than one text is refused;
* the batch is padded with another id than ``config.pad_token_id`` (a tokenizer without a pad token): the
  classifier reads a padding position of every shorter text;
* the input deliberately holds pad ids at real positions (an attribution baseline made of [PAD] tokens, a
  faithfulness curve that removes tokens): the classifier reads an earlier token than the one it was explaining.

For an unpadded text whose last token is not the pad id, the logits are the model's own.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ReadPosition = Literal["first", "last"]


def finds_last_token_by_pad_id(model: nn.Module) -> bool:
    """Whether ``model`` is a Hugging Face decoder classifier that locates the last token from pad ids."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) == "rai-transformer":
        return False  # ours reads the last token from the attention mask already
    return isinstance(getattr(model, "score", None), nn.Linear) and isinstance(getattr(model, "base_model", None),
                                                                              nn.Module)


def read_position(model: nn.Module) -> ReadPosition:
    """"last" for a decoder classifier (ours with ``causal=True``, or HF's ``score``-head decoders), else "first"."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) == "rai-transformer":
        return "last" if getattr(config, "causal", False) else "first"
    return "last" if finds_last_token_by_pad_id(model) else "first"


def last_real_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of the last position with mask 1 in each row (right or left padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (T,)
    return (positions * attention_mask.to(torch.long)).argmax(dim=-1)


def classifier_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits (B, C) of a sequence classifier for a padded batch; differentiable (captum hooks the embeddings).

    HF decoder classifiers are run as their own parts — base model, then the ``score`` head at the last real
    token of ``attention_mask`` — so neither the pad id nor its absence changes which token is read."""
    if not finds_last_token_by_pad_id(model):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return model.score(hidden[rows, last_real_index(attention_mask).to(hidden.device)])  # (B, C)
