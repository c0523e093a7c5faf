"""rai-audit's own transformer, written from scratch in torch: a BERT-style encoder or a GPT-style decoder.

Architecture (Devlin et al., 2019, BERT; Vaswani et al., 2017): token + learned position embeddings, a stack of
residual self-attention / GELU feed-forward blocks, and three heads — a masked-language-model head whose decoder
is tied to the token embedding (Press & Wolf, 2017), a classification head, and a next-token head.

The decoder (``AuditTransformerConfig(causal=True)``; Radford et al., 2019, GPT-2) is the same model with causal
self-attention: the blocks, embeddings and final norm are shared code, only the attention mask differs. It reads
positions from ``position_ids`` (by default counted over the real tokens of ``attention_mask``, so a left-padded
text gets the positions it has unpadded), keeps a key/value cache through transformers' ``Cache`` API, and
generates with ``GenerationMixin`` (``AuditTransformerForCausalLM``). Its classifier reads the last real token,
the only one that has seen the whole text (as GPT-2's sequence classifier does); the encoder's reads [CLS].

Blocks are **pre-LN** (LayerNorm before each sub-layer, one final LayerNorm; Xiong et al., 2020, "On Layer
Normalization in the Transformer Architecture"): gradients stay well-scaled at initialisation, so the short,
high-learning-rate, few-warmup-step schedules of a minutes-long CPU pretraining train stably, where post-LN
BERT needs a long warmup.

Speed: with labels, the MLM head projects to the vocabulary only at scored positions (labels != -100, ~15% of
tokens) — at small sizes the (tokens × hidden × vocab) projection would otherwise dominate the cost.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Cache, DynamicCache, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    MaskedLMOutput,
    SequenceClassifierOutput,
)

from audit.model.attention import AttentionMask, MultiHeadSelfAttention, attention_mask_for
from audit.model.configuration import AuditTransformerConfig, ConfigError

try:  # transformers >= 5: init functions that skip weights already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # pragma: no cover - older transformers
    from torch.nn import init

IGNORE_INDEX = -100


class ModelInputError(ValueError):
    """The inputs given to the model cannot be processed (wrong combination or too long)."""


class AuditEmbeddings(nn.Module):
    """Token embedding + learned absolute position embedding, then LayerNorm and dropout."""

    def __init__(self, config: AuditTransformerConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # inputs_embeds, when given, replaces the token-embedding lookup (as in BERT); positions are still added.
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)  # (B, T, H)
        if position_ids is None:
            position_ids = torch.arange(inputs_embeds.size(1), device=inputs_embeds.device)[None, :]  # (1, T)
        x = inputs_embeds + self.position_embeddings(position_ids)  # (B, T, H)
        return self.dropout(self.norm(x))


class FeedForward(nn.Module):
    """Position-wise H → I → H with GELU (Hendrycks & Gimpel, 2016)."""

    def __init__(self, config: AuditTransformerConfig):
        super().__init__()
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(F.gelu(self.intermediate(x)))


class TransformerBlock(nn.Module):
    """Pre-LN residual block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, config: AuditTransformerConfig, layer_index: int = 0):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = MultiHeadSelfAttention(
            config.hidden_size, config.num_attention_heads, config.attention_probs_dropout_prob,
            layer_index=layer_index,
        )
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, x: torch.Tensor, mask: AttentionMask | torch.Tensor | None, explicit: bool, cache: Cache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.attention_norm(x), mask, explicit=explicit, cache=cache)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))
        return x, weights


class AuditTransformerPreTrainedModel(PreTrainedModel):
    """Shared plumbing: config class, weight initialisation, Auto-class metadata."""

    config_class = AuditTransformerConfig
    config: AuditTransformerConfig
    base_model_prefix = "transformer"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _no_split_modules: ClassVar[list[str]] = ["TransformerBlock"]

    # One definition for the encoder and every head: ``base_model`` is the encoder (the model itself when bare).
    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.base_model.embeddings.word_embeddings = value

    def _init_weights(self, module: nn.Module) -> None:
        # BERT's scheme: N(0, initializer_range) for matrices and embeddings, zero biases, unit LayerNorm.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def _use_explicit_attention(self, output_attentions: bool) -> bool:
        return bool(output_attentions) or self.config._attn_implementation == "eager"

    def _require_causal(self, wanted: bool) -> None:
        if bool(self.config.causal) != wanted:
            kind = "a decoder (causal = true)" if wanted else "an encoder (causal = false)"
            raise ConfigError(f"{type(self).__name__} needs {kind} config; got causal = {self.config.causal}")


