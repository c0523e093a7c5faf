"""group_metrics: hand-computed answers, invariances (hypothesis) and bad input."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from fairness_fakes import ScriptedClassifier, make_task
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.base import ProbeContext, ProbeInputError
from probes.fairness.group_metrics import GroupMetricsProbe

# Hand-computed table. Columns: group, label, score (prediction = score >= 0.5 via argmax of [1-s, s]).
TEST_ROWS = [
    ("A", 1, 0.9), ("A", 1, 0.8), ("A", 1, 0.4), ("A", 0, 0.7), ("A", 0, 0.2), ("A", 0, 0.1),
    ("B", 1, 0.6), ("B", 0, 0.55), ("B", 0, 0.9), ("B", 0, 0.3),
    ("C", 0, 0.3), ("C", 0, 0.6),
]
TRAIN_ROWS = [("A", 1), ("A", 1), ("A", 0), ("A", 0), ("B", 1), ("B", 0), ("B", 0), ("B", 0)]


def hand_task():
    rows, table = [], {}
    for index, (group, label, score) in enumerate(TEST_ROWS):
        text = f"test {index}"
        table[text] = [1 - score, score]
        rows.append((f"t{index:02d}", text, label, "test", {"g": group}))
    for index, (group, label) in enumerate(TRAIN_ROWS):
        rows.append((f"r{index:02d}", f"train {index}", label, "train", {"g": group}))
    return make_task(rows, group_columns=("g",)), table


def run(task, table, **config):
    config.setdefault("n_resamples", 200)
    return GroupMetricsProbe(config).run(ProbeContext(subject=ScriptedClassifier(table), seed=0, task=task))


def test_hand_computed_group_metrics_are_exact():
    task, table = hand_task()
    result = run(task, table)
    value = lambda name, group=None: result.metric(name, group).value
    expected_a = {"base_rate": 3 / 6, "selection_rate": 3 / 6, "accuracy": 4 / 6, "tpr": 2 / 3, "fpr": 1 / 3,
                  "fnr": 1 / 3, "precision": 2 / 3}
    expected_b = {"base_rate": 1 / 4, "selection_rate": 3 / 4, "accuracy": 2 / 4, "tpr": 1.0, "fpr": 2 / 3,
                  "fnr": 0.0, "precision": 1 / 3}
    for name, expected in expected_a.items():
        assert value(name, "g=A") == expected, name
    for name, expected in expected_b.items():
        assert value(name, "g=B") == expected, name
    assert value("roc_auc", "g=A") == pytest.approx(8 / 9, abs=1e-12)
    assert value("roc_auc", "g=B") == pytest.approx(2 / 3, abs=1e-12)
    assert value("ece", "g=A") == pytest.approx(1.9 / 6, abs=1e-12)
    assert value("ece", "g=B") == pytest.approx(2.15 / 4, abs=1e-12)
    # group C has no positives: TPR, FNR and AUC are not defined (never 0 or NaN); its precision is 0/1 = 0
    for name in ("tpr", "fnr", "roc_auc"):
        metric = result.metric(name, "g=C")
        assert metric.value is None and metric.undefined_reason
    assert value("precision", "g=C") == 0.0 and value("fpr", "g=C") == 0.5
    # disparities over A, B, C (C is left out where its value is undefined)
    assert value("demographic_parity_difference", "g") == 0.75 - 0.5
    assert value("demographic_parity_ratio", "g") == 0.5 / 0.75
    assert value("equal_opportunity_difference", "g") == 1.0 - 2 / 3
    assert value("equalized_odds_difference", "g") == max(1.0 - 2 / 3, 2 / 3 - 1 / 3)
    assert value("fpr_ratio", "g") == (1 / 3) / (2 / 3)
    assert value("predictive_parity_difference", "g") == 2 / 3 - 0.0
    # signed gaps against the largest group (A)
    assert value("selection_rate_gap", "g=B vs g=A") == 0.75 - 0.5
    assert value("tpr_gap", "g=B vs g=A") == 1.0 - 2 / 3
    assert result.metric("tpr_gap", "g=C vs g=A").value is None
    # training-label base rates next to the model's rates
    assert value("train_label_base_rate", "g=A") == 0.5 and value("train_label_base_rate", "g=B") == 0.25
    assert value("train_label_base_rate_gap", "g=B vs g=A") == 0.25 - 0.5
    # per-example outcomes aligned with the example ids
    assert result.per_example["example_ids"][:3] == ["t00", "t01", "t02"]
    assert result.per_example["correct"][:6] == [True, True, False, False, True, True]
    # small groups are flagged
    assert any("only 2 example(s)" in warning for warning in result.warnings)


def test_intervals_contain_the_point_estimates_and_are_seeded():
    task, table = hand_task()
    first, second = run(task, table), run(task, table)
    assert first.model_dump() == second.model_dump()
    for metric in first.metrics:
        if metric.value is not None and metric.ci_low is not None and metric.name in ("selection_rate", "accuracy"):
            assert metric.ci_low <= metric.value <= metric.ci_high


def _random_rows(seed: int, n: int):
    rng = np.random.default_rng(seed)
    rows, table = [], {}
    for index in range(n):
        group = ["red", "green", "blue"][int(rng.integers(0, 3))]
        other = ["x", "y"][int(rng.integers(0, 2))]
        score = float(rng.random())
        text = f"row {index}"
        table[text] = [1 - score, score]
        rows.append((f"e{index:03d}", text, int(rng.random() < 0.5), "test", {"colour": group, "letter": other}))
    return rows, table


def _comparable(result, rename=lambda name: name):
    """Metrics as {(name, group): (value, low, high)} with group names mapped by ``rename``."""
    out = {}
    for metric in result.metrics:
        out[(metric.name, rename(metric.group) if metric.group else None)] = (metric.value, metric.ci_low, metric.ci_high)
    return out


SETTINGS = {"n_resamples": 60, "reference_groups": {"colour": "red", "letter": "x"}, "label_base_rates": False}


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_renaming_groups_changes_nothing_but_names(seed):
    rows, table = _random_rows(seed, 60)
    names = {"red": "zeta", "green": "alpha", "blue": "mu"}  # reverses the sorted order of the groups
    renamed = [(i, t, y, s, {"colour": names[g["colour"]], "letter": g["letter"]}) for i, t, y, s, g in rows]
    original = run(make_task(rows, group_columns=("colour", "letter")), table, **SETTINGS)
    settings_renamed = dict(SETTINGS, reference_groups={"colour": "zeta", "letter": "x"})
    other = run(make_task(renamed, group_columns=("colour", "letter")), table, **settings_renamed)

    def rename(group: str) -> str:
        for old, new in names.items():
            group = group.replace(f"colour={old}", f"colour={new}")
        return group

    assert _comparable(original, rename) == _comparable(other)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), shuffle_seed=st.integers(0, 10_000))
def test_row_order_changes_nothing(seed, shuffle_seed):
    rows, table = _random_rows(seed, 60)
    shuffled = list(rows)
    random.Random(shuffle_seed).shuffle(shuffled)
    first = run(make_task(rows, group_columns=("colour", "letter")), table, **SETTINGS)
    second = run(make_task(shuffled, group_columns=("colour", "letter")), table, **SETTINGS)
    assert first.model_dump() == second.model_dump()


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), batch_size=st.integers(1, 70))
def test_batching_the_predictions_changes_nothing(seed, batch_size):
    rows, table = _random_rows(seed, 60)
    task = make_task(rows, group_columns=("colour", "letter"))
    subject = ScriptedClassifier(table)
    batched = GroupMetricsProbe(dict(SETTINGS, batch_size=batch_size)).run(ProbeContext(subject=subject, seed=0, task=task))
    assert max(subject.calls) <= batch_size
    whole = run(task, table, batch_size=1000, **SETTINGS)
    assert batched.model_dump(exclude={"config"}) == whole.model_dump(exclude={"config"})


# ------------------------------------------------------------------------------------------------- bad input
def test_missing_sensitive_column_is_a_named_error():
    task, table = hand_task()
    with pytest.raises(ProbeInputError, match="'race' is not a group column.*expected one of \\['g'\\]"):
        run(task, table, sensitive_features=["race"])


def test_nan_predictions_are_an_error():
    task, table = hand_task()
    table["test 3"] = [np.nan, np.nan]
    with pytest.raises(ProbeInputError, match="NaN probabilities for 1 example"):
        run(task, table)


def test_labels_the_model_does_not_know_are_an_error():
    task, table = hand_task()
    task.examples[0] = dataclasses.replace(task.examples[0], label=3)
    with pytest.raises(ProbeInputError, match=r"label value\(s\) \[3\] are not classes the model knows"):
        run(task, table)


def test_unknown_split_is_an_error():
    task, table = hand_task()
    with pytest.raises(ProbeInputError, match="unknown split"):
        run(task, table, split="holdout")


def test_one_group_only_reports_metrics_and_undefined_disparities():
    rows = [(f"t{i}", f"text {i}", i % 2, "test", {"g": "only"}) for i in range(40)]
    result = run(make_task(rows, group_columns=("g",)), {})
    assert result.metric("selection_rate", "g=only").value is not None
    for name in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                 "equal_opportunity_difference", "fpr_ratio", "predictive_parity_difference"):
        metric = result.metric(name, "g")
        assert metric.value is None and "only one group" in metric.undefined_reason


def test_empty_intersection_is_reported_not_defined():
    rows = []
    for index in range(40):
        colour, letter = [("red", "x"), ("red", "y"), ("blue", "x")][index % 3]  # (blue, y) never occurs
        rows.append((f"t{index:02d}", f"text {index}", index % 2, "test", {"colour": colour, "letter": letter}))
    result = run(make_task(rows, group_columns=("colour", "letter")), {})
    table = next(t for t in result.tables if t.name == "group_metrics")
    empty = [row for row in table.rows if row[1] == "colour=blue & letter=y"]
    assert empty and empty[0][2] == 0 and "not defined" in empty[0][3]
    assert any("hold no example" in warning for warning in result.warnings)


def test_execute_isolates_errors_with_the_message():
    task, table = hand_task()
    probe = GroupMetricsProbe({"sensitive_features": ["race"], "n_resamples": 10})
    outcome = probe.execute(ProbeContext(subject=ScriptedClassifier(table), seed=0, task=task))
    assert outcome.status == "error" and "race" in outcome.message


def test_disparity_findings_are_three_way_and_state_the_minimum_detectable_gap():
    """Hand task: selection rates A 3/6, B 3/4, C 1/2 (12 examples): the demographic-parity difference 0.25 has an
    interval reaching across 0.1 (inconclusive, not a pass), and the finding states the gap these sizes could show:
    between B (highest, 4 examples, 3 selected) and A (lowest, 6 examples, 3 selected), pooled rate 6/10,
    (z_0.975 + z_0.8) · sqrt(0.6 · 0.4 · (1/4 + 1/6))."""
    from scipy.stats import norm

    task, table = hand_task()
    result = run(task, table)
    findings = {finding.metric: finding for finding in result.findings}
    parity = findings["demographic_parity_difference"]
    expected = (norm.ppf(0.975) + norm.ppf(0.8)) * np.sqrt(0.6 * 0.4 * (1 / 4 + 1 / 6))
    assert parity.level == "inconclusive", parity
    assert f"gaps smaller than {expected:.3f} could not be seen" in parity.message
    assert "80% power" in parity.message and "α = 0.05" in parity.message and "band at most 0.1" in parity.message
    # equal opportunity: TPR B 1/1 against A 2/3 (C has no positives), pooled 3/4
    opportunity = findings["equal_opportunity_difference"]
    expected = (norm.ppf(0.975) + norm.ppf(0.8)) * np.sqrt(0.75 * 0.25 * (1 / 1 + 1 / 3))
    assert f"gaps smaller than {expected:.3f} could not be seen" in opportunity.message
    # a threshold no difference of rates can exceed puts the whole interval inside the band: pass
    assert {f.level for f in run(task, table, gap_threshold=1.0).findings
            if f.metric == "demographic_parity_difference"} == {"pass"}
