"""Fixtures for the bias-probe tests (helpers live in bias_helpers.py)."""

from __future__ import annotations

import pytest
from bias_helpers import (
    build_word_tokenizer,
    planted_corpus,
    save_subject,
    tiny_bert,
    tiny_ours,
    train_mlm,
)

from audit.subject import ModelUnderAudit


@pytest.fixture(scope="session")
def word_tokenizer():
    return build_word_tokenizer()


@pytest.fixture(scope="session")
def tiny_subjects(tmp_path_factory, word_tokenizer) -> dict[str, ModelUnderAudit]:
    """Untrained tiny masked LMs (ours and BERT) behind the real adapter."""
    root = tmp_path_factory.mktemp("bias_tiny")
    return {
        "ours": save_subject(tiny_ours(1), word_tokenizer, root / "ours"),
        "bert": save_subject(tiny_bert(2), word_tokenizer, root / "bert"),
    }


@pytest.fixture(scope="session")
def planted_subjects(tmp_path_factory, word_tokenizer) -> dict[str, ModelUnderAudit]:
    """Our tiny MLM trained on the planted (90%) and the control (50%) corpus."""
    root = tmp_path_factory.mktemp("bias_planted")
    subjects = {}
    for name, strength in (("planted", 0.9), ("control", 0.5)):
        model = train_mlm(tiny_ours(3), word_tokenizer, planted_corpus(strength))
        subjects[name] = save_subject(model, word_tokenizer, root / name)
    return subjects