class AuditTransformerModel(AuditTransformerPreTrainedModel):
    """The transformer: embeddings → pre-LN blocks → final LayerNorm; bidirectional, or causal for a decoder.

    ``hidden_states`` (when requested) has num_hidden_layers + 1 entries: the embedding output, the residual
    stream after each block, and — as the last entry — the final normalised output (= last_hidden_state).

    Decoder only: ``cache`` (a transformers ``Cache``; ``past_key_values`` is accepted as its older name) holds
    the keys and values of earlier positions, and ``use_cache=True`` starts a ``DynamicCache`` when none is
    given; ``attention_mask`` then covers the cached and the new positions, (B, T_past + T).
    """

    # Loading a pretrained masked-LM checkpoint into the bare encoder drops its head silently.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"^lm_head\."]

    def __init__(self, config: AuditTransformerConfig):
        super().__init__(config)
        self.embeddings = AuditEmbeddings(config)
        self.layers = nn.ModuleList(TransformerBlock(config, index) for index in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def _check_inputs(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> int:
        if (input_ids is None) == (inputs_embeds is None):
            raise ModelInputError("give exactly one of input_ids (B, T) or inputs_embeds (B, T, H)")
        return (input_ids if input_ids is not None else inputs_embeds).shape[1]

    def _check_length(self, total_length: int) -> None:
        if total_length > self.config.max_position_embeddings:
            raise ModelInputError(
                f"sequence length {total_length} exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}; truncate the inputs"
            )

    def _positions(
        self, attention_mask: torch.Tensor | None, past_length: int, length: int, device: torch.device
    ) -> torch.Tensor | None:
        """Default position ids: (B, T) counted over real tokens for a decoder given a mask (so left padding does
        not shift a text's positions); None (= 0 .. T-1) for the encoder, whose positions are unchanged."""
        if not self.config.causal:
            return None
        if attention_mask is None or bool(attention_mask.all()):
            return torch.arange(past_length, past_length + length, device=device)[None, :]
        counted = attention_mask.to(torch.long).cumsum(dim=-1) - 1  # (B, T_past + T)
        return counted.clamp(min=0)[:, -length:]

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,  # accepted for BERT-style tokenizer outputs; unused
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        length = self._check_inputs(input_ids, inputs_embeds)
        cache = cache if cache is not None else past_key_values
        if (cache is not None or use_cache) and not self.config.causal:
            raise ModelInputError("a key/value cache needs a decoder (causal = true); this model is an encoder")
        if use_cache and cache is None:
            cache = DynamicCache()
        past_length = cache.get_seq_length() if cache is not None else 0
        self._check_length(past_length + length)
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if attention_mask is not None and attention_mask.shape[-1] != past_length + length:
            raise ModelInputError(
                f"attention_mask covers {attention_mask.shape[-1]} positions; expected {past_length + length} "
                f"({past_length} cached + {length} new)"
            )
        if position_ids is None:
            position_ids = self._positions(attention_mask, past_length, length, device)
        elif int(position_ids.max()) >= self.config.max_position_embeddings or int(position_ids.min()) < 0:
            raise ModelInputError(
                f"position_ids must lie in [0, max_position_embeddings={self.config.max_position_embeddings})"
            )
        mask = attention_mask_for(attention_mask, causal=bool(self.config.causal), query_length=length,
                                  key_length=past_length + length, device=device)
        explicit = self._use_explicit_attention(output_attentions)

        x = self.embeddings(input_ids, inputs_embeds, position_ids)  # (B, T, H)
        hidden_states: list[torch.Tensor] = [x]
        attentions: list[torch.Tensor] = []
        for layer in self.layers:
            x, weights = layer(x, mask, explicit, cache)
            hidden_states.append(x)
            if output_attentions:
                attentions.append(weights)
        x = self.final_norm(x)
        hidden_states[-1] = x

        out = BaseModelOutputWithPast(
            last_hidden_state=x,
            cache=cache,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )
        return out if return_dict is not False else out.to_tuple()


class MaskedLMHead(nn.Module):
    """Transform (dense → GELU → LayerNorm) then the vocabulary decoder (weight tied to the token embedding)."""

    def __init__(self, config: AuditTransformerConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(hidden))))  # (..., vocab)


class AuditTransformerForMaskedLM(AuditTransformerPreTrainedModel):
    """Encoder + MLM head. With ``labels`` the logits are (n_scored, vocab), scored = labels != -100."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "lm_head.decoder.weight": "transformer.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: AuditTransformerConfig):
        super().__init__(config)
        self._require_causal(False)
        self.transformer = AuditTransformerModel(config)
        self.lm_head = MaskedLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head.decoder = value

    def masked_logits(self, hidden_states: torch.Tensor, positions_mask: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (n, vocab) for the hidden states (B, T, H) where positions_mask (B, T) is True."""
        return self.lm_head(hidden_states[positions_mask.to(torch.bool)])

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput | tuple:
        encoded = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            inputs_embeds=inputs_embeds,
        )
        hidden = encoded.last_hidden_state  # (B, T, H)
        loss = None
        if labels is None:
            logits = self.lm_head(hidden)  # (B, T, vocab)
        else:
            scored = labels != IGNORE_INDEX  # (B, T)
            logits = self.masked_logits(hidden, scored)  # (n_scored, vocab)
            if logits.size(0) == 0:
                loss = logits.sum() * 0.0  # nothing scored: zero loss that still backpropagates
            else:
                loss = F.cross_entropy(logits.float(), labels[scored])
        out = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return out if return_dict is not False else out.to_tuple()


