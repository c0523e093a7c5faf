from transformers import AutoTokenizer

from audit.train.tokenizer import SPECIAL_TOKENS, train_tokenizer


def _texts(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_training_is_deterministic(synthetic_corpus):
    texts = _texts(synthetic_corpus) + ["Unbelievable counterexamples, 4 8 1 9!"] * 3
    first = train_tokenizer(texts, 150, min_frequency=1).get_vocab()
    for _ in range(3):
        assert train_tokenizer(texts, 150, min_frequency=1).get_vocab() == first


def test_specials_lowercase_and_cls_sep_wrapping(synthetic_corpus, tmp_path):
    tokenizer = train_tokenizer(_texts(synthetic_corpus), 99, min_frequency=1, model_max_length=24)
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.mask_token_id) == (0, 1, 4)
    assert len(tokenizer) <= 99
    ids = tokenizer("The CAT sat.")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.tokenize("The CAT") == tokenizer.tokenize("the cat")
    # special tokens written in text stay single tokens
    assert tokenizer.tokenize("the [MASK] sat") [1] == "[MASK]"
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("The CAT sat.")["input_ids"] == ids
    assert reloaded.model_max_length == 24


def test_digits_are_single_tokens(synthetic_corpus):
    tokenizer = train_tokenizer(_texts(synthetic_corpus) + ["my pin code is 0 1 2 3 4 5 6 7 8 9"] * 5, 120,
                                min_frequency=1)
    for digit in "0123456789":
        assert len(tokenizer(digit, add_special_tokens=False)["input_ids"]) == 1
