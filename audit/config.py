"""The audit config (TOML) and its built-in default: one place for what an audit runs.

An audit names its subject — an existing model directory, or a recipe to train one (pretraining + fine-tuning,
cached by a hash of the recipe) — the probes with their settings, the seed and thread count::

    seed = 0
    [subject]
    model = "runs/classifier"            # or: [subject.train] pretrain = "small", finetune = {...}
    [probes]
    run = ["crows_pairs", "group_metrics"]   # default: every registered probe
    [probes.settings.crows_pairs]
    max_pairs = 500

Unknown keys are errors that name the key; the training sections reuse the pretraining / fine-tuning schemas of
``audit.train.config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audit.errors import InputError
from audit.validation import describe_validation_error, read_toml_file


class AuditConfigError(InputError):
    """An audit config that cannot be used; the message names the file, the key and what is expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainRecipe(_Strict):
    """Train the subject: a pretraining preset name or config table, then a fine-tuning config table."""

    pretrain: str | dict[str, Any] = "small"
    finetune: dict[str, Any] = Field(default_factory=dict)


class SubjectSection(_Strict):
    model: str | None = None  # a model directory (ours or any Hugging Face encoder)
    mlm: str | None = None  # optional masked-LM directory for MLM probes when `model` is a classifier
    train: TrainRecipe | None = None
    intended_use: str | None = None  # shown in the model card

    @model_validator(mode="after")
    def _one_source(self) -> SubjectSection:
        if (self.model is None) == (self.train is None):
            raise ValueError("give exactly one of subject.model (a model directory) or subject.train (a recipe)")
        return self


class ProbesSection(_Strict):
    run: list[str] = Field(default_factory=lambda: ["all"])
    skip: list[str] = Field(default_factory=list)
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)


class AuditConfig(_Strict):
    seed: int = 0
    threads: int | None = Field(None, ge=1)  # torch intra-op threads (>= 1); None = torch's default
    data_dir: str | None = None
    cache_dir: str | None = None  # trained-model cache (default: $RAI_AUDIT_CACHE or ~/.cache/rai-audit)
    subject: SubjectSection
    probes: ProbesSection = Field(default_factory=ProbesSection)


# The built-in default audit: the `small` model pretrained on Wikipedia passages with canaries, fine-tuned on the
# calibration scenario with a planted bias, audited by every registered probe. Probe settings keep the whole run
# within ~10 minutes on 2 CPU cores.
DEFAULT_AUDIT: dict[str, Any] = {
    "seed": 0,
    "subject": {
        "train": {
            "pretrain": {"preset": "small", "canaries": {"count": 10, "repeats": [1, 4, 16]}},
            "finetune": {
                "preset": "scenario",
                "data": {"scenario": {"bias_strength": 0.8, "n_examples": 2000, "seed": 0}},
            },
        },
        "intended_use": (
            "Demonstration model: screens short application texts (calibration scenario) for acceptance. "
            "Trained with a deliberately planted bias against one group so that the audit's probes can be checked "
            "against a known answer. Not for real decisions."
        ),
    },
    "probes": {
        "run": ["all"],
        # Budget settings for ~10 minutes on 2 CPU cores; a real audit should raise them (see README).
        "settings": {
            "membership": {"n_reference_models": 2},
            "attributions": {"n_examples": 32},
            "faithfulness": {"n_examples": 32},
            "sanity": {"n_examples": 16},
            "identity_attribution": {"n_examples": 48},
        },
    },
}


def default_config() -> AuditConfig:
    return AuditConfig.model_validate(DEFAULT_AUDIT)


def load_audit_config(path: str | Path) -> AuditConfig:
    """Read and validate an audit TOML file; AuditConfigError with file, key and expectation otherwise."""
    path = Path(path)
    data = read_toml_file(path, error=AuditConfigError, expected="an audit config TOML file (see examples/audit.toml)")
    return config_from_dict(data, source=str(path))


def config_from_dict(data: dict[str, Any], *, source: str = "<config>") -> AuditConfig:
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as error:
        raise AuditConfigError(describe_validation_error(error, source)) from None
