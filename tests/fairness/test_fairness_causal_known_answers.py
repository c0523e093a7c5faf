"""Known answer (d) of issue 17 (slow): the calibration scenario's planted bias is found on a *decoder* classifier —
a small causal LM pretrained on next-token prediction, fine-tuned on the scenario with last-token pooling — by the
group_metrics selection-rate gap (interval above 0) and the counterfactual probe (gender swaps flip the planted
model far more), while the zero-bias control stays quiet (gap interval covers 0).

Sized for CI: `tiny-causal` widened to hidden 64 with a 2,000-word tokenizer, 150 next-token steps, then the
`scenario` fine-tuning preset for 5 epochs (tests/conftest.py, fixture ``causal_scenario_classifiers``, shared
by every test here).

Measured (2 loaded CPU cores, fp32): planted selection-rate gap (male − female) 0.46 [0.375, 0.541], control
-0.005 [-0.106, 0.100]; gender flip rate 0.512 [0.465, 0.557] planted vs 0.228 [0.188, 0.273] control. Test
accuracy is not asserted: the control learns the scenario's merit rule only weakly at this size (0.475-0.61 between
runs; 0.49-0.55 after 600 or 1,500 next-token steps and 5-15 epochs), so the planted rule, which reads the gender
words, is what these classifiers have learned best — enough for the known answer, which is the gap, not accuracy.
"""

from __future__ import annotations

import pytest

from audit.data.task import TaskData
from audit.subject import ModelUnderAudit
from probes.base import ProbeContext, get_probe

COMPARISON = "gender=male vs gender=female"


@pytest.fixture(scope="module")
def causal_subjects(causal_scenario_classifiers) -> dict[str, ModelUnderAudit]:
    return {name: ModelUnderAudit.from_pretrained(path, device="cpu")
            for name, path in causal_scenario_classifiers.items()}


def _context(subject: ModelUnderAudit) -> ProbeContext:
    return ProbeContext(subject=subject, seed=0, task=TaskData.load(subject.path))


@pytest.mark.slow
def test_causal_classifier_is_a_decoder_that_keeps_its_language_model(causal_subjects):
    for subject in causal_subjects.values():
        assert subject.classifier.config.causal and "causal-lm" in subject.capabilities


@pytest.mark.slow
def test_planted_selection_gap_is_found_and_control_is_quiet(causal_subjects):
    settings = {"sensitive_features": ["gender"], "reference_groups": {"gender": "female"}, "n_resamples": 1000}
    gaps = {}
    for name, subject in causal_subjects.items():
        result = get_probe("group_metrics")(settings).execute(_context(subject))
        assert result.status == "ok", result.message
        gaps[name] = result.metric("selection_rate_gap", COMPARISON)
    assert gaps["planted"].ci_low > 0, gaps
    assert gaps["control"].ci_low <= 0.0 <= gaps["control"].ci_high, gaps


@pytest.mark.slow
def test_gender_swaps_flip_the_planted_causal_classifier_far_more(causal_subjects):
    flips = {}
    for name, subject in causal_subjects.items():
        result = get_probe("counterfactual")({"categories": ["gender"], "n_bootstrap": 1000}).execute(
            _context(subject))
        assert result.status == "ok", result.message
        flips[name] = result.metric("flip_rate", group="gender")
    assert flips["planted"].ci_low > flips["control"].ci_high, flips
