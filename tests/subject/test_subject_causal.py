"""The causal-lm capability: loading, log-likelihoods against a one-text-at-a-time reference, batching and padding
invariance, prefix tokens, continuation splitting, decoding against a hand-rolled argmax loop, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audit.causal_lm import CausalLMScorer
from audit.subject import CapabilityMissingError, ModelUnderAudit, SequenceTooLongError, SubjectLoadError

CAUSAL = ["gpt2", "gpt2_no_bos", "gpt2_bare", "llama"]
TEXTS = [
    "the doctor said she would arrive soon",
    "A woman walked to the park.",
    "he cooked bread",
    "unbelievably the engineer played football with children",
    "the nurse reads",
    "my kind neighbour fixed the old bridge yesterday before dinner",
    "the teacher said he was tired",
    "children",
]


@pytest.fixture(scope="module", params=CAUSAL)
def causal_subject(request, causal_dirs):
    return ModelUnderAudit.from_pretrained(causal_dirs[request.param], device="cpu")


def reference_logprobs(model, tokens: list[int]) -> np.ndarray:
    """log p(tokens[i] | tokens[<i]) for i >= 1 from one unpadded forward and a float64 full log-softmax."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tokens])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    return np.asarray([log_probs[position - 1, token].item() for position, token in enumerate(tokens)][1:])


def encode(subject, text: str) -> list[int]:
    return subject.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_causal_lm_folders_get_the_capability(causal_dirs):
    for name in CAUSAL:
        subject = ModelUnderAudit.from_pretrained(causal_dirs[name], device="cpu")
        assert subject.capabilities == {"causal-lm", "embeddings"}
        assert subject.causal_lm is subject.model and subject.causal_lm_path == causal_dirs[name].resolve()
        assert subject.mlm is None and subject.classifier is None
        info = subject.info()
        assert info.capabilities == ["causal-lm", "embeddings"]
        assert info.model_card["sentence_logprob_note"] == subject.sentence_logprob_note


def test_classifier_fine_tuned_from_a_causal_lm_gets_causal_lm(causal_dirs, model_dirs):
    subject = ModelUnderAudit.from_pretrained(causal_dirs["gpt2_cls_ft"], device="cpu")
    assert subject.capabilities == {"classifier", "causal-lm", "embeddings"}
    assert subject.causal_lm_path == causal_dirs["gpt2"].resolve() and subject.mlm is None
    assert subject.info().model_card["causal_lm"]["architecture"] == "GPT2LMHeadModel"
    plain = ModelUnderAudit.from_pretrained(causal_dirs["gpt2"], device="cpu")
    np.testing.assert_allclose(subject.sentence_logprobs(TEXTS), plain.sentence_logprobs(TEXTS), atol=1e-6)
    explicit = ModelUnderAudit.from_pretrained(model_dirs["distil_cls"], lm_path=model_dirs["distil_mlm"])
    assert "mlm" in explicit.capabilities and "causal-lm" not in explicit.capabilities


def test_lm_path_and_mlm_path_are_checked(causal_dirs, model_dirs, tmp_path):
    with pytest.raises(SubjectLoadError, match="is not a masked-LM"):
        ModelUnderAudit.from_pretrained(causal_dirs["gpt2_cls_ft"], mlm_path=causal_dirs["gpt2"], device="cpu")
    with pytest.raises(SubjectLoadError, match="not both"):
        ModelUnderAudit.from_pretrained(causal_dirs["gpt2_cls_ft"], mlm_path=causal_dirs["gpt2"],
                                        lm_path=causal_dirs["gpt2"])
    with pytest.raises(SubjectLoadError, match="is not a masked or causal LM"):
        ModelUnderAudit.from_pretrained(causal_dirs["gpt2_cls_ft"], lm_path=model_dirs["bert_base"], device="cpu")
    with pytest.raises(SubjectLoadError, match="has vocabulary"):  # a causal LM of another vocabulary
        ModelUnderAudit.from_pretrained(model_dirs["bert_cls_ft"], lm_path=_wider_gpt2(causal_dirs, tmp_path))


def _wider_gpt2(causal_dirs, tmp_path):
    from tiny_models import build_causal_tokenizer, gpt2_config, save
    from transformers import GPT2LMHeadModel

    tokenizer = build_causal_tokenizer("gpt2")
    return save(GPT2LMHeadModel(gpt2_config(tokenizer, vocab_size=120)), tokenizer, tmp_path / "wide")


def test_encoders_have_no_causal_lm(model_dirs):
    subject = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cpu")
    assert "causal-lm" not in subject.capabilities and subject.causal_lm is None
    with pytest.raises(CapabilityMissingError, match="no causal-lm capability"):
        subject.sentence_logprobs(["the doctor"])


