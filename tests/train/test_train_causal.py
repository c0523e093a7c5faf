"""Next-token pretraining (train.objective = "causal") and fine-tuning a classifier from the decoder."""

import json

import pytest
import torch
from safetensors.torch import load_file
from test_train_finetune import FAST, _accuracy, _data_config, _keyword_csv, keyword_task
from train_helpers import tiny_config
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

import audit  # noqa: F401  (registers the Auto classes)
from audit.model import AuditTransformerForCausalLM, AuditTransformerForSequenceClassification
from audit.train.config import load_pretrain_config
from audit.train.finetune import finetune_classifier, run_finetune
from audit.train.pretrain import pretrain


def test_causal_presets_are_small_and_tiny_as_decoders():
    for name, base in (("small-causal", "small"), ("tiny-causal", "tiny")):
        causal, encoder = load_pretrain_config(name), load_pretrain_config(base)
        assert causal.preset == name and causal.train.objective == "causal" and encoder.train.objective == "masked"
        assert (causal.model, causal.tokenizer, causal.corpus, causal.canaries) == (
            encoder.model, encoder.tokenizer, encoder.corpus, encoder.canaries)
        assert causal.train.model_copy(update={"objective": "masked"}) == encoder.train


def test_causal_pretraining_writes_a_decoder_that_auto_model_for_causal_lm_loads(tiny_causal_dir):
    names = {p.name for p in tiny_causal_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "pretrain.json", "canaries.json"} <= names
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    assert type(model) is AuditTransformerForCausalLM and model.config.causal is True
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.padding_side) == ("[CLS]", "[SEP]", "left")
    assert (model.config.bos_token_id, model.config.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    # BOS-prefixed prompts, left-padded as batched generation needs
    prompts = [[tokenizer.bos_token_id, *tokenizer.encode(text, add_special_tokens=False)]
               for text in ("the cat sat on", "a dog")]
    width = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    generated = model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False,
                               pad_token_id=tokenizer.pad_token_id)
    assert generated[:, :width].equal(ids) and width < generated.shape[1] <= width + 4
    alone = model.generate(torch.tensor([prompts[1]]), max_new_tokens=4, do_sample=False)
    assert generated[1, width:width + alone.shape[1] - len(prompts[1])].tolist() == alone[0, len(prompts[1]):].tolist()


def test_decoder_tokenizer_wraps_a_text_with_bos_only_so_continuations_split_at_their_first_word(tiny_causal_dir):
    from audit.subject import ModelUnderAudit

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    words = tokenizer.encode("the cat sat", add_special_tokens=False)
    assert tokenizer.encode("the cat sat") == [tokenizer.bos_token_id, *words]  # no trailing [SEP]
    subject = ModelUnderAudit.from_pretrained(tiny_causal_dir, device="cpu")
    per_token = subject.continuation_logprobs(["the cat"], [" sat on"], per_token=True)[0]
    whole = subject.token_logprobs(["the cat sat on"])[0]
    assert len(per_token) == len(subject.tokenizer.encode(" sat on", add_special_tokens=False))
    assert per_token == pytest.approx(whole[-len(per_token):], abs=1e-5)


def test_causal_pretraining_lowers_the_heldout_next_token_loss(tiny_causal_dir):
    lines = [json.loads(line) for line in (tiny_causal_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if line["kind"] == "eval"]
    assert [e["step"] for e in evals] == [6, 12, 18, 24, 30]
    recipe = json.loads((tiny_causal_dir / "pretrain.json").read_text())
    final = recipe["final"]
    assert recipe["config"]["train"]["objective"] == "causal"
    assert evals[-1]["heldout_loss"] < evals[0]["heldout_loss"] - 0.3
    assert final["heldout_loss"] < final["ln_vocab"] - 0.5  # the synthetic corpus is predictable


def test_heldout_loss_is_the_models_own_next_token_loss(tiny_causal_dir):
    # The recorded loss is recomputable from the saved model on the held-out packed sequences.
    from audit.train.config import PretrainConfig
    from audit.train.corpus import load_corpus, pack, split_heldout

    recipe = json.loads((tiny_causal_dir / "pretrain.json").read_text())
    config = PretrainConfig.model_validate(recipe["config"])
    documents = load_corpus(config.corpus).documents
    _, heldout = split_heldout(documents, config.corpus.heldout_fraction, seed=config.train.seed)
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    sequences = pack(heldout, tokenizer, max_length=config.corpus.max_length)
    count = min(len(sequences), config.train.eval_sequences)
    ids, mask = sequences.input_ids[:count], sequences.attention_mask[:count]
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_dir).eval()
    with torch.no_grad():
        loss = model(ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    assert float(loss) == pytest.approx(recipe["final"]["heldout_loss"], abs=2e-2)  # bf16 autocast in training


def test_causal_resume_gives_uninterrupted_weights(synthetic_corpus, tmp_path):
    config = tiny_config(synthetic_corpus, objective="causal", max_steps=6, eval_every=3)
    straight = load_file(str(pretrain(config, tmp_path / "straight") / "model.safetensors"))
    pretrain(config, tmp_path / "resumed", stop_after_steps=4)
    resumed = load_file(str(pretrain(config, tmp_path / "resumed", resume=True)
                            / "model.safetensors"))
    assert straight.keys() == resumed.keys()
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6, rtol=0) for k in straight)


def test_classifier_from_a_causal_checkpoint_pools_the_last_token_on_either_padding_side(tiny_causal_dir):
    outcome = finetune_classifier(tiny_causal_dir, keyword_task(160), keyword_task(40, seed=1, split="validation"),
                                  FAST, seed=0)
    model, tokenizer = outcome.model, outcome.tokenizer
    assert type(model) is AuditTransformerForSequenceClassification and model.config.causal is True
    assert _accuracy(outcome, keyword_task(60, seed=2, split="test")) >= 0.9
    texts = [example.text for example in keyword_task(12, seed=3, split="test")]
    with torch.no_grad():
        logits = {}
        for side in ("left", "right"):
            tokenizer.padding_side = side
            logits[side] = model(**tokenizer(texts, padding=True, truncation=True, max_length=24,
                                             return_tensors="pt")).logits
        alone = torch.cat([model(**tokenizer([text], truncation=True, max_length=24, return_tensors="pt")).logits
                           for text in texts])
    torch.testing.assert_close(logits["left"], alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(logits["right"], alone, rtol=0, atol=1e-5)


def test_run_finetune_records_that_the_classifier_came_from_a_causal_lm(tiny_causal_dir, tmp_path):
    csv = _keyword_csv(tmp_path / "data.csv")
    out = run_finetune(_data_config(csv, max_examples=60), tiny_causal_dir, tmp_path / "clf")
    recipe = json.loads((out / "finetune.json").read_text())
    assert recipe["pretrained_from"] == str(tiny_causal_dir.resolve()) and recipe["pretrained_kind"] == "causal-lm"
    assert AutoModelForSequenceClassification.from_pretrained(out).config.causal is True
