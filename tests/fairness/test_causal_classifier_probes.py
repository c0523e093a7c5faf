"""Every classifier probe on decoder classifiers: ours fine-tuned causal (last-token pooling), HF GPT-2 without a
pad id, and Llama whose configured pad id is not the one its padless tokenizer would pad with (the quirks that
made Hugging Face's ids-based last-token pooling refuse batches or read padding)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import build_causal_tokenizer, build_tokenizer, gpt2_config, llama_config, ours_config, save
from transformers import GPT2ForSequenceClassification, LlamaForSequenceClassification

from audit.data.scenarios import make_calibration_scenario
from audit.model import AuditTransformerForSequenceClassification
from audit.pooling import classifier_logits, read_position
from audit.subject import ModelUnderAudit
from probes.attribution.adapter import AttributionModel
from probes.attribution.methods import attention_rollout, integrated_gradients
from probes.base import ProbeContext, get_probe

TEXTS = ["the doctor said she would arrive soon", "he cooked bread", "a woman walked to the park today",
         "the nurse reads"]


def _build(kind: str):
    torch.manual_seed(3)
    if kind == "ours_causal":
        tokenizer = build_tokenizer()
        model = AuditTransformerForSequenceClassification(ours_config(num_labels=2, causal=True, initializer_range=0.3))
    elif kind == "gpt2":  # pad_token_id None, as released GPT-2 checkpoints
        tokenizer = build_causal_tokenizer("gpt2")
        model = GPT2ForSequenceClassification(gpt2_config(tokenizer, num_labels=2, initializer_range=0.3))
    else:  # configured pad = </s>, tokenizer without a pad token
        tokenizer = build_causal_tokenizer("llama")
        model = LlamaForSequenceClassification(llama_config(tokenizer, num_labels=2, initializer_range=0.3,
                                                            pad_token_id=tokenizer.eos_token_id))
        # nn.Embedding zeroes the padding_idx row; a checkpoint given pad = </s> after pretraining has a trained
        # one. (A zero baseline embedding is degenerate for a model without position embeddings: RMSNorm is
        # scale-free, so the IG path jumps at its start and completeness fails, as the attributions probe reports.)
        with torch.no_grad():
            model.get_input_embeddings().weight[tokenizer.eos_token_id].normal_(0.0, 0.3)
    model.config.attn_implementation = "eager"
    return model.eval(), tokenizer


KINDS = ["ours_causal", "gpt2", "llama"]


@pytest.fixture(scope="module")
def causal_classifiers(tmp_path_factory):
    root = tmp_path_factory.mktemp("causal_classifiers")
    subjects = {}
    for kind in KINDS:
        model, tokenizer = _build(kind)
        subjects[kind] = (model, tokenizer, ModelUnderAudit.from_pretrained(save(model, tokenizer, root / kind),
                                                                          device="cpu"))
    return subjects


@pytest.mark.parametrize("kind", KINDS)
def test_batched_logits_are_the_models_own_unpadded_logits(causal_classifiers, kind):
    model, tokenizer, subject = causal_classifiers[kind]
    assert read_position(model) == "last"
    with torch.no_grad():
        own = np.vstack([model(**tokenizer(text, return_tensors="pt")).logits.numpy() for text in TEXTS])
    np.testing.assert_allclose(subject.logits(TEXTS, batch_size=4), own, atol=1e-5)
    # A row of pad ids that ends in a real token (an all-[PAD] attribution baseline) is read at that last token,
    # as the model reads it unpadded.
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else tokenizer.eos_token_id
    encoded = tokenizer(TEXTS[:1], return_tensors="pt")
    baseline = torch.full_like(encoded["input_ids"], pad_id)
    baseline[0, -1] = encoded["input_ids"][0, -1]
    with torch.no_grad():
        np.testing.assert_allclose(classifier_logits(model, baseline, encoded["attention_mask"]).numpy(),
                                   model(input_ids=baseline).logits.numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_integrated_gradients_are_complete_and_rollout_starts_at_the_last_token(causal_classifiers, kind):
    model, tokenizer, subject = causal_classifiers[kind]
    explained = AttributionModel.from_subject(subject)
    assert explained.read_position == "last"
    attributions = integrated_gradients(explained, [TEXTS[1], TEXTS[3]], n_steps=128, batch_size=2)
    for attribution in attributions:
        assert attribution.scores.shape == (len(attribution.input_ids),)
        gap = attribution.target_logit - attribution.baseline_logit
        assert abs(attribution.delta) <= 0.02 * abs(gap) + 1e-3, (kind, attribution.delta, gap)
    for attribution in attention_rollout(AttributionModel.from_model(model, tokenizer), TEXTS, batch_size=4):
        assert attribution.scores[attribution.content_positions].sum() > 0.2  # the [CLS] row would give ~0


CLASSIFIER_PROBES = [  # settings cut to the bone: this checks that each runs, not what it finds
    ("group_metrics", {"n_resamples": 100, "identity_terms": True}),
    ("mitigation", {"n_resamples": 100}),
    ("subgroup_auc", {"terms": ["female", "male", "she", "he"], "n_resamples": 50, "min_subgroup_size": 5}),
    ("counterfactual", {"max_examples": 40, "n_bootstrap": 200}),
    ("madlibs_terms", {"force": True, "max_sentences": 200, "min_sentences_per_term": 1}),
    ("attributions", {"n_steps": 4, "n_examples": 3, "n_bootstrap": 200}),
    ("faithfulness", {"methods": ["gradient_x_input"], "n_random": 1, "n_examples": 3, "n_bootstrap": 200}),
    ("sanity", {"methods": ["gradient_x_input"], "n_examples": 3, "n_bootstrap": 200}),
    ("identity_attribution", {"n_steps": 4, "n_examples": 4, "n_bootstrap": 200}),
]


@pytest.mark.slow  # 27 probe runs, ~3 min of CPU in all
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("probe_name, config", CLASSIFIER_PROBES, ids=[name for name, _ in CLASSIFIER_PROBES])
def test_classifier_probe_runs_unchanged(causal_classifiers, kind, probe_name, config):
    subject = causal_classifiers[kind][2]
    task = make_calibration_scenario(n_examples=100, bias_strength=0.8, seed=0)
    result = get_probe(probe_name)(config).execute(ProbeContext(subject=subject, seed=0, task=task))
    assert result.status == "ok", result.message
    assert result.metrics
    json.loads(result.model_dump_json())
