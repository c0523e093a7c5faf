"""Configuration of rai-audit's own transformer ("rai-transformer"): a BERT-style encoder, or with ``causal=True``
the same blocks as a GPT-style decoder (Radford et al., 2019, "Language Models are Unsupervised Multitask
Learners").

The field names follow BERT's (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding") so that tools written for BERT-like configs find what they expect. Written for the
transformers 5 configuration API, where a config is a keyword-only dataclass.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

from audit.errors import InputError


class ConfigError(InputError):
    """An AuditTransformerConfig field has a value the model cannot be built from."""


class AuditTransformerConfig(PreTrainedConfig):
    """Sizes and regularisation of the encoder, and whether it is a decoder.

    ``causal=False`` (default): bidirectional attention, masked-LM pretraining, [CLS] classification.
    ``causal=True``: each position attends to itself and earlier positions only, next-token pretraining
    (``AuditTransformerForCausalLM``), classification from the last real token. ``bos_token_id`` /
    ``eos_token_id`` (standard transformers fields, optional) name the tokens a decoder's texts start and end with.

    The attention implementation is chosen with the standard transformers keyword ``attn_implementation``
    ("sdpa", the default and fast; or "eager", the explicit textbook path that can also return weights); it is
    stored by transformers as ``config._attn_implementation``.
    """

    model_type = "rai-transformer"

    vocab_size: int = 8192
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    classifier_dropout: float | None = None
    # The MLM decoder shares its weight with the token embedding (Press & Wolf, 2017).
    tie_word_embeddings: bool = True
    # A decoder: causal self-attention (Vaswani et al., 2017, §3.2.3), as in GPT-2.
    causal: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        positive = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"AuditTransformerConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"AuditTransformerConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"AuditTransformerConfig.{name} must be in [0, 1), got {value!r}")
        if not isinstance(self.causal, bool):
            raise ConfigError(f"AuditTransformerConfig.causal must be true or false, got {self.causal!r}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or not 0 <= value < self.vocab_size):
                raise ConfigError(
                    f"AuditTransformerConfig.{name} ({value!r}) must be an integer in [0, vocab_size="
                    f"{self.vocab_size}) or null"
                )
