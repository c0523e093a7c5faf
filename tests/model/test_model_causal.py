"""The decoder variant (causal = true): causality, the key/value cache, positions under left padding, generate(),
save/load through AutoModelForCausalLM, and the last-token classifier."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, DynamicCache

from audit.model import (
    AuditTransformerForCausalLM,
    AuditTransformerForMaskedLM,
    AuditTransformerForSequenceClassification,
    AuditTransformerModel,
    ConfigError,
    ModelInputError,
)
from tests.model.conftest import PAD_ID, tiny_config

PROMPTS = [[5, 17, 42, 8, 91, 23, 7], [11, 64, 3], [70, 70, 12, 33, 9]]  # ragged, no pad id among them


def causal_config(**overrides):
    return tiny_config(causal=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)


@pytest.fixture
def decoder() -> AuditTransformerForCausalLM:
    torch.manual_seed(3)
    return AuditTransformerForCausalLM(causal_config()).eval()


def left_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(prompt) for prompt in prompts)
    ids = torch.full((len(prompts), width), PAD_ID)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    return ids, mask


def right_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(prompt) for prompt in prompts)
    ids = torch.full((len(prompts), width), PAD_ID)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, : len(prompt)] = torch.tensor(prompt)
        mask[row, : len(prompt)] = 1
    return ids, mask


@torch.no_grad()
def argmax_loop(model, prompt: list[int], new_tokens: int) -> list[int]:
    """Greedy decoding by hand: the whole sequence through the model at every step, no cache."""
    ids = torch.tensor([prompt])
    for _ in range(new_tokens):
        next_id = model(ids).logits[0, -1].argmax()
        ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    return ids[0, len(prompt):].tolist()


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@torch.no_grad()
def test_future_tokens_do_not_change_earlier_logits(implementation):
    torch.manual_seed(0)
    model = AuditTransformerForCausalLM(causal_config(attn_implementation=implementation)).eval()
    ids = torch.randint(1, 99, (2, 12), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[:, 7:] = torch.randint(1, 99, (2, 5), generator=torch.Generator().manual_seed(2))
    before, after = model(ids).logits, model(changed).logits
    torch.testing.assert_close(after[:, :7], before[:, :7], rtol=0, atol=1e-6)
    assert (after[:, 7:] - before[:, 7:]).abs().max() > 1e-3  # later positions do see the change


@torch.no_grad()
def test_the_encoder_stays_bidirectional(config):
    torch.manual_seed(0)
    encoder = AuditTransformerModel(config).eval()
    ids = torch.randint(1, 99, (1, 10), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 98 + 1
    assert (encoder(ids).last_hidden_state[0, 0] - encoder(changed).last_hidden_state[0, 0]).abs().max() > 1e-4


@torch.no_grad()
def test_explicit_and_sdpa_paths_agree_under_the_causal_mask(decoder):
    for ids, mask in (left_padded(PROMPTS), right_padded(PROMPTS), (torch.tensor([PROMPTS[0]]), None)):
        fused = decoder(ids, attention_mask=mask)
        explicit = decoder(ids, attention_mask=mask, output_attentions=True)
        real = mask.bool() if mask is not None else torch.ones_like(ids, dtype=torch.bool)
        torch.testing.assert_close(explicit.logits[real], fused.logits[real], rtol=0, atol=1e-5)
        padded_key_of_real_query = real[:, None, :, None] & ~real[:, None, None, :]  # (B, 1, T, T)
        for weights in explicit.attentions:  # (B, h, T, T): nothing above the diagonal, nothing on padding
            assert torch.all(weights.triu(diagonal=1) == 0)
            assert torch.all(weights.masked_select(padded_key_of_real_query.expand_as(weights)) == 0)


@torch.no_grad()
def test_left_padded_batch_equals_unpadded_single_sequences(decoder):
    ids, mask = left_padded(PROMPTS)
    batched = decoder(ids, attention_mask=mask).logits
    right_ids, right_mask = right_padded(PROMPTS)
    right = decoder(right_ids, attention_mask=right_mask).logits
    for row, prompt in enumerate(PROMPTS):
        alone = decoder(torch.tensor([prompt])).logits[0]
        torch.testing.assert_close(batched[row, -len(prompt):], alone, rtol=0, atol=1e-5)
        torch.testing.assert_close(right[row, : len(prompt)], alone, rtol=0, atol=1e-5)
    assert torch.isfinite(batched).all()  # padding rows too (they attend causally instead of to nothing)


@torch.no_grad()
def test_cache_step_by_step_equals_one_full_forward(decoder):
    ids, mask = left_padded(PROMPTS)
    full = decoder(ids, attention_mask=mask).logits
    cache = DynamicCache()
    pieces = []
    for start, stop in ((0, 3), (3, 4), (4, 7)):  # a prefill, one token, then several at once
        out = decoder(ids[:, start:stop], attention_mask=mask[:, :stop], cache=cache, use_cache=True)
        assert out.cache is cache and cache.get_seq_length() == stop
        pieces.append(out.logits)
    real = mask.bool()
    torch.testing.assert_close(torch.cat(pieces, dim=1)[real], full[real], rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_beams", [1, 3])
@torch.no_grad()
def test_generate_with_and_without_cache_agree_with_a_hand_rolled_argmax_loop(decoder, num_beams):
    new_tokens = 6
    for prompt in PROMPTS:
        ids = torch.tensor([prompt])
        cached = decoder.generate(ids, max_new_tokens=new_tokens, do_sample=False, num_beams=num_beams)
        uncached = decoder.generate(ids, max_new_tokens=new_tokens, do_sample=False, num_beams=num_beams,
                                    use_cache=False)
        assert torch.equal(cached, uncached)
        assert cached[0, : len(prompt)].tolist() == prompt
        if num_beams == 1:
            assert cached[0, len(prompt):].tolist() == argmax_loop(decoder, prompt, new_tokens)


@pytest.mark.parametrize("num_beams", [1, 3])
@torch.no_grad()
def test_left_padded_generate_equals_one_prompt_at_a_time(decoder, num_beams):
    ids, mask = left_padded(PROMPTS)
    batched = decoder.generate(ids, attention_mask=mask, max_new_tokens=5, do_sample=False, num_beams=num_beams,
                               pad_token_id=PAD_ID)
    for row, prompt in enumerate(PROMPTS):
        alone = decoder.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False, num_beams=num_beams)
        assert batched[row, ids.shape[1]:].tolist() == alone[0, len(prompt):].tolist()


def test_loss_is_the_shifted_next_token_cross_entropy(decoder):
    ids, mask = right_padded(PROMPTS)
    labels = ids.masked_fill(mask == 0, -100)
    out = decoder(ids, attention_mask=mask, labels=labels)
    logits = out.logits[:, :-1]
    targets = labels[:, 1:]
    scored = targets != -100
    expected = F.cross_entropy(logits[scored], targets[scored])
    torch.testing.assert_close(out.loss, expected, rtol=0, atol=1e-6)
    out.loss.backward()
    assert decoder.lm_head.weight.grad is not None  # tied: the embedding's gradient
    assert decoder.lm_head.weight is decoder.get_input_embeddings().weight


def test_save_load_round_trip_through_auto_model_for_causal_lm(tmp_path, decoder):
    decoder.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is AuditTransformerForCausalLM and loaded.config.causal is True
    assert loaded.lm_head.weight is loaded.get_input_embeddings().weight
    ids, mask = left_padded(PROMPTS)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, attention_mask=mask).logits, decoder(ids, attention_mask=mask).logits,
                                   rtol=0, atol=0)
        assert torch.equal(loaded.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False),
                           decoder.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False))


@torch.no_grad()
def test_causal_classifier_reads_the_last_real_token_on_either_padding_side(tmp_path, decoder):
    decoder.save_pretrained(tmp_path)
    torch.manual_seed(5)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=3).eval()
    assert type(classifier) is AuditTransformerForSequenceClassification
    torch.testing.assert_close(classifier.transformer.embeddings.word_embeddings.weight,
                               decoder.transformer.embeddings.word_embeddings.weight)
    left = classifier(*left_padded(PROMPTS)).logits
    right = classifier(*right_padded(PROMPTS)).logits
    alone = torch.cat([classifier(torch.tensor([prompt])).logits for prompt in PROMPTS])
    torch.testing.assert_close(left, alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(right, alone, rtol=0, atol=1e-5)
    # the head reads the last token: changing it changes the logits, changing the first one does too (causally seen)
    changed = torch.tensor([PROMPTS[0][:-1] + [PROMPTS[0][-1] % 98 + 1]])
    assert (classifier(changed).logits - alone[:1]).abs().max() > 1e-4


@torch.no_grad()
def test_encoder_classifier_still_reads_cls(config, batch):
    torch.manual_seed(0)
    classifier = AuditTransformerForSequenceClassification(config).eval()
    ids, mask = batch
    hidden = classifier.transformer(ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(classifier(ids, attention_mask=mask).logits, classifier.classifier(hidden[:, 0]))


def test_decoder_and_encoder_heads_refuse_the_other_kind_of_config(config):
    with pytest.raises(ConfigError, match="causal"):
        AuditTransformerForCausalLM(config)
    with pytest.raises(ConfigError, match="causal"):
        AuditTransformerForMaskedLM(causal_config())
    with pytest.raises(ConfigError, match="causal must be true or false"):
        tiny_config(causal="yes")
    with pytest.raises(ModelInputError, match="cache"):
        AuditTransformerModel(config)(torch.tensor([[5, 6]]), use_cache=True)


@torch.no_grad()
def test_cached_decoding_past_the_context_window_is_a_clear_error(decoder):
    cache = DynamicCache()
    decoder(torch.randint(1, 99, (1, 63)), cache=cache, use_cache=True)
    decoder(torch.tensor([[5]]), cache=cache, use_cache=True)  # position 63: the last one there is
    with pytest.raises(ModelInputError, match="max_position_embeddings=64"):
        decoder(torch.tensor([[5]]), cache=cache, use_cache=True)
    short = DynamicCache()
    decoder(torch.tensor([[5, 6]]), cache=short, use_cache=True)
    with pytest.raises(ModelInputError, match="attention_mask covers 2 positions; expected 3"):
        decoder(torch.tensor([[5]]), attention_mask=torch.ones(1, 2), cache=short, use_cache=True)