def test_prefix_token_follows_lm_eval(causal_dirs):
    tokenizers = {name: ModelUnderAudit.from_pretrained(causal_dirs[name], device="cpu") for name in CAUSAL}
    assert tokenizers["gpt2"].prefix_token_id == tokenizers["gpt2"].tokenizer.bos_token_id
    assert tokenizers["gpt2_no_bos"].tokenizer.bos_token_id is None
    assert tokenizers["gpt2_no_bos"].prefix_token_id == tokenizers["gpt2_no_bos"].tokenizer.eos_token_id
    assert tokenizers["gpt2_bare"].prefix_token_id is None
    assert "first token" in tokenizers["gpt2_bare"].sentence_logprob_note
    assert tokenizers["llama"].prefix_token_id == tokenizers["llama"].tokenizer.convert_tokens_to_ids("<s>")
    assert tokenizers["llama"].tokenizer.pad_token_id is None


def test_token_logprobs_match_one_text_at_a_time(causal_subject):
    scores = causal_subject.token_logprobs(TEXTS, batch_size=3)
    prefix = causal_subject.prefix_token_id
    for text, values in zip(TEXTS, scores):
        tokens = encode(causal_subject, text)
        sequence = tokens if prefix is None else [prefix, *tokens]
        assert values.dtype == np.float64 and len(values) == len(sequence) - 1
        np.testing.assert_allclose(values, reference_logprobs(causal_subject.causal_lm, sequence), atol=1e-5)
    sums = causal_subject.sentence_logprobs(TEXTS)
    np.testing.assert_allclose(sums, [values.sum() for values in scores], atol=1e-9)
    assert sums.shape == (len(TEXTS),) and np.all(sums < 0)


def test_batch_size_order_and_padding_side_do_not_change_scores(causal_subject):
    baseline = causal_subject.sentence_logprobs(TEXTS, batch_size=32)
    per_token = causal_subject.token_logprobs(TEXTS, batch_size=1)
    left = CausalLMScorer(causal_subject.causal_lm, causal_subject.tokenizer, device=causal_subject.device,
                          max_length=causal_subject.max_length, padding_side="left")
    for batch_size in (1, 2, 5, 32):
        np.testing.assert_allclose(causal_subject.sentence_logprobs(TEXTS, batch_size=batch_size), baseline,
                                   atol=1e-5)
        np.testing.assert_allclose(left.sentence_logprobs(TEXTS, batch_size=batch_size), baseline, atol=1e-5)
    for ours, theirs in zip(left.token_logprobs(TEXTS, batch_size=4), per_token):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(causal_subject.sentence_logprobs(TEXTS[::-1])[::-1], baseline, atol=1e-5)
    contexts, continuations = ["the doctor", "", "my kind neighbour fixed the old"], [" said", "he cooked", " bridge"]
    np.testing.assert_allclose(left.continuation_logprobs(contexts, continuations, batch_size=2),
                               causal_subject.continuation_logprobs(contexts, continuations, batch_size=1), atol=1e-5)
    assert causal_subject.sentence_logprobs([]).shape == (0,)


def test_without_prefix_the_first_token_is_skipped(causal_dirs):
    subject = ModelUnderAudit.from_pretrained(causal_dirs["gpt2_bare"], device="cpu")
    assert [len(values) for values in subject.token_logprobs(TEXTS)] == [len(encode(subject, t)) - 1 for t in TEXTS]
    with pytest.raises(ValueError, match=r"texts\[1\] has no token to score"):
        subject.sentence_logprobs(["the doctor", "the"])


def test_continuations_split_as_lm_eval_does(causal_subject):
    contexts = ["the doctor said", "the doctor said ", "a woman walked to the", ""]
    continuations = [" she would", "she would", " park.", "he cooked bread"]
    per_token = causal_subject.continuation_logprobs(contexts, continuations, per_token=True)
    sums = causal_subject.continuation_logprobs(contexts, continuations)
    np.testing.assert_allclose(sums, [values.sum() for values in per_token], atol=1e-9)
    for context, continuation, values in zip(contexts[:3], continuations[:3], per_token[:3]):
        kept = context.rstrip()
        head = causal_subject.tokenizer(kept)["input_ids"]  # special tokens as the tokenizer adds them
        tail = causal_subject.tokenizer(kept + context[len(kept):] + continuation)["input_ids"][len(head):]
        assert len(values) == len(tail)
        expected = reference_logprobs(causal_subject.causal_lm, head + tail)[-len(tail):]
        np.testing.assert_allclose(values, expected, atol=1e-5)
    # The trailing space of a context belongs to the continuation.
    np.testing.assert_allclose(per_token[0], per_token[1], atol=1e-6)
    # An empty context is the prefix token, as for a whole sentence.
    np.testing.assert_allclose(sums[3], causal_subject.sentence_logprobs(["he cooked bread"])[0], atol=1e-6)


