"""rai-audit: a responsible-AI audit suite for text encoders.

Importing ``audit`` registers our transformer ("rai-transformer") with the transformers Auto classes, so that
``AutoModelForMaskedLM.from_pretrained(DIR)`` loads our checkpoints. The registration needs torch, so it happens
when transformers is imported (at once if it already is): reading results (report, gate, compare, verify)
imports neither torch nor transformers.
"""

import importlib

from audit.import_hook import call_after_import

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    importlib.import_module("audit.model")  # importing it registers the Auto classes


call_after_import("transformers", _register_auto_classes)
