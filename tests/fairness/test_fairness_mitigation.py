"""mitigation: group thresholds remove a planted score shift; the model itself is untouched."""

from __future__ import annotations

import numpy as np
import pytest
from fairness_fakes import ScriptedClassifier, make_task

from probes.base import ProbeContext, ProbeInputError
from probes.fairness.mitigation import MitigationProbe


def _shifted_task(seed: int = 0, n: int = 1200):
    """Scores of group 'b' are shifted up by 0.25: it is selected far more often at the same merit."""
    rng = np.random.default_rng(seed)
    rows, table = [], {}
    for index in range(n):
        group = "a" if index % 2 else "b"
        label = int(rng.random() < 0.4)
        score = float(np.clip(0.3 + 0.35 * label + (0.25 if group == "b" else 0) + rng.normal(0, 0.12), 0, 1))
        text = f"item {index}"
        table[text] = [1 - score, score]
        rows.append((f"i{index:04d}", text, label, ["train", "validation", "test"][index % 3], {"grp": group}))
    return make_task(rows, group_columns=("grp",)), table


@pytest.mark.parametrize("constraint", ["demographic_parity", "equalized_odds"])
def test_thresholds_shrink_the_disparity_and_leave_the_model_alone(constraint):
    task, table = _shifted_task()
    snapshot = {key: list(value) for key, value in table.items()}
    subject = ScriptedClassifier(table)
    result = MitigationProbe({"constraint": constraint, "n_resamples": 200}).run(
        ProbeContext(subject=subject, seed=0, task=task))
    name = "demographic_parity_difference" if constraint == "demographic_parity" else "equalized_odds_difference"
    before, after = result.metric(f"{name}_before", "grp"), result.metric(f"{name}_after", "grp")
    assert before.ci_low > 0.15
    assert after.value < before.value / 3
    assert result.metric("accuracy_cost").ci_low is not None
    assert table == snapshot  # what-if only: the model's outputs are unchanged
    after_again = MitigationProbe({"constraint": constraint, "n_resamples": 200}).run(
        ProbeContext(subject=ScriptedClassifier(table), seed=0, task=task))
    assert after_again.model_dump() == result.model_dump()  # randomised thresholds are seeded


def test_group_missing_from_the_fitting_split_is_an_error():
    task, table = _shifted_task(n=300)
    for position, example in enumerate(task.examples):
        if example.split == "test" and example.groups["grp"] == "a":
            task.examples[position] = type(example)(example.id, example.text, example.label, "test", {"grp": "new"})
            break
    with pytest.raises(ProbeInputError, match="'new'.*not in the fitting split"):
        MitigationProbe({"n_resamples": 10}).run(ProbeContext(subject=ScriptedClassifier(table), seed=0, task=task))
