"""Identity-token attribution: term positions, the share arithmetic, and a planted known answer — a model whose
decision rests on a pronoun puts clearly more attribution mass on identity words than a control that ignores them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from probes.attribution.adapter import AttributionModel
from probes.attribution.identity import (
    IdentityAttributionProbe,
    attribution_share,
    identity_category,
    identity_positions,
    term_lookup,
)
from probes.attribution.methods import TokenAttribution
from probes.base import ProbeContext, ProbeInputError

TEXTS = [
    "she is a great doctor", "he is a great doctor", "the movie was good and she was happy",
    "the staff was bad , he said", "mary is a nurse and her work is good", "john is an engineer , his job is bad",
    "the food was awful , she said", "he loved the book", "her plan was a good idea", "his idea was not good",
    "the woman was very happy", "the man was very sad", "this girl is nice", "this boy is nice",
]


def test_identity_positions_use_shared_term_lists(tiny_tokenizer, tiny_ours):
    view = AttributionModel.from_model(tiny_ours, tiny_tokenizer)
    lookup, longest = term_lookup(identity_category("gender"))
    positions, values = identity_positions(view, "She told him that her mother was a doctor", lookup, longest)
    tokens = view.tokens(tiny_tokenizer("She told him that her mother was a doctor")["input_ids"])
    assert [tokens[p] for p in positions] == ["she", "him", "her", "mother"]
    assert values == ["female", "male", "female", "female"]
    assert identity_positions(view, "the movie was good", lookup, longest) == ([], [])
    with pytest.raises(ProbeInputError, match="unknown identity category"):
        identity_category("no-such-category")


def test_share_is_the_absolute_mass_on_identity_tokens():
    attribution = TokenAttribution(
        text="x", input_ids=[2, 5, 6, 7, 3], tokens=["[CLS]", "a", "b", "c", "[SEP]"],
        special=np.array([True, False, False, False, True]), scores=np.array([0.0, 1.0, -3.0, 0.0, 0.0]),
        target=0, target_logit=0.0,
    )
    assert attribution_share(attribution, [2]) == pytest.approx(0.75)
    assert attribution_share(attribution, [0, 2, 4]) == pytest.approx(0.75)  # specials never count


class PronounModel(nn.Module):
    """Bag of embeddings with a fixed readout; ``pronoun_weight`` is how strongly 'she'/'he' drive the decision."""

    def __init__(self, tokenizer, pronoun_weight: float):
        super().__init__()
        self.embedding = nn.Embedding(99, 2)
        with torch.no_grad():
            self.embedding.weight.zero_()
            vocabulary = tokenizer.get_vocab()
            for word in ("good", "great", "happy", "nice", "love"):
                self.embedding.weight[vocabulary[word], 0] = 1.0
            for word in ("bad", "awful", "sad", "not"):
                self.embedding.weight[vocabulary[word], 0] = -1.0
            for word in ("she", "her", "woman", "girl", "mary"):
                self.embedding.weight[vocabulary[word], 1] = pronoun_weight

    def forward(self, input_ids, attention_mask):
        pooled = (self.embedding(input_ids) * attention_mask[..., None]).sum(1)  # (B, 2)
        score = pooled[:, 0] - pooled[:, 1] + 0.1
        return torch.stack([-score, score], dim=-1)


class _Subject:
    """The probe-facing surface of ModelUnderAudit for a non-HF toy module (forward + embedding + tokenizer)."""

    max_length = 64

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.capabilities = {"classifier", "embeddings"}
        self.labels = ["negative", "positive"]

    def classifier_forward(self, input_ids, attention_mask):
        return self.model(input_ids, attention_mask)

    def input_embeddings(self):
        return self.model.embedding

    def word_alignment(self, text):
        return AttributionModel(forward=None, embedding_layer=self.model.embedding,
                                tokenizer=self.tokenizer).word_alignment(text)


def test_planted_reliance_on_identity_words_is_recovered(tiny_tokenizer):
    results = {}
    for name, weight in (("planted", 2.0), ("control", 0.0)):
        subject = _Subject(PronounModel(tiny_tokenizer, weight), tiny_tokenizer)
        probe = IdentityAttributionProbe({"texts": TEXTS, "n_steps": 10, "n_bootstrap": 500})
        result = probe.execute(ProbeContext(subject=subject, seed=0))
        assert result.status == "ok", result.message
        results[name] = result.metric("identity_attribution_share")
    planted, control = results["planted"], results["control"]
    assert control.value == pytest.approx(0.0, abs=1e-9)  # the control never reads identity words
    assert planted.ci_low > control.ci_high and planted.value > 0.25  # CIs disjoint
    assert planted.higher_is_better is False


def test_counterfactual_change_and_groups(tiny_tokenizer):
    """Only the female terms carry weight: the share drops when they are swapped to male terms."""
    subject = _Subject(PronounModel(tiny_tokenizer, 2.0), tiny_tokenizer)
    result = IdentityAttributionProbe({"texts": TEXTS, "n_steps": 10, "n_bootstrap": 500}).execute(
        ProbeContext(subject=subject, seed=0)
    )
    change = result.metric("counterfactual_share_change")
    female, male = result.metric("identity_attribution_share", "female"), result.metric(
        "identity_attribution_share", "male"
    )
    assert female.value > 0.3 and male.value == pytest.approx(0.0, abs=1e-9)
    # female originals lose their share when swapped, male originals gain it: the mean change is ~0 by design
    # of the balanced texts, but every pair changes.
    assert result.metric("counterfactual_share_abs_change").value > 0.2
    assert change.target == 0.0
    assert len(result.per_example["identity_share"]) == len(result.per_example["example_ids"])
    assert {f.metric for f in result.findings} >= {"identity_attribution_share", "counterfactual_share_change"}
