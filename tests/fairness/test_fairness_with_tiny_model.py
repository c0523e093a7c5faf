"""The fairness probes end to end on a real (tiny, untrained) classifier loaded through ModelUnderAudit."""

from __future__ import annotations

import json

import pytest
from tiny_models import build_tokenizer, ours_config, save

from audit.data.scenarios import make_calibration_scenario
from audit.model import AuditTransformerForSequenceClassification
from audit.subject import ModelUnderAudit
from probes.base import ProbeContext, get_probe


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    model = AuditTransformerForSequenceClassification(ours_config(num_labels=2))
    directory = save(model, build_tokenizer(), tmp_path_factory.mktemp("fair_tiny"))
    return ModelUnderAudit.from_pretrained(directory)


@pytest.mark.parametrize(
    "probe_name, config",
    [
        ("group_metrics", {"n_resamples": 100, "identity_terms": True}),
        ("mitigation", {"n_resamples": 100}),
        ("subgroup_auc", {"terms": ["female", "male", "she", "he"], "n_resamples": 50, "min_subgroup_size": 5}),
    ],
)
def test_probe_runs_on_a_real_subject(tiny_classifier, probe_name, config):
    task = make_calibration_scenario(n_examples=240, bias_strength=0.8, seed=0)
    result = get_probe(probe_name)(config).execute(ProbeContext(subject=tiny_classifier, seed=0, task=task))
    assert result.status == "ok", result.message
    json.loads(result.model_dump_json())  # serialisable: no NaN anywhere
    ids = result.per_example["example_ids"]
    assert all(len(values) == len(ids) for values in result.per_example.values())
