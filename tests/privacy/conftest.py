"""Session fixtures of the privacy tests: a tiny randomly initialised masked-LM of our architecture."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from privacy_helpers import random_sentence

from audit.model import AuditTransformerConfig, AuditTransformerForMaskedLM
from audit.train.tokenizer import train_tokenizer
from probes.privacy.shadow import pinned_threads


@pytest.fixture(scope="session")
def tiny_pretrained_dir(tmp_path_factory) -> Path:
    """A randomly initialised masked-LM of our architecture with a WordPiece tokenizer over WORDS."""
    directory = tmp_path_factory.mktemp("privacy-tiny-mlm")
    rng = np.random.default_rng(0)
    tokenizer = train_tokenizer([random_sentence(rng, 20) for _ in range(200)], vocab_size=99, min_frequency=1,
                                min_char_count=1, model_max_length=32)
    config = AuditTransformerConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
                                    pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AuditTransformerForMaskedLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def canary_pretrained_dir(tmp_path_factory) -> Path:
    """A tiny masked-LM (hidden 64) pretrained on 20 Wikipedia passages with 8 canaries planted once, 8 planted 16
    times and 8 controls (about 30 s): small enough to memorise the 16x secrets."""
    from audit.train.config import pretrain_config_from_dict
    from audit.train.pretrain import pretrain

    config = pretrain_config_from_dict({
        "preset": "tiny",
        "model": {"hidden_size": 64, "intermediate_size": 128},
        "tokenizer": {"vocab_size": 200, "min_frequency": 1},
        "corpus": {"dataset": "wiki_passages", "max_documents": 20, "max_length": 32, "heldout_fraction": 0.05},
        "train": {"max_steps": 3000, "batch_size": 16, "learning_rate": 5e-3, "mlm_probability": 0.3,
                  "eval_every": 10_000, "checkpoint_every": 100_000, "log_every": 10_000, "precision": "fp32"},
        "canaries": {"count": 8, "repeats": [1, 16], "length": 6, "seed": 0},
    })
    out = tmp_path_factory.mktemp("privacy-canaries") / "mlm"
    # One thread: bit-reproducible, and immune to oversubscription when other jobs share the cores.
    with pinned_threads(1):
        return pretrain(config, out, data_dir=os.environ.get("RAI_AUDIT_DATA_DIR"))


@pytest.fixture(scope="session")
def causal_canary_dir(tmp_path_factory) -> Path:
    """A tiny causal LM (our decoder, hidden 64, 2 layers) pretrained next-token on 150 Wikipedia passages, 30 of
    them held out, with 6 canaries planted once, 6 four times, 6 sixteen times and 6 controls, for about 40
    epochs: it memorises its training documents and the 16x secrets (shared by the extraction, exposure and
    pretraining-membership known answers)."""
    from audit.train.config import pretrain_config_from_dict
    from audit.train.pretrain import pretrain

    config = pretrain_config_from_dict(CAUSAL_CANARY_RECIPE)
    out = tmp_path_factory.mktemp("privacy-causal-canaries") / "clm"
    with pinned_threads(1):
        return pretrain(config, out, data_dir=os.environ.get("RAI_AUDIT_DATA_DIR"))


CAUSAL_CANARY_RECIPE = {
    "preset": "tiny-causal",
    "model": {"hidden_size": 64, "intermediate_size": 128},
    "tokenizer": {"vocab_size": 300, "min_frequency": 1},
    "corpus": {"dataset": "wiki_passages", "max_documents": 150, "max_length": 32, "heldout_fraction": 0.2},
    "train": {"max_steps": 3000, "batch_size": 16, "learning_rate": 5e-3, "warmup_fraction": 0.05,
              "eval_every": 10_000, "checkpoint_every": 100_000, "log_every": 10_000, "precision": "fp32"},
    "canaries": {"count": 6, "repeats": [1, 4, 16], "length": 6, "seed": 0},
}
