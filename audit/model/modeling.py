"""rai-audit's own BERT-style encoder, written from scratch in torch.

Architecture (Devlin et al., 2019, BERT; Vaswani et al., 2017): token + learned position embeddings, a stack of
residual self-attention / GELU feed-forward blocks, and two heads — a masked-language-model head whose decoder
is tied to the token embedding (Press & Wolf, 2017), and a [CLS] classification head.

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
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput, SequenceClassifierOutput

from audit.model.attention import MultiHeadSelfAttention, key_padding_mask
from audit.model.configuration import AuditTransformerConfig

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

    def forward(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        # inputs_embeds, when given, replaces the token-embedding lookup (as in BERT); positions are still added.
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)  # (B, T, H)
        seq_len = inputs_embeds.size(1)
        positions = torch.arange(seq_len, device=inputs_embeds.device)
        x = inputs_embeds + self.position_embeddings(positions)[None, :, :]
        return self.dropout(self.norm(x))


def _fused_linear_gelu_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


FUSED_LINEAR_GELU = _fused_linear_gelu_available()


class FeedForward(nn.Module):
    """Position-wise H → I → H with GELU (Hendrycks & Gimpel, 2016).

    Inference on CPU in fp32 (no gradient, no autocast) runs the GELU as the epilogue of oneDNN's matrix multiply
    (PyTorch's ``mkldnn._linear_pointwise``, the kernel its compiler emits for linear + GELU): the same values
    (exact erf GELU), without writing and re-reading the (rows × intermediate) activations between the two —
    about 40% of the cost of this layer at our sizes. Training, autocast and other devices use the eager formula.
    (Forward hooks on ``intermediate`` therefore fire only on the eager path.)
    """

    def __init__(self, config: AuditTransformerConfig):
        super().__init__()
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (FUSED_LINEAR_GELU and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")):
            hidden = torch.ops.mkldnn._linear_pointwise(
                x, self.intermediate.weight, self.intermediate.bias, "gelu", [], "none")
        else:
            hidden = F.gelu(self.intermediate(x))
        return self.output(hidden)


class TransformerBlock(nn.Module):
    """Pre-LN residual block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, config: AuditTransformerConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = MultiHeadSelfAttention(
            config.hidden_size, config.num_attention_heads, config.attention_probs_dropout_prob
        )
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, explicit: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.attention_norm(x), mask, explicit=explicit)
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


class AuditTransformerModel(AuditTransformerPreTrainedModel):
    """The encoder: embeddings → pre-LN blocks → final LayerNorm.

    ``hidden_states`` (when requested) has num_hidden_layers + 1 entries: the embedding output, the residual
    stream after each block, and — as the last entry — the final normalised output (= last_hidden_state).
    """

    # Loading a pretrained masked-LM checkpoint into the bare encoder drops its head silently.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"^lm_head\."]

    def __init__(self, config: AuditTransformerConfig):
        super().__init__(config)
        self.embeddings = AuditEmbeddings(config)
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def _check_inputs(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> int:
        if (input_ids is None) == (inputs_embeds is None):
            raise ModelInputError("give exactly one of input_ids (B, T) or inputs_embeds (B, T, H)")
        seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        if seq_len > self.config.max_position_embeddings:
            raise ModelInputError(
                f"sequence length {seq_len} exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}; truncate the inputs"
            )
        return seq_len

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,  # accepted for BERT-style tokenizer outputs; unused
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        self._check_inputs(input_ids, inputs_embeds)
        mask = key_padding_mask(attention_mask)
        explicit = self._use_explicit_attention(output_attentions)

        x = self.embeddings(input_ids, inputs_embeds)  # (B, T, H)
        hidden_states: list[torch.Tensor] = [x]
        attentions: list[torch.Tensor] = []
        for layer in self.layers:
            x, weights = layer(x, mask, explicit)
            hidden_states.append(x)
            if output_attentions:
                attentions.append(weights)
        x = self.final_norm(x)
        hidden_states[-1] = x

        out = BaseModelOutput(
            last_hidden_state=x,
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
        self.transformer = AuditTransformerModel(config)
        self.lm_head = MaskedLMHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.transformer.set_input_embeddings(value)

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
    """[CLS] hidden state → dense → tanh → dropout → linear (BERT's pooler + classifier)."""

    def __init__(self, config: AuditTransformerConfig):
        super().__init__()
        dropout = config.classifier_dropout
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        cls = hidden[:, 0]  # (B, H): the [CLS] position
        return self.out_proj(self.dropout(torch.tanh(self.dense(cls))))  # (B, num_labels)


class AuditTransformerForSequenceClassification(AuditTransformerPreTrainedModel):
    """Encoder + [CLS] classification head. Loss: cross-entropy (MSE when num_labels == 1, BCE when
    ``problem_type == "multi_label_classification"``)."""

    # Fine-tuning starts from a masked-LM checkpoint: its head is dropped, the classifier is new by design.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"^lm_head\."]

    def __init__(self, config: AuditTransformerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = AuditTransformerModel(config)
        self.classifier = ClassificationHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.transformer.set_input_embeddings(value)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.num_labels == 1 or self.config.problem_type == "regression":
            return F.mse_loss(logits.float().squeeze(-1), labels.float().view(-1))
        if self.config.problem_type == "multi_label_classification":
            return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return F.cross_entropy(logits.float(), labels.view(-1).long())

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
    ) -> SequenceClassifierOutput | tuple:
        encoded = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            inputs_embeds=inputs_embeds,
        )
        logits = self.classifier(encoded.last_hidden_state)
        loss = self._loss(logits, labels) if labels is not None else None
        out = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return out if return_dict is not False else out.to_tuple()
