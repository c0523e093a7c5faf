"""Tiny Hugging Face model directories for the subject-adapter tests, built offline from configs.

Sizes follow the project convention: vocab 99, hidden 32, 4 heads, 2 layers. Every directory holds
``model.safetensors`` + ``config.json`` + a fast WordPiece tokenizer trained here on a few sentences.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from tiny_models import (
    SENTENCES,
    bert_config,
    build_causal_tokenizer,
    build_tokenizer,
    distilbert_config,
    gpt2_config,
    llama_config,
    ours_config,
    save,
)
from transformers import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from audit.model import AuditTransformerForMaskedLM, AuditTransformerForSequenceClassification


def _seeded(factory, seed: int):
    torch.manual_seed(seed)
    return factory().eval()


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory, tiny_tokenizer) -> dict[str, Path]:
    """Saved tiny models by name; the classifiers ``bert_cls_ft`` / ``ours_cls_ft`` record ``bert_mlm`` /
    ``ours_mlm`` as ``pretrained_from`` in their ``finetune.json``."""
    root = tmp_path_factory.mktemp("subject_models")
    dirs = {
        "bert_mlm": save(_seeded(lambda: BertForMaskedLM(bert_config()), 1), tiny_tokenizer, root / "bert_mlm"),
        "distil_mlm": save(_seeded(lambda: DistilBertForMaskedLM(distilbert_config()), 2), tiny_tokenizer,
                           root / "distil_mlm"),
        "distil_cls": save(_seeded(lambda: DistilBertForSequenceClassification(distilbert_config(num_labels=3)), 3),
                           tiny_tokenizer, root / "distil_cls"),
        "bert_base": save(_seeded(lambda: BertModel(bert_config()), 4), tiny_tokenizer, root / "bert_base"),
        "bert_cls_ft": save(_seeded(lambda: BertForSequenceClassification(bert_config(num_labels=2)), 5),
                            tiny_tokenizer, root / "bert_cls_ft"),
        "ours_mlm": save(_seeded(lambda: AuditTransformerForMaskedLM(ours_config()), 6), tiny_tokenizer,
                         root / "ours_mlm"),
        "ours_cls_ft": save(_seeded(lambda: AuditTransformerForSequenceClassification(ours_config(num_labels=2)), 7),
                            tiny_tokenizer, root / "ours_cls_ft"),
    }
    (dirs["ours_cls_ft"] / "finetune.json").write_text(json.dumps({"pretrained_from": "../ours_mlm"}))
    (dirs["bert_cls_ft"] / "finetune.json").write_text(json.dumps({"pretrained_from": "../bert_mlm"}))
    return dirs


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return list(SENTENCES)


CAUSAL_TOKENIZERS = {  # name -> (style, has BOS, has EOS)
    "gpt2": ("gpt2", True, True),
    "gpt2_no_bos": ("gpt2", False, True),
    "gpt2_bare": ("gpt2", False, False),
    "llama": ("llama", True, True),
}


@pytest.fixture(scope="session")
def causal_dirs(tmp_path_factory) -> dict[str, Path]:
    """Saved tiny causal LMs (GPT-2 with BOS = EOS, without BOS, with neither; Llama with <s> / </s> and no pad
    token) and ``gpt2_cls_ft``, a GPT-2 classifier whose ``finetune.json`` names ``gpt2`` as ``pretrained_from``."""
    root = tmp_path_factory.mktemp("causal_models")
    dirs = {}
    for seed, (name, (style, bos, eos)) in enumerate(CAUSAL_TOKENIZERS.items(), start=11):
        tokenizer = build_causal_tokenizer(style, bos=bos, eos=eos)
        config = (gpt2_config if style == "gpt2" else llama_config)(tokenizer)
        factory = GPT2LMHeadModel if style == "gpt2" else LlamaForCausalLM
        dirs[name] = save(_seeded(functools.partial(factory, config), seed), tokenizer, root / name)
    gpt2_tokenizer = build_causal_tokenizer("gpt2")
    classifier_config = gpt2_config(gpt2_tokenizer, num_labels=2, pad_token_id=gpt2_tokenizer.eos_token_id)
    dirs["gpt2_cls_ft"] = save(_seeded(lambda: GPT2ForSequenceClassification(classifier_config), 20), gpt2_tokenizer,
                               root / "gpt2_cls_ft")
    (dirs["gpt2_cls_ft"] / "finetune.json").write_text(json.dumps({"pretrained_from": "../gpt2"}))
    return dirs
