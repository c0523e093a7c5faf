"""Known answers on trained models (slow): the planted calibration-scenario bias is recovered, the control stays
quiet, and on Davidson et al.'s tweets the published dialect direction appears.

Fixtures (tests/conftest.py, provided by the lead / training helper): ``scenario_classifiers`` ->
{"planted": Path, "control": Path} and ``davidson_classifier_dir`` -> Path. When a fixture is not available the
test is skipped with that reason.

What the planted flips imply for the learned gap. ``make_calibration_scenario(bias_strength=0.8)`` flips 80% of
the female positive *training* labels (the lowest-merit ones) to negative; test labels are the truth. A model that
learned that rule exactly rejects ~80% of qualified women on the test split, which gives the gaps the scenario
reports as ``planted["expected_test_gaps"]`` (male minus female): equal opportunity ≈ 0.8 and demographic parity ≈
0.8 × the female positive rate. A small fine-tuned model does not learn the rule exactly, and its own errors on
the merit rule (which hit both groups) shrink the TPR gap and move the selection gap, so we accept the recovered
gap when its 95% interval contains the expected gap or the estimate lies within TOLERANCE = 0.25 of it, and we
require the gap to be clearly positive (interval above 0). The control (no flips) must have intervals covering 0.

Why 0.25: measured on the `small` encoder fine-tuned with the `scenario` preset (test accuracy about 0.72 on the
control), the planted model's demographic-parity gap was 0.38 [0.30, 0.45] against 0.41 expected, and its
equal-opportunity gap 0.55 [0.44, 0.66] against 0.76: a classifier that already misses many qualified applicants of
both groups cannot show the full TPR gap of an exact learner. A better encoder should tighten this tolerance.
"""

from __future__ import annotations

import pytest

from audit.data.task import TaskData
from probes.base import ProbeContext
from probes.fairness.group_metrics import GroupMetricsProbe

TOLERANCE = 0.25


def _fixture(request, name: str):
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        pytest.skip(f"fixture {name!r} is not defined in tests/conftest.py yet")


def _audit(model_dir, **config):
    from audit.subject import ModelUnderAudit

    subject = ModelUnderAudit.from_pretrained(model_dir)
    task = TaskData.load(model_dir)
    result = GroupMetricsProbe(config).run(ProbeContext(subject=subject, seed=0, task=task))
    return task, result


def _recovered(metric, expected: float) -> bool:
    in_interval = metric.ci_low <= expected <= metric.ci_high
    return in_interval or abs(metric.value - expected) <= TOLERANCE


@pytest.mark.slow
def test_planted_gender_bias_is_recovered_and_control_is_quiet(request):
    models = _fixture(request, "scenario_classifiers")
    settings = {"sensitive_features": ["gender"], "reference_groups": {"gender": "female"}, "n_resamples": 1000}
    comparison = "gender=male vs gender=female"

    task, planted = _audit(models["planted"], **settings)
    expected = task.planted["expected_test_gaps"]
    selection_gap = planted.metric("selection_rate_gap", comparison)
    tpr_gap = planted.metric("tpr_gap", comparison)
    assert selection_gap.ci_low > 0 and tpr_gap.ci_low > 0
    assert _recovered(selection_gap, expected["demographic_parity_difference"]), (selection_gap, expected)
    assert _recovered(tpr_gap, expected["equal_opportunity_difference"]), (tpr_gap, expected)
    # the data-level view shows the bias is already in the training labels (male minus female > 0)
    label_gap = planted.metric("train_label_base_rate_gap", comparison)
    assert label_gap.ci_low > 0

    _, control = _audit(models["control"], **settings)
    for name in ("selection_rate_gap", "tpr_gap"):
        metric = control.metric(name, comparison)
        assert metric.ci_low <= 0.0 <= metric.ci_high, metric


@pytest.mark.slow
def test_davidson_dialect_false_positive_gap_has_the_published_direction(request):
    model_dir = _fixture(request, "davidson_classifier_dir")
    import os

    if not os.environ.get("RAI_AUDIT_DATA_DIR"):
        pytest.skip("RAI_AUDIT_DATA_DIR is not set (the TwitterAAE model lives in the shared data folder)")
    from audit.subject import ModelUnderAudit

    subject = ModelUnderAudit.from_pretrained(model_dir)
    task = TaskData.load(model_dir)
    probe = GroupMetricsProbe({
        "split": "validation+test", "sensitive_features": [], "dialect": True, "intersections": False,
        "reference_groups": {"dialect": "white_aligned"}, "n_resamples": 1000,
    })
    result = probe.run(ProbeContext(subject=subject, seed=0, task=task, data_dir=os.environ["RAI_AUDIT_DATA_DIR"]))
    fpr_aa = result.metric("fpr", "dialect=aa_aligned")
    fpr_white = result.metric("fpr", "dialect=white_aligned")
    gap = result.metric("fpr_gap", "dialect=aa_aligned vs dialect=white_aligned")
    assert fpr_aa.value > fpr_white.value
    assert gap.ci_low > 0, gap  # Sap et al. 2019 / Davidson et al. 2019: AA-aligned tweets are over-flagged
    # label base rates per dialect sit next to the model's rates: the labels already differ
    base_aa = result.metric("train_label_base_rate", "dialect=aa_aligned")
    base_white = result.metric("train_label_base_rate", "dialect=white_aligned")
    assert base_aa.value > base_white.value
    assert any(table.name == "labels_vs_model" for table in result.tables)
