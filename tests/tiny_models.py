"""Tiny models for tests, built offline from configs (shared by every test package; ``tests`` is on pythonpath).

Sizes follow the project convention: vocab 99, hidden 32, 4 heads, 2 layers. Every directory holds
``model.safetensors`` + ``config.json`` + a fast WordPiece tokenizer trained here on a few sentences.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, DistilBertConfig, PreTrainedTokenizerFast

from audit.model import AuditTransformerConfig

VOCAB = 99
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CORPUS = [
    "the doctor said she would arrive soon",
    "the nurse said he was tired after the shift",
    "a man and a woman walked to the market",
    "my neighbour is a kind person who bakes bread",
    "the engineer fixed the old bridge yesterday",
    "children played football in the park",
    "she reads books every night before sleeping",
    "he cooked dinner for his family",
    "the teacher explained the lesson twice",
    "unbelievably, the weather was wonderful today",
] * 3

SENTENCES = [
    "the doctor said she would arrive soon",
    "a woman walked to the park",
    "he cooked bread",
    "unbelievably the engineer played football with children",
    "the nurse reads",
    "my kind neighbour fixed the old bridge yesterday before dinner",
    "the teacher said he was tired",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A deterministic lower-casing WordPiece tokenizer with BERT's special tokens and [CLS] x [SEP] framing."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, min_frequency=1)
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    )
    assert len(wrapped) <= VOCAB
    return wrapped


def bert_config(**overrides) -> BertConfig:
    settings = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 64, "max_position_embeddings": 64, "pad_token_id": 0, **overrides}
    return BertConfig(**settings)


def distilbert_config(**overrides) -> DistilBertConfig:
    settings = {"vocab_size": VOCAB, "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64,
                "max_position_embeddings": 64, "pad_token_id": 0, **overrides}
    return DistilBertConfig(**settings)


def ours_config(**overrides) -> AuditTransformerConfig:
    settings = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 64, "max_position_embeddings": 64, "pad_token_id": 0, **overrides}
    return AuditTransformerConfig(**settings)


def save(model, tokenizer, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
