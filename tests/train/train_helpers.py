"""Helpers of the training tests: a synthetic corpus writer and a tiny pretraining config."""

from __future__ import annotations

import random
from pathlib import Path

from audit.train.config import PretrainConfig

WORDS = ["the", "a", "cat", "dog", "bird", "fish", "sat", "ran", "flew", "swam", "on", "under", "near", "over", "mat", "log", "tree", "pond", "red", "blue", "green", "small", "big", "quick", "slow", "happy", "sad", "old", "young", "river", "hill", "city", "town", "north", "south"]


def write_corpus(path: Path, *, documents: int = 120, seed: int = 0) -> Path:
    """Synthetic documents of a few short sentences each, one document per line."""
    rng = random.Random(seed)
    lines = []
    for _ in range(documents):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))) + "." for _ in range(rng.randint(2, 5))]
        lines.append(" ".join(sentences).capitalize())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(corpus: Path, **train_overrides) -> PretrainConfig:
    """Odd tiny sizes (vocab 99, hidden 32, 4 heads, 2 layers) so shape bugs cannot hide."""
    train = {"seed": 0, "batch_size": 8, "learning_rate": 2e-3, "max_steps": 12, "eval_every": 6,
             "eval_sequences": 8, "log_every": 3, "checkpoint_every": 100}
    train.update(train_overrides)
    return PretrainConfig.model_validate({
        "model": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37},
        "tokenizer": {"vocab_size": 99, "min_frequency": 1},
        "corpus": {"dataset": str(corpus), "max_length": 24, "heldout_fraction": 0.1},
        "train": train,
    })