class ClassificationHead(nn.Module):
    """Pooled hidden state → dense → tanh → dropout → linear (BERT's pooler + classifier)."""

    def __init__(self, config: AuditTransformerConfig):
        super().__init__()
        dropout = config.classifier_dropout
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(torch.tanh(self.dense(pooled))))  # (B, num_labels)


def last_token_index(attention_mask: torch.Tensor | None, batch: int, length: int, device: torch.device
                     ) -> torch.Tensor:
    """(B,) index of each row's last real token: the last 1 of ``attention_mask``, whichever side is padded."""
    if attention_mask is None:
        return torch.full((batch,), length - 1, dtype=torch.long, device=device)
    positions = torch.arange(length, device=device)
    return (attention_mask.to(torch.bool) * (positions + 1)).argmax(dim=-1)


class AuditTransformerForSequenceClassification(AuditTransformerPreTrainedModel):
    """Transformer + classification head. Loss: cross-entropy (MSE when num_labels == 1, BCE when
    ``problem_type == "multi_label_classification"``).

    The head reads one position: [CLS] (the first) for an encoder (Devlin et al., 2019, §4); for a decoder the
    last real token, the only one whose causal attention covers the whole text (as GPT-2's sequence classifier,
    Radford et al., 2019) — found from ``attention_mask``, so right and left padding give the same logits.
    """

    # Fine-tuning starts from a language-model checkpoint: its head is dropped, the classifier is new by design.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"^lm_head\."]

    def __init__(self, config: AuditTransformerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = AuditTransformerModel(config)
        self.classifier = ClassificationHead(config)
        self.post_init()

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.num_labels == 1 or self.config.problem_type == "regression":
            return F.mse_loss(logits.float().squeeze(-1), labels.float().view(-1))
        if self.config.problem_type == "multi_label_classification":
            return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return F.cross_entropy(logits.float(), labels.view(-1).long())

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The hidden state (B, H) the head reads: [CLS] for an encoder, the last real token for a decoder."""
        if not self.config.causal:
            return hidden[:, 0]
        batch, length, _ = hidden.shape
        index = last_token_index(attention_mask, batch, length, hidden.device)
        return hidden[torch.arange(batch, device=hidden.device), index]

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        return_dict: bool | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput | tuple:
        encoded = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            inputs_embeds=inputs_embeds,
        )
        logits = self.classifier(self.pool(encoded.last_hidden_state, attention_mask))
        loss = self._loss(logits, labels) if labels is not None else None
        out = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return out if return_dict is not False else out.to_tuple()


class AuditTransformerForCausalLM(AuditTransformerPreTrainedModel, GenerationMixin):
    """Decoder + next-token head (Radford et al., 2019, GPT-2): logits = final hidden state · Eᵀ, the vocabulary
    projection tied to the token embedding E (Press & Wolf, 2017).

    With ``labels`` (B, T) the loss is the mean cross-entropy of predicting token t+1 from positions ≤ t (labels
    are shifted inside, as in transformers' causal LMs; -100 marks positions not scored, e.g. padding). Lower is
    better; ln(vocab size) is chance. ``generate()`` (greedy, beam, sampling) comes from ``GenerationMixin`` and
    uses the key/value cache unless ``use_cache=False``; ``logits_to_keep=k`` projects only the last k positions.
    """

    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "transformer.embeddings.word_embeddings.weight"}

    def __init__(self, config: AuditTransformerConfig):
        super().__init__(config)
        self._require_causal(True)
        self.transformer = AuditTransformerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        decoded = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache if cache is not None else past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            inputs_embeds=inputs_embeds,
        )
        hidden = decoded.last_hidden_state  # (B, T, H)
        if logits_to_keep and labels is None:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)  # (B, T, vocab)
        loss = None
        if labels is not None:
            predicted = logits[:, :-1].reshape(-1, logits.size(-1))  # position t predicts token t + 1
            targets = labels[:, 1:].reshape(-1).to(logits.device)
            if bool((targets != IGNORE_INDEX).any()):
                loss = F.cross_entropy(predicted.float(), targets, ignore_index=IGNORE_INDEX)
            else:
                loss = logits.sum() * 0.0  # nothing scored: zero loss that still backpropagates
        out = CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=decoded.cache, hidden_states=decoded.hidden_states,
            attentions=decoded.attentions,
        )
        return out if return_dict is not False else out.to_tuple()
