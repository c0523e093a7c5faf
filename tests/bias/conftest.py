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
from causal_helpers import CAUSAL_KINDS

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


@pytest.fixture(scope="session")
def tiny_causal_subjects(tmp_path_factory) -> dict[str, ModelUnderAudit]:
    """Untrained tiny causal LMs behind the real adapter: GPT-2 (BOS = EOS), Llama (<s> … </s>, no pad token) and
    our decoder (with the corpus tokenizer of causal_helpers)."""
    import torch
    from causal_helpers import corpus_tokenizer
    from tiny_models import build_causal_tokenizer, gpt2_config, llama_config, save
    from transformers import GPT2LMHeadModel, LlamaForCausalLM

    from audit.model import AuditTransformerConfig, AuditTransformerForCausalLM

    root = tmp_path_factory.mktemp("bias_causal")
    subjects = {}
    for seed, kind in enumerate(CAUSAL_KINDS, start=31):
        torch.manual_seed(seed)
        if kind == "ours":
            tokenizer = corpus_tokenizer()
            model = AuditTransformerForCausalLM(AuditTransformerConfig(
                vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=32, pad_token_id=0, causal=True, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id))
        else:
            tokenizer = build_causal_tokenizer(kind)
            model = (GPT2LMHeadModel(gpt2_config(tokenizer)) if kind == "gpt2"
                     else LlamaForCausalLM(llama_config(tokenizer)))
        subjects[kind] = ModelUnderAudit.from_pretrained(save(model.eval(), tokenizer, root / kind), device="cpu")
    return subjects


@pytest.fixture(scope="session")
def causal_planted_subjects(tmp_path_factory) -> dict[str, ModelUnderAudit]:
    """Our tiny decoder trained on the occupation corpus with the planted (90% own pronoun) and the control (50%)
    association (about 25 s of one CPU core each)."""
    from causal_helpers import occupation_corpus, train_causal

    root = tmp_path_factory.mktemp("bias_causal_planted")
    return {name: ModelUnderAudit.from_pretrained(train_causal(occupation_corpus(share), root / name), device="cpu")
            for name, share in (("planted", 0.9), ("control", 0.5))}
