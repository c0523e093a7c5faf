"""Fixtures of the training tests: a synthetic corpus and a tiny pretrained model (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import tiny_config, write_corpus

from audit.train.config import CanarySection


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="session")
def tiny_pretrained_dir(tmp_path_factory, synthetic_corpus) -> Path:
    """A tiny model pretrained on the synthetic corpus with canaries (count 2, repeats 1 and 3)."""
    from audit.train.pretrain import pretrain

    config = tiny_config(synthetic_corpus, max_steps=30).model_copy(
        update={"canaries": CanarySection(count=2, repeats=[1, 3], length=4, seed=3)}
    )
    return pretrain(config, tmp_path_factory.mktemp("pretrained") / "tiny")


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory, synthetic_corpus) -> Path:
    """The tiny model of ``tiny_pretrained_dir`` as a decoder: next-token pretraining, same corpus and canaries."""
    from audit.train.pretrain import pretrain

    config = tiny_config(synthetic_corpus, objective="causal", max_steps=30).model_copy(
        update={"canaries": CanarySection(count=2, repeats=[1, 3], length=4, seed=3)}
    )
    return pretrain(config, tmp_path_factory.mktemp("pretrained") / "tiny-causal")
