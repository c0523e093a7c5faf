"""Fixtures for the attribution tests (helpers live in attribution_helpers.py)."""

from __future__ import annotations

import pytest
from attribution_helpers import (
    SENTENCES,
    build_bert,
    build_ours,
    build_tokenizer,
    save_subject,
    train_sentiment_classifier,
)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_ours():
    return build_ours()


@pytest.fixture(scope="session")
def tiny_bert():
    return build_bert()


@pytest.fixture(scope="session")
def sentences():
    return list(SENTENCES)


@pytest.fixture(scope="session")
def trained_sentiment():
    """Our tiny classifier trained to read the single sentiment word of each text (a few seconds on CPU)."""
    return train_sentiment_classifier()


@pytest.fixture(scope="session")
def tiny_subjects(tmp_path_factory, tiny_tokenizer, tiny_ours, tiny_bert):
    """The tiny classifiers behind the real ModelUnderAudit adapter."""
    root = tmp_path_factory.mktemp("attribution_subjects")
    return {
        "ours": save_subject(tiny_ours, tiny_tokenizer, root / "ours"),
        "bert": save_subject(tiny_bert, tiny_tokenizer, root / "bert"),
    }
