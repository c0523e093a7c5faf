"""Slow known-answer tests on the calibration scenario's fine-tuned classifiers (fixture ``scenario_classifiers``
from tests/conftest.py: {"planted": dir, "control": dir}, bias_strength 0.8 and 0.0).

- the planted-bias model puts clearly more attribution mass on gender-signalling words than the control (CIs
  disjoint);
- on our trained model IG's completeness gap shrinks as n_steps grows and is within tolerance by 100 steps (on the
  default audit's planted classifier: mean |delta| 1.37 / 0.29 / 0.015 / 0.0005 logits at 2 / 8 / 50 / 100 steps;
  10 of 12 texts within tolerance at the probe's default of 50, all 12 at 100);
- IG beats a random ranking on comprehensiveness;
- randomising the model collapses the rank correlation (sanity check passes).
"""

from __future__ import annotations

import numpy as np
import pytest

from audit.data.task import TaskData
from audit.subject import ModelUnderAudit
from probes.attribution.adapter import AttributionModel
from probes.attribution.methods import delta_tolerance, integrated_gradients
from probes.base import ProbeContext, get_probe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario(scenario_classifiers):
    return {
        name: (ModelUnderAudit.from_pretrained(path, device="cpu"), TaskData.load(path))
        for name, path in scenario_classifiers.items()
    }


def test_planted_model_leans_on_identity_words_more_than_control(scenario):
    shares = {}
    for name, (subject, task) in scenario.items():
        result = get_probe("identity_attribution")({"n_examples": 48, "n_steps": 32}).execute(
            ProbeContext(subject=subject, seed=0, task=task)
        )
        assert result.status == "ok", result.message
        shares[name] = result.metric("identity_attribution_share")
    planted, control = shares["planted"], shares["control"]
    assert planted.ci_low > control.ci_high, (planted, control)


def test_ig_delta_converges_on_our_trained_model(scenario):
    subject, task = scenario["planted"]
    view = AttributionModel.from_subject(subject)
    texts = task.texts("test")[:12]
    mean_delta = {}
    for n_steps in (2, 8, 50, 100):
        results = integrated_gradients(view, texts, n_steps=n_steps)
        mean_delta[n_steps] = float(np.mean([abs(r.delta) for r in results]))
        if n_steps == 100:
            within = [abs(r.delta) <= delta_tolerance(r, relative=0.05, absolute=0.01) for r in results]
            assert np.mean(within) >= 0.9, mean_delta
    assert mean_delta[100] < mean_delta[50] < mean_delta[8] < mean_delta[2] or mean_delta[100] < 1e-3, mean_delta


def test_ig_beats_random_and_passes_sanity_on_the_planted_model(scenario):
    subject, task = scenario["planted"]
    context = ProbeContext(subject=subject, seed=0, task=task)
    faithfulness = get_probe("faithfulness")(
        {"n_examples": 32, "methods": ["integrated_gradients"], "n_steps": 32}
    ).execute(context)
    assert faithfulness.status == "ok", faithfulness.message
    assert faithfulness.metric("comprehensiveness_gain_over_random", "integrated_gradients").ci_low > 0

    sanity = get_probe("sanity")({"n_examples": 16, "methods": ["integrated_gradients"], "n_steps": 16}).execute(
        ProbeContext(subject=subject, seed=0, task=task)
    )
    assert sanity.status == "ok", sanity.message
    assert sanity.metric("final_rank_correlation", "integrated_gradients").value < 0.5
