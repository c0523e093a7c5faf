"""rai-audit: a responsible-AI audit suite for text encoders.

Importing ``audit`` registers our transformer ("rai-transformer") with the transformers Auto classes, so that
``AutoModelForMaskedLM.from_pretrained(DIR)`` loads our checkpoints. The registration needs torch, so it happens
when transformers is imported (at once if it already is): reading results (report, gate, compare, verify)
imports neither torch nor transformers.
"""

import importlib

from audit.import_hook import call_after_import

DISTRIBUTION = "rai-audit"


def __getattr__(name: str) -> str:
    """``audit.__version__``: the installed distribution's version, so that pyproject.toml is the one place it
    is written (imported and read on first use: importing importlib.metadata alone takes tens of milliseconds)."""
    if name == "__version__":
        from importlib import metadata

        try:
            return metadata.version(DISTRIBUTION)
        except metadata.PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'audit' has no attribute {name!r}")


def _register_auto_classes() -> None:
    importlib.import_module("audit.model")  # importing it registers the Auto classes


call_after_import("transformers", _register_auto_classes)
