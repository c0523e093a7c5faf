"""rai-audit: a responsible-AI audit suite for text encoders.

Importing ``audit`` registers our transformer ("rai-transformer") with the transformers Auto classes, so that
``AutoModelForMaskedLM.from_pretrained(DIR)`` loads our checkpoints.
"""

__version__ = "0.1.0"

from audit import model as _model  # noqa: F401  (registers the Auto classes)
