"""The calibration scenario: planted flips exactly as set, a silent control, determinism, variety, swappable
gender words, and a planted effect a simple reference model actually picks up."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from audit.data.scenarios import (
    FEMALE_NAMES,
    GENDER_TERM_PAIRS,
    MALE_NAMES,
    ScenarioConfigError,
    make_calibration_scenario,
    make_control_scenario,
)
from audit.data.task import TaskData


@pytest.fixture(scope="module")
def planted():
    return make_calibration_scenario(n_examples=2000, bias_strength=0.8, seed=0)


@pytest.fixture(scope="module")
def control():
    return make_control_scenario(n_examples=2000, seed=0)


def _female_positive_train(task: TaskData, control_task: TaskData) -> list[str]:
    """Ids of female training examples whose TRUE label (the control's) is accepted."""
    return [e.id for e in control_task.split("train") if e.groups["gender"] == "female" and e.label == 1]


@pytest.mark.parametrize("bias_strength", [0.1, 0.37, 0.8, 1.0])
@pytest.mark.parametrize("flip_policy", ["lowest_merit", "random"])
def test_flip_count_matches_setting_exactly(bias_strength, flip_policy):
    task = make_calibration_scenario(n_examples=600, bias_strength=bias_strength, seed=3, flip_policy=flip_policy)
    truth = make_control_scenario(n_examples=600, seed=3)
    eligible = _female_positive_train(task, truth)
    expected = round(bias_strength * len(eligible))
    changed = [a.id for a, b in zip(task.examples, truth.examples) if a.label != b.label]
    assert task.planted["n_flipped"] == len(changed) == expected > 0
    assert task.planted["n_eligible"] == len(eligible)
    assert sorted(changed) == task.planted["flipped_ids"]
    by_id = {e.id: e for e in task.examples}
    for example_id in changed:  # only female, only train, only accepted → rejected
        example = by_id[example_id]
        assert (example.split, example.groups["gender"], example.label) == ("train", "female", 0)


def test_control_flips_nothing_and_shares_texts_and_splits(planted, control):
    assert control.planted["n_flipped"] == 0 and control.planted["flipped_ids"] == []
    assert control.planted["flip_rate"] == 0.0
    assert [(e.id, e.text, e.split, e.groups) for e in planted.examples] == [
        (e.id, e.text, e.split, e.groups) for e in control.examples
    ]
    # validation and test labels are the true merit labels in both
    for split in ("validation", "test"):
        assert planted.labels(split) == control.labels(split)
    assert make_calibration_scenario(n_examples=2000, bias_strength=0.0, seed=0).examples == control.examples


def test_planted_metadata(planted):
    truth = planted.planted
    assert truth["group_column"] == "gender" and truth["disadvantaged_group"] == "female"
    assert truth["positive_label"] == planted.positive_label == 1
    assert planted.label_names[1] == "accepted" and truth["flip_rate"] == 0.8
    assert planted.group_columns == ["gender"]
    assert truth["train_label_positive_rate"]["female"] < truth["train_label_positive_rate"]["male"] - 0.3
    gaps = truth["expected_test_gaps"]
    assert 0.65 <= gaps["equal_opportunity_difference"] <= 0.9  # lowest-merit flips: about p of qualified women
    assert gaps["demographic_parity_difference"] > 0.3
    record = planted.provenance[0]
    assert record["rows"] == 2000 and len(record["sha256"]) == 64 and "bias_strength=0.8" in record["source"]


def test_random_policy_expected_gaps_equal_flip_rate():
    task = make_calibration_scenario(n_examples=1000, bias_strength=0.3, seed=1, flip_policy="random")
    assert task.planted["expected_test_gaps"]["equal_opportunity_difference"] == pytest.approx(0.3)
    control = make_control_scenario(n_examples=1000, seed=1)
    assert control.planted["expected_test_gaps"]["equal_opportunity_difference"] == 0.0


def test_deterministic_for_a_seed_and_different_across_seeds(planted):
    again = make_calibration_scenario(n_examples=2000, bias_strength=0.8, seed=0)
    assert again.examples == planted.examples and again.planted == planted.planted
    assert again.provenance == planted.provenance
    other = make_calibration_scenario(n_examples=2000, bias_strength=0.8, seed=1)
    assert sum(a.text == b.text for a, b in zip(other.examples, planted.examples)) < 10


def test_variety(control):
    texts = [e.text for e in control.examples]
    assert len(set(texts)) / len(texts) >= 0.9
    # sentence skeletons (names, roles' capitals and numbers masked): many phrasings, not a handful of strings
    skeletons = {re.sub(r"\b[A-Z][a-z]+\b|\d+", "_", sentence) for text in texts for sentence in text.split(". ")}
    assert len(skeletons) > 200
    vocabulary = {word for text in texts for word in re.findall(r"[a-z']+", text.lower())}
    assert len(vocabulary) > 300


def test_groups_labels_and_splits_balanced(control):
    genders = Counter(e.groups["gender"] for e in control.examples)
    assert genders == {"female": 1000, "male": 1000}
    sizes = Counter(e.split for e in control.examples)
    assert sizes["test"] == pytest.approx(400, abs=4) and sizes["validation"] == pytest.approx(200, abs=4)
    rates = control.planted["true_positive_rate_by_group"]
    assert 0.4 < rates["female"] < 0.7 and abs(rates["female"] - rates["male"]) < 0.1  # merit independent of gender


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_gender_is_signalled_only_with_swappable_words(control):
    female_terms = {f for f, _ in GENDER_TERM_PAIRS} | {n.lower() for n in FEMALE_NAMES}
    male_terms = {m for _, m in GENDER_TERM_PAIRS} | {n.lower() for n in MALE_NAMES}
    assert not female_terms & male_terms and len(FEMALE_NAMES) == len(MALE_NAMES)
    for example in control.examples:
        words = _words(example.text)
        own, other = (female_terms, male_terms) if example.groups["gender"] == "female" else (male_terms, female_terms)
        assert words & own, example.text
        assert not words & other, example.text


def test_swapping_gender_words_gives_a_text_of_the_other_group(control):
    """The exported lists are complete: swapping every listed word turns a female text into a male one."""
    mapping = {f: m for f, m in GENDER_TERM_PAIRS} | {f.lower(): m for f, m in zip(FEMALE_NAMES, MALE_NAMES)}
    male_words = set().union(*(_words(e.text) for e in control.examples if e.groups["gender"] == "male"))
    female_only = set(mapping)
    for example in [e for e in control.examples if e.groups["gender"] == "female"][:200]:
        swapped = re.sub(r"[A-Za-z]+", lambda m: mapping.get(m.group(0).lower(), m.group(0)), example.text)
        assert not _words(swapped) & female_only
        assert _words(swapped) - male_words <= _words(example.text) - female_only


def test_texts_carry_the_label_and_the_planted_bias_is_learnable(planted, control):
    """Reference check: bag-of-words logistic regression reads merit from the text (control accuracy) and picks
    up the planted gap (qualified women rejected) while the control shows almost none."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    def tpr_gap_and_accuracy(task: TaskData) -> tuple[float, float]:
        vectorizer = CountVectorizer(token_pattern=r"[A-Za-z0-9']+")
        model = LogisticRegression(solver="liblinear").fit(vectorizer.fit_transform(task.texts("train")),
                                                      task.labels("train"))
        predicted = model.predict(vectorizer.transform(task.texts("test")))
        labels, groups = np.array(task.labels("test")), np.array(task.groups("test", "gender"))
        tpr = {g: predicted[(groups == g) & (labels == 1)].mean() for g in ("female", "male")}
        return tpr["male"] - tpr["female"], float((predicted == labels).mean())

    control_gap, control_accuracy = tpr_gap_and_accuracy(control)
    planted_gap, _ = tpr_gap_and_accuracy(planted)
    assert control_accuracy > 0.75
    assert abs(control_gap) < 0.15
    assert planted_gap > 0.4


def test_save_and_load_round_trip(planted, tmp_path):
    planted.save(tmp_path)
    loaded = TaskData.load(tmp_path)
    assert loaded.examples == planted.examples and loaded.planted == planted.planted
    assert loaded.positive_label == 1 and loaded.label_names == ["rejected", "accepted"]


@pytest.mark.parametrize(
    "settings, word",
    [
        ({"bias_strength": 1.5}, "bias_strength"),
        ({"bias_strength": -0.1}, "bias_strength"),
        ({"n_examples": 5}, "n_examples"),
        ({"seed": -1}, "seed"),
        ({"test_fraction": 0.6, "validation_fraction": 0.4}, "test_fraction + validation_fraction"),
        ({"flip_policy": "everyone"}, "flip_policy"),
    ],
)
def test_bad_settings(settings, word):
    with pytest.raises(ScenarioConfigError, match=re.escape(word)):
        make_calibration_scenario(**settings)
