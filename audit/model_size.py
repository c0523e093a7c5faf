"""Refusing absurd model sizes before anything is allocated.

A config with ``hidden_size = 2**31`` would otherwise end in an allocation traceback (or an overflow inside torch)
minutes into a run. These checks read only the dimensions, so they run before a single tensor exists — on a
pretraining config and on a model folder's ``config.json`` alike.
"""

from __future__ import annotations

from typing import Any

# The limits sit above every public text encoder, so no real model is refused, and far below what would overflow:
# XLM-RoBERTa-XXL, the largest public encoder we know of, has 10.7e9 parameters and its largest tensor (the
# 250k x 4096 token embedding) 1.0e9 elements. A bigger config is a typo or a hostile file; the audit and the
# trainer run on one machine, where such a model could not even be held in memory.
MAX_PARAMETERS = 12_000_000_000
MAX_TENSOR_ELEMENTS = 2**31

# HF configs name the same dimension differently (BERT-style, DistilBERT-style, GPT-style).
_DIMENSION_NAMES = {
    "hidden": ("hidden_size", "dim", "d_model", "n_embd"),
    "intermediate": ("intermediate_size", "hidden_dim", "ffn_dim", "n_inner"),
    "layers": ("num_hidden_layers", "n_layers", "num_layers", "n_layer"),
    "vocabulary": ("vocab_size",),
    "positions": ("max_position_embeddings", "n_positions"),
}


def size_problem(*, hidden: int, intermediate: int, layers: int, vocabulary: int, positions: int) -> str | None:
    """Why a transformer encoder of these dimensions is refused, or None when it is within the limits.

    Every weight matrix of an encoder is (vocabulary or positions or hidden) x (hidden or intermediate), and a
    layer holds about 4 hidden² + 2 hidden x intermediate weights; that estimate is what the limits apply to.
    """
    widest = max(vocabulary, positions, hidden, intermediate)
    largest_tensor = widest * max(hidden, intermediate)
    parameters = (vocabulary + positions) * hidden + layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    if largest_tensor > MAX_TENSOR_ELEMENTS:
        return (f"its largest weight matrix would hold about {largest_tensor:.3g} numbers, above the limit of "
                f"{MAX_TENSOR_ELEMENTS:.3g} (hidden size {hidden}, intermediate size {intermediate}, vocabulary "
                f"{vocabulary}, positions {positions}); expected the dimensions of a real encoder")
    if parameters > MAX_PARAMETERS:
        return (f"it would have about {parameters:.3g} parameters, above the limit of {MAX_PARAMETERS:.3g} "
                f"(hidden size {hidden}, {layers} layers, intermediate size {intermediate}); expected the "
                "dimensions of a real encoder")
    return None


def config_size_problem(config: Any) -> str | None:
    """``size_problem`` for a Hugging Face config object; absent dimensions count as 1, and a dimension that is
    not a positive integer is itself the problem."""
    dimensions = {}
    for dimension, names in _DIMENSION_NAMES.items():
        value = next((getattr(config, name) for name in names if getattr(config, name, None) is not None), 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"{names[0]} is {value!r}; expected a positive integer"
        dimensions[dimension] = value
    return size_problem(**dimensions)
