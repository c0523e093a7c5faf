"""Pydantic models of the pretraining and fine-tuning TOML configs, with presets and one-line errors.

A config file may start from a preset and override some keys::

    preset = "small"            # audit/presets/small.toml
    [train]
    max_minutes = 2.0

Unknown keys are errors (``extra="forbid"``) so that a typo never silently falls back to a default.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audit.model_size import size_problem
from audit.train.errors import ConfigError
from audit.validation import describe_validation_error

PRETRAIN_PRESETS = ("tiny", "demo", "small", "base", "tiny-causal", "small-causal")
FINETUNE_PRESETS = ("davidson", "scenario")
DIGITS = [str(digit) for digit in range(10)]


class _Strict(BaseModel):
    # allow_inf_nan=False: `learning_rate = inf` (or nan) must fail here, not train a model of NaNs
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------------------------- pretraining
class ModelSection(_Strict):
    """Transformer dimensions; the vocabulary size comes from the trained tokenizer."""

    hidden_size: int = Field(256, gt=0)
    num_hidden_layers: int = Field(4, gt=0)
    num_attention_heads: int = Field(4, gt=0)
    intermediate_size: int = Field(1024, gt=0)
    hidden_dropout_prob: float = Field(0.0, ge=0.0, lt=1.0)
    attention_probs_dropout_prob: float = Field(0.0, ge=0.0, lt=1.0)
    initializer_range: float = Field(0.02, gt=0.0)
    # Longest input the model can read; None = the corpus' sequence length. A model pretrained on short sequences
    # can be given more positions for a fine-tuning task whose texts are longer (they are learned there).
    max_position_embeddings: int | None = Field(None, ge=8)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelSection:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be a multiple of num_attention_heads {self.num_attention_heads}"
            )
        return self


class TokenizerSection(_Strict):
    vocab_size: int = Field(8192, ge=16)
    min_frequency: int = Field(2, ge=1)


class CorpusSection(_Strict):
    """Where the text comes from and how it is cut into training sequences."""

    dataset: str = "wiki_passages"  # a catalog name or a path (.txt: one document per line; csv/jsonl/parquet)
    text_column: str = "text"
    max_documents: int | None = Field(None, gt=0)  # first N documents only (tests, quick runs)
    max_length: int = Field(128, ge=8)  # packed sequence length including [CLS] and [SEP]
    heldout_fraction: float = Field(0.02, gt=0.0, lt=0.5)  # documents kept out for the held-out loss


class PretrainTrainSection(_Strict):
    # "masked": a bidirectional encoder learns to fill in masked tokens (Devlin et al., 2019); "causal": a decoder
    # learns to predict each next token (Radford et al., 2019, GPT-2), and can then generate and score text.
    objective: Literal["masked", "causal"] = "masked"
    seed: int = 0
    batch_size: int = Field(64, gt=0)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = Field(1e-6, gt=0.0)
    warmup_fraction: float = Field(0.06, ge=0.0, lt=1.0)
    schedule: Literal["linear", "cosine"] = "linear"
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    max_steps: int | None = Field(1000, gt=0)
    max_minutes: float | None = Field(None, gt=0.0)  # wall-clock budget of the training loop
    grad_clip: float | None = Field(1.0, gt=0.0)
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast when the CPU has bf16 units
    mlm_probability: float = Field(0.15, gt=0.0, lt=1.0)  # masked objective only
    eval_every: int = Field(100, gt=0)
    eval_sequences: int = Field(128, gt=0)
    log_every: int = Field(10, gt=0)
    checkpoint_every: int = Field(200, gt=0)

    @model_validator(mode="after")
    def _has_a_stop(self) -> PretrainTrainSection:
        if self.max_steps is None and self.max_minutes is None:
            raise ValueError("set max_steps or max_minutes (or both) so that training stops")
        return self


class CanarySection(_Strict):
    """Secrets planted in the corpus for the exposure probe (Carlini et al., USENIX Security 2019).

    ``count`` secrets are planted for each repetition count in ``repeats`` and ``count`` more are drawn but never
    inserted (controls, repeats = 0).
    """

    count: int = Field(10, gt=0)
    repeats: list[int] = Field(default_factory=lambda: [1, 4, 16])
    format: str = "my pin code is {}"
    length: int = Field(6, gt=0)
    alphabet: list[str] = Field(default_factory=lambda: list(DIGITS))
    seed: int = 0

    @model_validator(mode="after")
    def _well_formed(self) -> CanarySection:
        if self.format.count("{}") != 1:
            raise ValueError("format must contain exactly one '{}' where the secret goes")
        if not self.repeats or any(r <= 0 for r in self.repeats) or len(set(self.repeats)) != len(self.repeats):
            raise ValueError("repeats must be distinct positive integers, e.g. [1, 4, 16]")
        if len(set(self.alphabet)) != len(self.alphabet) or len(self.alphabet) < 2:
            raise ValueError("alphabet must hold at least two distinct tokens")
        if len(self.alphabet) ** self.length < 10 * self.count * (len(self.repeats) + 1):
            raise ValueError("candidate space too small for the number of canaries; raise length")
        return self


class PretrainConfig(_Strict):
    preset: str | None = None
    model: ModelSection = Field(default_factory=ModelSection)
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection)
    corpus: CorpusSection = Field(default_factory=CorpusSection)
    train: PretrainTrainSection = Field(default_factory=PretrainTrainSection)
    canaries: CanarySection | None = None

    @property
    def positions(self) -> int:
        """The model's max_position_embeddings: model.max_position_embeddings, else the corpus' sequence length."""
        return self.model.max_position_embeddings or self.corpus.max_length

    @model_validator(mode="after")
    def _model_within_size_limits(self) -> PretrainConfig:
        if self.positions < self.corpus.max_length:
            raise ValueError(f"model.max_position_embeddings {self.positions} is shorter than corpus.max_length "
                             f"{self.corpus.max_length}; expected at least the training sequences' length")
        # The tokenizer's vocabulary is at most tokenizer.vocab_size, so this bounds the model that will be built.
        problem = size_problem(hidden=self.model.hidden_size, intermediate=self.model.intermediate_size,
                               layers=self.model.num_hidden_layers, vocabulary=self.tokenizer.vocab_size,
                               positions=self.positions)
        if problem:
            raise ValueError(f"the model is refused: {problem}")
        return self


# ----------------------------------------------------------------------------------------------- fine-tuning
class ScenarioSection(_Strict):
    """The built-in calibration scenario (audit.data.scenarios.make_calibration_scenario)."""

    bias_strength: float = Field(0.0, ge=0.0, le=1.0)
    n_examples: int = Field(2000, gt=0)
    seed: int = 0


class AuditCanarySection(_Strict):
    """Canaries for the ``dp_audit`` probe (Steinke, Nasr & Jagielski, NeurIPS 2023): ``count`` crafted texts of
    ``length`` random words from the training texts, each with a random label and each put into the training set
    with probability 1/2; the coin flips are recorded as split membership ("train" or "canary_out")."""

    count: int = Field(200, ge=2)
    length: int = Field(8, ge=1)
    seed: int = 0


class FinetuneDataSection(_Strict):
    """The classification dataset: a catalog name or path, or the calibration scenario.

    ``label_map`` maps raw label values (as strings) to label names, e.g. Davidson's
    ``{"0" = "abusive", "1" = "abusive", "2" = "neither"}``; rows whose raw label is not in the map are dropped.
    ``label_names`` fixes the order of label ids (default: sorted names). ``split_column`` uses given splits
    (values train / validation / test) instead of a seeded stratified split.
    """

    dataset: str | None = None
    scenario: ScenarioSection | None = None
    name: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    group_columns: list[str] = Field(default_factory=list)
    label_map: dict[str, str] | None = None
    label_names: list[str] | None = None
    positive_label: str | None = None
    split_column: str | None = None
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    split_seed: int = 0
    max_examples: int | None = Field(None, gt=0)
    audit_canaries: AuditCanarySection | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FinetuneDataSection:
        if self.dataset is not None and self.scenario is not None:
            raise ValueError("give either dataset or scenario, not both")
        return self


class DPSection(_Strict):
    """Differentially private fine-tuning with DP-SGD (Abadi et al., CCS 2016) through opacus: per-example
    gradients clipped to ``max_grad_norm``, Gaussian noise with the multiplier the accountant picks so that the
    planned epochs reach (``epsilon``, ``delta``), Poisson sampling of batches (expected size ``batch_size``).
    ``delta`` must be below 1/n for n training examples (checked when the data are known)."""

    epsilon: float = Field(gt=0.0)
    delta: float = Field(1e-5, gt=0.0, lt=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    accountant: Literal["rdp", "prv"] = "rdp"


class FinetuneConfig(_Strict):
    """Fine-tuning recipe. ``finetune_classifier`` uses only the training fields; ``run_finetune`` also ``data``."""

    preset: str | None = None
    data: FinetuneDataSection = Field(default_factory=FinetuneDataSection)
    seed: int = 0
    epochs: int = Field(3, gt=0)
    batch_size: int = Field(32, gt=0)
    eval_batch_size: int = Field(128, gt=0)
    learning_rate: float = Field(2e-4, gt=0.0)
    # Layer-wise learning-rate decay (Clark et al., ICLR 2020, ELECTRA; Sun et al., CCL 2019): the classifier head
    # trains at ``learning_rate``, the encoder layer below it at ``learning_rate * decay``, the next at ``decay**2``,
    # ... down to the embeddings. 1.0 = one rate for every parameter.
    layer_lr_decay: float = Field(1.0, gt=0.0, le=1.0)
    # Multiplies the rate of the attention query and key projections only. Fast-growing W_q, W_k sharpen attention
    # to one-hot weights ("attention entropy collapse", Zhai et al., ICML 2023); a smaller rate there slows that
    # growth while values, feed-forward layers and the head train at the full rate. 1.0 = no special treatment.
    query_key_lr_scale: float = Field(1.0, gt=0.0, le=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    max_length: int = Field(128, ge=4)
    patience: int = Field(1, ge=1)  # evaluations without a better validation macro-F1 before stopping
    # Which weights to keep: "best" = the evaluation with the best validation macro-F1 (early stopping); "last" =
    # the final weights after all epochs, no model selection (e.g. a deliberately overfit model, reproduced
    # exactly by the membership probe's reference models, which train with the target's recipe).
    keep: Literal["best", "last"] = "best"
    evals_per_epoch: int = Field(1, ge=1)
    grad_clip: float | None = Field(1.0, gt=0.0)
    classifier_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    hidden_dropout_prob: float | None = Field(0.1, ge=0.0, lt=1.0)  # None keeps the pretrained model's setting
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    dp: DPSection | None = None  # None: ordinary (non-private) fine-tuning


# ----------------------------------------------------------------------------------------------- loading
def load_pretrain_config(path_or_preset: str | Path) -> PretrainConfig:
    """A preset name (tiny, demo, small, base, tiny-causal, small-causal) or a TOML file path → validated PretrainConfig."""
    return _load(path_or_preset, PretrainConfig, PRETRAIN_PRESETS, prefix="")


def load_finetune_config(path_or_preset: str | Path) -> FinetuneConfig:
    """A TOML file path (or a preset: davidson, scenario) → validated FinetuneConfig."""
    return _load(path_or_preset, FinetuneConfig, FINETUNE_PRESETS, prefix="finetune_")


def pretrain_config_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> PretrainConfig:
    return _validate(_expand_preset(data, PRETRAIN_PRESETS, "", source), PretrainConfig, source)


def finetune_config_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> FinetuneConfig:
    return _validate(_expand_preset(data, FINETUNE_PRESETS, "finetune_", source), FinetuneConfig, source)


def _load(path_or_preset, model, presets, *, prefix):
    text = str(path_or_preset)
    if text in presets and not Path(text).exists():
        data = _preset_dict(text, prefix)
        data.setdefault("preset", text)
        return _validate(data, model, f"preset {text!r}")
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"config {text!r} is neither a file nor a preset; expected a TOML file or one of {', '.join(presets)}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({str(error).splitlines()[0]})") from None
    return _validate(_expand_preset(data, presets, prefix, str(path)), model, str(path))


def _expand_preset(data: dict[str, Any], presets, prefix: str, source: str) -> dict[str, Any]:
    name = data.get("preset")
    if name is None:
        return data
    if name not in presets:
        raise ConfigError(f"{source}: unknown preset {name!r}; expected one of {', '.join(presets)}")
    return _deep_merge(_preset_dict(name, prefix), data)


def _preset_dict(name: str, prefix: str) -> dict[str, Any]:
    """A preset's TOML; a preset may itself start from another (``preset = "small"``), whose keys it overrides."""
    text = resources.files("audit").joinpath("presets", f"{prefix}{name}.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    base = data.pop("preset", None)
    return _deep_merge(_preset_dict(base, prefix), data) if base is not None else data


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate(data: dict[str, Any], model, source: str):
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source)) from None