def test_empty_continuation_and_mismatched_lists_are_refused(causal_subject):
    with pytest.raises(ValueError, match=r"continuations\[1\] is empty"):
        causal_subject.continuation_logprobs(["the doctor", "the nurse"], [" said", ""])
    with pytest.raises(ValueError, match="2 contexts but 1 continuations"):
        causal_subject.continuation_logprobs(["a", "b"], [" c"])
    with pytest.raises(TypeError, match="single string"):
        causal_subject.sentence_logprobs("the doctor")
    with pytest.raises(ValueError, match=r"texts\[0\] has no token to score"):
        causal_subject.sentence_logprobs([""])


def test_text_longer_than_the_window_is_an_error(causal_dirs):
    subject = ModelUnderAudit.from_pretrained(causal_dirs["llama"], device="cpu", max_length=12)
    long_text = "my kind neighbour fixed the old bridge yesterday before dinner"
    with pytest.raises(SequenceTooLongError, match=r"texts\[1\] has \d+ tokens to read, more than the context "
                                                   r"window of 12"):
        subject.sentence_logprobs(["he cooked", long_text])
    with pytest.raises(SequenceTooLongError, match=r"contexts\[0\] \+ continuations\[0\]"):
        subject.continuation_logprobs([long_text], [" and"])
    assert subject.sentence_logprobs(["he cooked"]).shape == (1,)


def greedy_reference(model, prompt: list[int], max_new_tokens: int, eos: int | None) -> list[int]:
    """Hand-rolled greedy decoding: recompute the whole sequence each step, take the argmax, stop at EOS."""
    sequence, new = list(prompt), []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(input_ids=torch.tensor([sequence])).logits[0, -1].argmax())
            sequence.append(token)
            new.append(token)
            if token == eos:
                break
    return new


def test_greedy_generation_equals_an_argmax_loop(causal_subject):
    prompts = [encode(causal_subject, text)[:length] for text, length in zip(TEXTS, (3, 7, 1, 5, 2))]
    generated = causal_subject.generate_ids(prompts, max_new_tokens=9, batch_size=3)
    eos = causal_subject.tokenizer.eos_token_id
    for prompt, new in zip(prompts, generated):
        assert new == greedy_reference(causal_subject.causal_lm, prompt, 9, eos)
        assert 1 <= len(new) <= 9
    assert causal_subject.generate_ids(prompts, max_new_tokens=9, batch_size=1) == generated


def test_beam_generation_is_deterministic_and_batch_independent(causal_subject):
    prompts = [encode(causal_subject, text)[:length] for text, length in zip(TEXTS, (4, 2, 3))]
    beams = causal_subject.generate_ids(prompts, max_new_tokens=6, num_beams=3)
    assert beams == causal_subject.generate_ids(prompts, max_new_tokens=6, num_beams=3, batch_size=1)
    assert all(1 <= len(new) <= 6 for new in beams)


def test_generation_input_errors(causal_dirs):
    subject = ModelUnderAudit.from_pretrained(causal_dirs["gpt2"], device="cpu", max_length=10)
    with pytest.raises(SequenceTooLongError, match=r"prompt_ids\[1\] has 6 tokens; with max_new_tokens 5"):
        subject.generate_ids([[3, 4], [3, 4, 5, 6, 7, 8]], max_new_tokens=5)
    with pytest.raises(ValueError, match=r"prompt_ids\[0\] is empty"):
        subject.generate_ids([[]], max_new_tokens=2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        subject.generate_ids([[3, 500]], max_new_tokens=2)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive integer"):
        subject.generate_ids([[3]], max_new_tokens=0)


def test_mean_embeddings_of_a_causal_lm(causal_subject):
    embedded = causal_subject.embed(TEXTS, batch_size=3)
    for row, text in enumerate(TEXTS):
        encoded = causal_subject.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = causal_subject.causal_lm.base_model(input_ids=encoded["input_ids"]).last_hidden_state[0]
        np.testing.assert_allclose(embedded[row], hidden.mean(dim=0).numpy(), atol=1e-5)


def test_finetune_record_naming_a_missing_lm_says_lm_path(causal_dirs, tmp_path):
    import shutil

    copy = tmp_path / "cls"
    shutil.copytree(causal_dirs["gpt2_cls_ft"], copy)
    (copy / "finetune.json").write_text(json.dumps({"pretrained_from": "../nowhere"}))
    with pytest.raises(SubjectLoadError, match="pass lm_path="):
        ModelUnderAudit.from_pretrained(copy, device="cpu")
