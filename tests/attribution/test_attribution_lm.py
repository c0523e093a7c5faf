"""lm_attribution: captum's LLM attribution of a continuation's log-probability on tiny causal LMs (GPT-2, Llama,
ours), feature ablation as captum defines it, IG completeness, a planted one-token dependence, identity shifts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_models import build_causal_tokenizer, build_tokenizer, gpt2_config, llama_config, ours_config, save
from torch import nn
from transformers import GPT2LMHeadModel, LlamaForCausalLM

from audit.model import AuditTransformerForCausalLM
from audit.subject import ModelUnderAudit
from probes.attribution.lm_attribution import CausalLMExplainer, counterparts
from probes.base import ProbeContext, get_probe

PROMPT, CONTINUATION = "the doctor said she would", " arrive soon"


def _causal(kind: str):
    torch.manual_seed(5)
    if kind == "gpt2":
        tokenizer = build_causal_tokenizer("gpt2")
        return GPT2LMHeadModel(gpt2_config(tokenizer, initializer_range=0.2)).eval(), tokenizer
    if kind == "llama":
        tokenizer = build_causal_tokenizer("llama")
        return LlamaForCausalLM(llama_config(tokenizer, initializer_range=0.2)).eval(), tokenizer
    tokenizer = build_tokenizer()  # ours: [CLS]/[SEP] named BOS/EOS, as our causal pretraining names them
    tokenizer.bos_token, tokenizer.eos_token = "[CLS]", "[SEP]"
    return AuditTransformerForCausalLM(ours_config(causal=True, initializer_range=0.2)).eval(), tokenizer


@pytest.fixture(scope="module", params=["gpt2", "llama", "ours"])
def explainer(request):
    model, tokenizer = _causal(request.param)
    prefix = tokenizer.bos_token_id
    return CausalLMExplainer(model, tokenizer, prefix_id=prefix, baseline_id=tokenizer.eos_token_id)


def test_feature_ablation_is_the_drop_when_a_token_is_replaced(explainer):
    result = explainer.attribute(PROMPT, CONTINUATION, "feature_ablation")
    inp = explainer.token_input(PROMPT)
    ids = inp.to_model_input()
    assert ids[0, 0].item() == explainer.prefix_id  # conditioned on the prefix token, which is never attributed
    assert result.scores.shape == (ids.shape[1] - 1,) == (len(result.tokens),)
    target = explainer.continuation_ids(CONTINUATION)
    for feature in (0, len(result.tokens) - 1):
        ablated = ids.clone()
        ablated[0, feature + 1] = explainer.baseline_id
        expected = result.logprob - explainer.logprob(ablated, target)
        assert result.scores[feature] == pytest.approx(expected, abs=1e-4)


def test_integrated_gradients_add_up_to_the_log_probability_change(explainer):
    result = explainer.attribute(PROMPT, CONTINUATION, "layer_integrated_gradients", n_steps=64)
    change = result.logprob - result.baseline_logprob
    assert result.scores.shape == (len(result.tokens),)
    assert abs(change) > 0.05
    assert abs(result.delta) <= 0.02 * abs(change) + 1e-3


class PlantedLM(nn.Module):
    """Every next-token distribution reads the token at position ``key`` (plus a weak average of all tokens)."""

    def __init__(self, vocab: int, key: int):
        super().__init__()
        torch.manual_seed(0)
        self.key = key
        self.embed = nn.Embedding(vocab, 16)
        self.out = nn.Linear(16, vocab)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids=None, attention_mask=None, **_):
        vectors = self.embed(input_ids)  # (B, T, H)
        hidden = vectors[:, self.key] + 0.05 * vectors.mean(dim=1)  # (B, H)
        return SimpleNamespace(logits=self.out(hidden)[:, None].expand(-1, input_ids.shape[1], -1))


@pytest.mark.parametrize("method", ["feature_ablation", "layer_integrated_gradients"])
@pytest.mark.parametrize("key", [2, 4])
def test_planted_dependence_gets_the_largest_attribution(method, key):
    tokenizer = build_causal_tokenizer("gpt2")
    explainer = CausalLMExplainer(PlantedLM(len(tokenizer), key), tokenizer, prefix_id=tokenizer.bos_token_id,
                                  baseline_id=tokenizer.eos_token_id)
    result = explainer.attribute(PROMPT, CONTINUATION, method, n_steps=32)
    magnitude = np.abs(result.scores)
    assert int(np.argmax(magnitude)) == key - 1  # feature 0 is the token after the prefix
    assert magnitude[key - 1] > 3 * np.delete(magnitude, key - 1).max()


def test_identity_shift_is_the_counterfactual_log_probability_gap(explainer):
    template, continuation = "the {} said she would", " arrive"
    shift = explainer.identity_shift(template, "woman", "man", continuation)
    target = explainer.continuation_ids(continuation)
    def logprob(term):
        return explainer.logprob(explainer.token_input(template.format(term)).to_model_input(), target)
    assert shift == pytest.approx(logprob("woman") - logprob("man"), abs=1e-4)
    assert counterparts(["woman", "sister"]) == [("woman", "man"), ("sister", "brother")]


SMALL = {"n_steps": 8, "n_bootstrap": 200, "identity_terms": ["woman", "girl", "mother"],
         "prompts": [{"prompt": "the doctor said she", "continuation": " would"}],
         "templates": [{"template": "the {} said", "continuation": " she"}]}


def test_probe_on_a_causal_subject_is_deterministic_and_checks_terms(tmp_path):
    model, tokenizer = _causal("gpt2")
    subject = ModelUnderAudit.from_pretrained(save(model, tokenizer, tmp_path / "gpt2"), device="cpu")
    first = get_probe("lm_attribution")(SMALL).execute(ProbeContext(subject=subject, seed=3))
    assert first.status == "ok", first.message
    names = {(m.name, m.group) for m in first.metrics}
    assert ("ig_share_within_tolerance", None) in names and ("method_rank_agreement", None) in names
    assert any(name == "identity_logprob_shift" for name, _ in names)
    assert first.findings[0].message.startswith("Scoring:")
    second = get_probe("lm_attribution")(SMALL).execute(ProbeContext(subject=subject, seed=3))
    strip = lambda r: {k: v for k, v in r.model_dump(mode="json").items() if k != "duration_s"}
    assert strip(first) == strip(second)
    with pytest.raises(Exception, match="term lists"):
        get_probe("lm_attribution")({**SMALL, "identity_terms": ["zebra"]}).run(ProbeContext(subject=subject, seed=3))
