"""Tiny models for tests, built offline from configs (shared by every test package; ``tests`` is on pythonpath).

Sizes follow the project convention: vocab 99, hidden 32, 4 heads, 2 layers. Every directory holds
``model.safetensors`` + ``config.json`` + a fast WordPiece tokenizer trained here on a few sentences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


# ----------------------------------------------------------------------------------------------------------
# Causal LMs: GPT-2-style (byte-level BPE, BOS = EOS = <|endoftext|>) and Llama-style (metaspace BPE, <s> … </s>,
# no pad token) tokenizers, and the matching tiny configs.
# ----------------------------------------------------------------------------------------------------------

GPT2_END = "<|endoftext|>"


def build_causal_tokenizer(style: str = "gpt2", *, bos: bool = True, eos: bool = True) -> PreTrainedTokenizerFast:
    """A deterministic BPE tokenizer of at most VOCAB ids, without a pad token and with no special tokens added
    on encoding (as GPT-2's). ``style="gpt2"``: byte-level, spaces belong to the following word, one
    ``<|endoftext|>`` serving as BOS and EOS; ``style="llama"``: metaspace ("▁word"), ``<s>`` / ``</s>``.
    ``bos`` / ``eos`` False leave that special token out of the tokenizer (the "no BOS" / "neither" cases)."""
    if style == "gpt2":
        specials = [GPT2_END] if (bos or eos) else []
        pre_tokenizer, decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    elif style == "llama":
        specials = ["<unk>"] + (["<s>"] if bos else []) + (["</s>"] if eos else [])
        pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        decoder = decoders.Metaspace(prepend_scheme="first")
    else:
        raise ValueError(f"style must be 'gpt2' or 'llama', got {style!r}")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>" if style == "llama" else None))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoder
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials, min_frequency=1)
    tokenizer.train_from_iterator(CORPUS + [text.capitalize() + "." for text in CORPUS], trainer=trainer)
    if style == "llama" and bos:  # Llama's tokenizer puts <s> first when special tokens are added
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))])
    named = {}
    if style == "gpt2":
        if bos:
            named["bos_token"] = GPT2_END
        if eos:
            named["eos_token"] = GPT2_END
    else:
        named["unk_token"] = "<unk>"
        if bos:
            named["bos_token"] = "<s>"
        if eos:
            named["eos_token"] = "</s>"
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=64, **named)
    assert len(wrapped) <= VOCAB
    return wrapped


def gpt2_config(tokenizer: PreTrainedTokenizerFast, **overrides) -> Any:
    from transformers import GPT2Config

    settings = {"vocab_size": VOCAB, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64,
                "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": None, **overrides}
    return GPT2Config(**settings)


def llama_config(tokenizer: PreTrainedTokenizerFast, **overrides) -> Any:
    from transformers import LlamaConfig

    settings = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
                "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": None, "tie_word_embeddings": False, **overrides}
    return LlamaConfig(**settings)
