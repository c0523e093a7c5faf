"""Our transformer; importing registers it with the transformers Auto classes.

After ``import audit`` (or ``import audit.model``), ``AutoConfig`` / ``AutoModel`` / ``AutoModelForMaskedLM`` /
``AutoModelForSequenceClassification`` / ``AutoModelForCausalLM`` load "rai-transformer" checkpoints without
remote code.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
)

from audit.model.configuration import AuditTransformerConfig, ConfigError
from audit.model.modeling import (
    AuditTransformerForCausalLM,
    AuditTransformerForMaskedLM,
    AuditTransformerForSequenceClassification,
    AuditTransformerModel,
    AuditTransformerPreTrainedModel,
    ModelInputError,
)

AutoConfig.register(AuditTransformerConfig.model_type, AuditTransformerConfig, exist_ok=True)
AutoModel.register(AuditTransformerConfig, AuditTransformerModel, exist_ok=True)
AutoModelForCausalLM.register(AuditTransformerConfig, AuditTransformerForCausalLM, exist_ok=True)
AutoModelForMaskedLM.register(AuditTransformerConfig, AuditTransformerForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(
    AuditTransformerConfig, AuditTransformerForSequenceClassification, exist_ok=True
)

__all__ = [
    "AuditTransformerConfig",
    "AuditTransformerForCausalLM",
    "AuditTransformerForMaskedLM",
    "AuditTransformerForSequenceClassification",
    "AuditTransformerModel",
    "AuditTransformerPreTrainedModel",
    "ConfigError",
    "ModelInputError",
]
