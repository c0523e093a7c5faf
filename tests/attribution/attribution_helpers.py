"""Helpers for the attribution tests: a 99-token WordPiece tokenizer, tiny classifiers (ours and HF BERT), a tiny
classifier trained on a trivially learnable task, and saving a model behind the real ModelUnderAudit adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "an", "and", "or", "but", "is", "was", "are", "be", "to", "of", "in", "on", "at", "for", "with", "this", "that", "it", "not", "very", "so", "too", "good", "great", "fine", "nice", "happy", "love", "best", "bad", "awful", "poor", "sad", "hate", "worst", "terrible", "movie", "film", "book", "food", "place", "service", "staff", "day", "night", "work", "job", "team", "plan", "idea", "story", "he", "she", "his", "her", "him", "man", "woman", "men", "women", "boy", "girl", "mother", "father", "john", "mary", "james", "sarah", "david", "emma", "doctor", "nurse", "engineer", "teacher", "they", "we", "you", "i", "my", "our", "your", ".", ",", "!", "?", "really", "quite"]
# Larger-than-usual init so an untrained model has a clearly input-dependent, non-linear decision.
INIT_STD = 0.3
SUBWORDS = ["##s", "##ed", "##ing", "##ly", "##er"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: index for index, token in enumerate(SPECIALS + WORDS + SUBWORDS)}
    assert len(vocab) == 99, len(vocab)
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    )


def build_ours(seed: int = 0, num_labels: int = 2):
    from audit.model import AuditTransformerConfig, AuditTransformerForSequenceClassification

    torch.manual_seed(seed)  # fixture-only: builds random weights deterministically
    config = AuditTransformerConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, num_labels=num_labels, pad_token_id=0,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=INIT_STD,
    )
    return AuditTransformerForSequenceClassification(config).eval()


def build_bert(seed: int = 0):
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, num_labels=2, pad_token_id=0, attn_implementation="eager",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=INIT_STD,
    )
    return BertForSequenceClassification(config).eval()


SENTENCES = [
    "the movie was really good",
    "she is a great doctor and a nice mother",
    "awful food .",
    "he hated the service , the staff was so bad",
    "mary loved this book",
    "john is an engineer",
    "the plan was not good but the team was happy",
    "i",
]



POSITIVE = ["good", "great", "nice", "happy", "love", "best"]
NEGATIVE = ["bad", "awful", "poor", "sad", "hate", "worst"]
FILLER = ["the", "a", "movie", "film", "book", "food", "place", "service", "staff", "day", "night", "work",
          "job", "team", "plan", "idea", "story", "is", "was", "and", "it", "this", "that", "very", "so", "of"]


def sentiment_texts(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Texts of 5-9 filler words with exactly one sentiment word; label 1 when it is positive."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = list(rng.choice(FILLER, size=int(rng.integers(5, 10))))
        label = int(rng.integers(0, 2))
        cue = str(rng.choice(POSITIVE if label else NEGATIVE))
        words.insert(int(rng.integers(0, len(words) + 1)), cue)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def train_sentiment_classifier(seed: int = 0, steps: int = 100, init_std: float = 0.1, lr: float = 1e-3):
    """Our tiny classifier trained until it reads the one sentiment word (a known answer for faithfulness).

    init_std 0.1 rather than BERT's 0.02: trained hard from 0.02, the tiny pre-LN model saturates into near-step
    functions along the IG path (completeness gaps of several logits, which the attributions probe flags).
    """
    from audit.model import AuditTransformerConfig, AuditTransformerForSequenceClassification

    torch.manual_seed(seed)
    config = AuditTransformerConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, num_labels=2, pad_token_id=0, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, initializer_range=init_std,
    )
    model = AuditTransformerForSequenceClassification(config)
    tokenizer = build_tokenizer()
    texts, labels = sentiment_texts(512, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(texts), (32,), generator=generator).tolist()
        encoded = tokenizer([texts[i] for i in batch], padding=True, return_tensors="pt")
        output = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                       labels=torch.tensor([labels[i] for i in batch]))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    return model.eval()


def save_subject(model, tokenizer, directory: Path):
    """Save a model + tokenizer as a HF directory and open it with the real adapter (CPU)."""
    from audit.subject import ModelUnderAudit

    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return ModelUnderAudit.from_pretrained(directory, device="cpu")
