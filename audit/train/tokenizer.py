"""WordPiece tokenizer trained on the pretraining corpus (Wu et al., 2016; the BERT recipe of Devlin et al., 2019).

Lowercasing BERT normaliser, BERT pre-tokeniser (whitespace + punctuation split), specials
[PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4, and a post-processor that wraps every text as ``[CLS] text [SEP]``
(pairs: ``[CLS] a [SEP] b [SEP]``).

Determinism: the `tokenizers` trainer creates the ``##c`` continuation tokens in hash-map order, and their ids
break ties between equally frequent merges, so two runs on the same texts can give different vocabularies
(huggingface/tokenizers#1794). We fix the alphabet ourselves (characters seen at least ``min_char_count`` times,
sorted) and pre-register every ``##c`` in sorted order, which leaves no order-dependent choice to the trainer; the
final tokenizer is then rebuilt from the learned vocabulary with only the five real special tokens.

For a decoder (``for_decoder=True``) the same vocabulary also names [CLS] its beginning-of-sequence and [SEP] its
end-of-sequence token (the two that start and end every packed pretraining sequence and separate its documents),
so that scoring can condition a text's first token on BOS as lm-eval-harness does; it wraps a text as
``[CLS] text`` only (no trailing EOS, so a continuation split at the context's length starts at its first word),
and pads on the left, as batched generation needs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONTINUATION_PREFIX = "##"


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8192,
    *,
    min_frequency: int = 2,
    min_char_count: int = 5,
    model_max_length: int = 512,
    required_characters: Iterable[str] = (),
    for_decoder: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a lowercase WordPiece tokenizer on ``texts`` and wrap it for transformers.

    Characters seen fewer than ``min_char_count`` times are left out of the alphabet (words holding them become
    [UNK]), which keeps stray Unicode from using up vocabulary slots; ``required_characters`` (e.g. the canary
    digits) are always kept, so each stays a single token however rare.
    """
    texts = list(texts)
    normalizer = normalizers.BertNormalizer(clean_text=True, lowercase=True, strip_accents=None)
    alphabet = sorted(set(_alphabet(texts, min_char_count)) | {c.lower() for c in required_characters})

    scaffold = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    scaffold.normalizer = normalizer
    scaffold.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS + [CONTINUATION_PREFIX + char for char in alphabet],
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        continuing_subword_prefix=CONTINUATION_PREFIX,
        show_progress=False,
    )
    scaffold.train_from_iterator(texts, trainer=trainer)
    return _wrap(scaffold.get_vocab(), model_max_length, for_decoder=for_decoder)


def _alphabet(texts: list[str], min_char_count: int) -> list[str]:
    # str.lower matches the normaliser's lowercasing and is much faster than calling it per text; characters the
    # normaliser would drop (control characters) only cost an unused alphabet slot.
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text.lower())
    return sorted(char for char, count in counts.items() if count >= min_char_count and not char.isspace())


def _wrap(vocab: dict[str, int], model_max_length: int, *, for_decoder: bool = False) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, lowercase=True, strip_accents=None)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX)
    backend.add_special_tokens(SPECIAL_TOKENS)
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    backend.post_processor = processors.TemplateProcessing(
        # A decoder's text ends where its words end (as Llama's tokenizer does): a trailing EOS would be
        # scored as part of a continuation and read by last-token pooling instead of the last word.
        single="[CLS] $A" if for_decoder else "[CLS] $A [SEP]",
        pair="[CLS] $A $B:1" if for_decoder else "[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    decoder_tokens = {"bos_token": "[CLS]", "eos_token": "[SEP]"} if for_decoder else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **decoder_tokens,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        padding_side="left" if for_decoder else "right",
    )
