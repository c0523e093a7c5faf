"""Helpers for the bias-probe tests: a word-level tokenizer, tiny masked LMs (vocab 99, hidden 32, 4 heads,
2 layers) and a tiny MLM trained on a corpus with a planted group–attribute association."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

from audit.model import AuditTransformerConfig, AuditTransformerForMaskedLM
from audit.subject import ModelUnderAudit

VOCAB_SIZE = 99
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
GROUP_A, GROUP_B = "farmers", "sailors"
ATTRIBUTES_X = ["lazy", "rude", "loud", "dirty"]  # planted with GROUP_A
ATTRIBUTES_Y = ["kind", "calm", "smart", "clean"]  # planted with GROUP_B
TEMPLATES = ["the {g} are {a} .", "all {g} seem {a} .", "those {g} were {a} .", "many {g} look {a} .",
             "some {g} act {a} .", "our {g} became {a} ."]
OTHER_WORDS = ["he", "she", "his", "her", "him", "man", "woman", "doctor", "nurse", "people", "person", "black", "white", "poor", "rich", "old", "young", "christian", "muslim", "gay", "straight", "this", "is", "here", "that", "there", "it", "a", "an", "was", "good", "bad", "nice", "mean", "very", "quite", "always", "never", "can", "not", "go", "to", "market", "home", "work", "with", "and", "or", "but", "of", "in", "on", "at", "for", "by", "from", "they", "we", "you", "i", "!", "?", ",", "'", ";", ":", "blank"]


def word_vocabulary() -> list[str]:
    words = SPECIALS + [GROUP_A, GROUP_B] + ATTRIBUTES_X + ATTRIBUTES_Y
    for template in TEMPLATES:
        words += [word for word in template.split() if "{" not in word]
    words += OTHER_WORDS
    unique = list(dict.fromkeys(words))
    assert len(unique) <= VOCAB_SIZE, len(unique)
    return unique


def build_word_tokenizer() -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer (unknown words → [UNK]) with [CLS] x [SEP] framing and offsets."""
    vocabulary = {word: index for index, word in enumerate(word_vocabulary())}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = vocabulary["[CLS]"], vocabulary["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=32,
    )


def tiny_ours(seed: int) -> AuditTransformerForMaskedLM:
    torch.manual_seed(seed)
    config = AuditTransformerConfig(vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, max_position_embeddings=32, pad_token_id=0)
    return AuditTransformerForMaskedLM(config).eval()


def tiny_bert(seed: int) -> BertForMaskedLM:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32, pad_token_id=0)
    return BertForMaskedLM(config).eval()


def save_subject(model, tokenizer, directory: Path) -> ModelUnderAudit:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return ModelUnderAudit.from_pretrained(directory, device="cpu")


def planted_corpus(strength: float, *, repeats: int = 10, seed: int = 0) -> list[str]:
    """Sentences like "the farmers are lazy ." with exact counts: per template, GROUP_A appears with each X
    attribute ``round(strength * repeats)`` times and with each Y attribute the rest of ``repeats``; GROUP_B is the
    mirror image. ``strength`` 0.5 is the association-free control (every combination equally often)."""
    own_count = round(strength * repeats)
    sentences = []
    for group, own, other in ((GROUP_A, ATTRIBUTES_X, ATTRIBUTES_Y), (GROUP_B, ATTRIBUTES_Y, ATTRIBUTES_X)):
        for template in TEMPLATES:
            for attribute in own:
                sentences += [template.format(g=group, a=attribute)] * own_count
            for attribute in other:
                sentences += [template.format(g=group, a=attribute)] * (repeats - own_count)
    order = np.random.default_rng(seed).permutation(len(sentences))
    return [sentences[index] for index in order]


def train_mlm(model, tokenizer, sentences: list[str], *, steps: int = 400, seed: int = 0):
    """A minimal MLM loop: one random non-special token masked per sentence, Adam, batch 64."""
    generator = torch.Generator().manual_seed(seed)
    encoded = tokenizer(sentences, padding=True, return_tensors="pt")
    input_ids, attention = encoded["input_ids"], encoded["attention_mask"]
    special = torch.isin(input_ids, torch.tensor(tokenizer.all_special_ids))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, len(sentences), (64,), generator=generator)
        ids, mask = input_ids[rows].clone(), attention[rows]
        weights = (~special[rows]).float() * mask
        chosen = torch.multinomial(weights, 1, generator=generator).squeeze(1)  # (64,)
        labels = torch.full_like(ids, -100)
        labels[torch.arange(64), chosen] = ids[torch.arange(64), chosen]
        ids[torch.arange(64), chosen] = tokenizer.mask_token_id
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def planted_pairs() -> list[dict]:
    """CrowS-style rows: sent_more pairs each group with its planted attribute, sent_less swaps the group."""
    rows = []
    for template in TEMPLATES:
        for attribute in ATTRIBUTES_X:
            rows.append({"sent_more": template.format(g=GROUP_A, a=attribute),
                         "sent_less": template.format(g=GROUP_B, a=attribute),
                         "stereo_antistereo": "stereo", "bias_type": "occupation-x"})
        for attribute in ATTRIBUTES_Y:
            rows.append({"sent_more": template.format(g=GROUP_B, a=attribute),
                         "sent_less": template.format(g=GROUP_A, a=attribute),
                         "stereo_antistereo": "stereo", "bias_type": "occupation-y"})
    return rows


class RowsContext:
    """Builds a ProbeContext whose load_dataset serves in-memory rows by name (no catalog, no files)."""

    def __init__(self, rows_by_name: dict[str, list[dict]]):
        self.rows_by_name = rows_by_name

    def __call__(self, subject, *, seed: int = 0, task=None):
        import datasets

        from probes.base import ProbeContext

        context = ProbeContext(subject=subject, seed=seed, task=task)
        context.load_dataset = lambda name, **options: datasets.Dataset.from_list(self.rows_by_name[name])
        return context
