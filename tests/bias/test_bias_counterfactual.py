"""Counterfactual identity swaps: substitution rules, known flip rates on keyword classifiers, madlibs FPR."""

from __future__ import annotations

import re

import numpy as np
import pytest
from bias_helpers import RowsContext

from audit.data.task import LabelledExample, TaskData
from probes.bias.counterfactual import CounterfactualProbe
from probes.bias.madlibs import MadlibsTermsProbe
from probes.bias.substitution import TermSwapper, find_terms, match_case
from probes.bias.terms import BASE_CATEGORIES, default_categories

GENDER = next(category for category in BASE_CATEGORIES if category.name == "gender")
RELIGION = next(category for category in BASE_CATEGORIES if category.name == "religion")


class KeywordClassifier:
    """p(positive) = high when a trigger word occurs, else low: a classifier with a known identity dependence."""

    capabilities = frozenset({"classifier", "embeddings"})
    num_labels = 2

    def __init__(self, triggers, *, high=0.9, low=0.2, labels=("ok", "toxic")):
        self.pattern = re.compile(r"\b(" + "|".join(triggers) + r")\b", re.IGNORECASE) if triggers else None
        self.high, self.low, self.labels = high, low, list(labels)

    def predict_proba(self, texts, *, batch_size=64):
        p = np.array([self.high if self.pattern is not None and self.pattern.search(text) else self.low
                      for text in texts])
        return np.stack([1 - p, p], axis=1)


TEXTS = [
    "She said her results were strong.", "He finished his degree early.", "The woman led the team.",
    "A man fixed it himself.", "The Christian family moved.", "Muslims pray here.", "The weather is fine.",
    "Our mother and father agreed.",
]


def task(texts=TEXTS, label_names=("ok", "toxic")) -> TaskData:
    examples = [LabelledExample(id=f"t{index}", text=text, label=0, split="test") for index, text in enumerate(texts)]
    return TaskData(name="toy", label_names=list(label_names), examples=examples)


def test_swaps_are_word_bounded_case_preserving_and_two_way():
    swapper = TermSwapper(GENDER)
    [counterfactual] = swapper.counterfactuals("She told HIM that the theme is hers. There he goes!")
    assert counterfactual.text == "He told HER that the theme is his. There she goes!"
    assert swapper.counterfactuals("The therapist sheltered them.") == []  # no term inside other words
    assert TermSwapper(GENDER).counterfactuals("I gave it to her.")[0].text == "I gave it to him."
    assert TermSwapper(GENDER).counterfactuals("I read her book.")[0].text == "I read his book."
    assert match_case("Emily", "lakisha") == "Lakisha" and match_case("NURSE", "man") == "MAN"
    assert TermSwapper(GENDER).counterfactuals("Mr. Smith's wife")[0].text == "Ms. Smith's husband"


def test_multi_valued_category_gives_one_counterfactual_per_other_value():
    counterfactuals = TermSwapper(RELIGION).counterfactuals("Christians and Muslims met at the church.")
    assert len(counterfactuals) == len(RELIGION.values) - 1
    to_jewish = next(c for c in counterfactuals if c.target_value == "jewish")
    assert to_jewish.text == "Jews and Muslims met at the synagogue."
    to_muslim = next(c for c in counterfactuals if c.target_value == "muslim")
    assert to_muslim.text == "Muslims and Christians met at the mosque."  # a swap, both ways


def test_multiword_terms_win_over_their_parts():
    assert find_terms("an African American teacher", ["african", "african american", "american"]) == [
        "african american"]


def test_scenario_terms_are_folded_into_gender():
    gender = default_categories()[0]
    try:
        from audit.data.scenarios import FEMALE_NAMES, MALE_NAMES
    except ImportError:
        pytest.skip("audit.data.scenarios is not available")
    assert FEMALE_NAMES[0] in gender.values["female"] and MALE_NAMES[0] in gender.values["male"]
    swapper = TermSwapper(gender)
    assert swapper.counterfactuals(f"{FEMALE_NAMES[0]} applied.")[0].text == f"{MALE_NAMES[0]} applied."


def run_counterfactual(subject, **settings):
    probe = CounterfactualProbe({"n_bootstrap": 200, "categories": ["gender", "religion"], **settings})
    return probe.execute(RowsContext({})(subject, task=task()))


def test_identity_dependent_classifier_flips_and_control_does_not():
    biased = run_counterfactual(KeywordClassifier(["she", "her", "woman", "mother"]))
    control = run_counterfactual(KeywordClassifier([]))
    assert biased.status == "ok", biased.message
    gender_flip = biased.metric("flip_rate", group="gender")
    # "Our mother and father agreed." swaps both ways and keeps its trigger: 4 of 5 texts flip.
    assert gender_flip.value == pytest.approx(0.8) and gender_flip.n == 5
    assert biased.metric("ctf_gap", group="gender").value == pytest.approx(0.7 * 4 / 5)
    assert biased.metric("max_abs_delta_p", group="gender").value == pytest.approx(0.7)
    assert biased.metric("flip_rate", group="religion").value == 0.0
    assert control.metric("flip_rate", group="gender").value == 0.0
    assert control.metric("mean_abs_delta_p", group="gender").value == 0.0
    directions = {(row[0], row[1]): row[3] for row in biased.tables[1].rows}
    assert directions[("gender", "female→male")] == pytest.approx(-0.7 * 2 / 3, abs=1e-4)
    assert directions[("gender", "male→female")] == pytest.approx(0.7)
    ids = biased.per_example["example_ids"]
    assert len(ids) == len(set(ids)) == len(biased.per_example["flip"]) == len(biased.per_example["delta_p"])
    assert "t0|gender|female→male" in ids
    assert biased.findings[0].level == "fail" and control.findings[0].level == "pass"


def test_unknown_category_is_an_input_error():
    result = run_counterfactual(KeywordClassifier([]), categories=["astrology"])
    assert result.status == "error" and "astrology" in result.message


MADLIBS_ROWS = [{"Text": f"Jim is a {adjective} {term}", "Label": label, "Template": "name_adj"}
                for term in ("gay", "christian", "young") for adjective, label in
                [("caring", "NOT_BAD")] * 25 + [("horrible", "BAD")] * 25]


def run_madlibs(subject, label_names=("ok", "toxic"), **settings):
    probe = MadlibsTermsProbe({"max_sentences": None, **settings})
    return probe.execute(RowsContext({"madlibs": MADLIBS_ROWS})(subject, task=task(label_names=label_names)))


def test_madlibs_fpr_per_term_recovers_the_trigger_term():
    result = run_madlibs(KeywordClassifier(["gay", "horrible"]))
    assert result.status == "ok", result.message
    assert result.metric("fpr", group="gay").value == 1.0
    assert result.metric("fpr", group="christian").value == 0.0
    assert result.metric("fpr").value == pytest.approx(1 / 3)
    assert result.metric("fped").value == pytest.approx(2 / 3 + 2 * 1 / 3)
    assert result.metric("fnr").value == 0.0
    assert any("'gay'" in finding.message for finding in result.findings)


def test_madlibs_is_skipped_for_tasks_that_are_not_toxicity_like():
    result = run_madlibs(KeywordClassifier([]), label_names=("rejected", "hired"))
    assert result.status == "skipped" and "toxicity" in result.message
    forced = run_madlibs(KeywordClassifier([]), label_names=("rejected", "hired"), force=True)
    assert forced.status == "ok"
