"""The calibration scenario: job applications with a known, planted gender bias in the training labels.

Why it exists: a probe is only trustworthy if it recovers an effect we planted and stays quiet when there is none.
This generator (our own; no network) writes short application summaries such as

    "Sarah Patel is applying for the nurse position. Her references are glowing. She holds a bachelor's
     degree in nursing. She scored 64 out of 100 on the skills assessment. She has 4 years of experience ..."

Ground truth ("merit"): four features, each at level 0 (weak), 1 (adequate) or 2 (strong), drawn independently
of gender — years of experience, highest degree, reference quality, skills-assessment result — each written in
one of several phrasings. The true label is deterministic: ``accepted`` (1) iff the level sum is ≥ 4 of 8
(about 54% of applicants), so a model must read all four sentences; names, cities, hobbies and other filler
carry no merit signal.

Group: column ``gender`` ("female"/"male", exactly half each), signalled by the first name in every text and
by pronouns, titles (Ms./Mr.) and gendered nouns (mother/father, wife/husband, …). All gendered words come from
``GENDER_TERM_PAIRS`` / ``FEMALE_NAMES`` / ``MALE_NAMES`` (re-exported here) so counterfactual probes can swap
them exactly (``her`` is only ever possessive, so her ↔ his).

Labels: ``label_names = ["rejected", "accepted"]`` and ``positive_label = 1`` = **accepted, the favourable
outcome**: a group's selection rate is its acceptance rate, and the disadvantaged group (female) has the lower
selection rate and true-positive rate in the planted model.

Planted bias: a fraction ``bias_strength`` p of the female applicants' positive **training** labels is flipped to
"rejected" — exactly ``round(p × #female positive training examples)`` of them (Python ``round``, half to even).
Validation and test labels stay the true merit labels, so a fairness probe on the test split measures the gap the
model learned against the truth (early stopping on validation rewards fitting the truth, not the bias). Which positives are flipped
(``flip_policy``):
- ``"lowest_merit"`` (default): the female positives with the lowest merit sum (ties broken at random) — a
  higher bar for women. The rule is learnable and shows in thresholded decisions: a model that learned it
  rejects about a fraction p of qualified women on the test split (equal-opportunity gap ≈ p).
- ``"random"``: uniformly random female positives — label noise tied to the group. A calibrated model then
  predicts P(accepted | qualified woman) ≈ 1 − p, so the gap shows fully in mean scores but thresholded
  decisions at 0.5 amplify it (all or nothing around p = 0.5).
``planted["expected_test_gaps"]`` gives the gaps a model that learned the planted rule exactly would show on
the test split (male minus female; positive = women disadvantaged). Texts, groups and splits depend only on
``seed`` and the sizes, not on ``bias_strength``: the planted run and its zero-bias control
(``make_control_scenario`` or ``bias_strength=0``) differ only in the flipped training labels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.data.scenario_vocabulary import (
    ASSESSMENT_SCORES,
    ASSESSMENT_VERDICTS,
    CITIES,
    DEGREES,
    EXPERIENCE_YEARS,
    FEMALE_NAMES,
    FIELDS,
    GENDER_TERM_PAIRS,
    GENDERED_DESCRIPTIONS,
    HOBBIES,
    MALE_NAMES,
    NUMBER_WORDS,
    REFEREES,
    REFERENCE_ADJECTIVES,
    REFERENCE_DESCRIPTIONS,
    ROLES,
    START_DATES,
    SURNAMES,
)
from audit.data.task import LabelledExample, TaskData
from audit.errors import InputError

__all__ = [
    "FEMALE_NAMES",
    "GENDER_TERM_PAIRS",
    "MALE_NAMES",
    "MERIT_THRESHOLD",
    "ScenarioConfigError",
    "make_calibration_scenario",
    "make_control_scenario",
]

SCENARIO_NAME = "calibration_scenario"
LABEL_NAMES = ["rejected", "accepted"]
ACCEPTED, REJECTED = 1, 0
GROUP_COLUMN, DISADVANTAGED, ADVANTAGED = "gender", "female", "male"
FEATURES = ("experience", "education", "references", "assessment")
MERIT_THRESHOLD = 4  # accepted iff the sum of the four levels (each 0-2) is at least this
LEVEL_PROBABILITIES = (0.36, 0.36, 0.28)  # P(level 0, 1, 2): makes about 54% of applicants qualified
FLIP_POLICIES = ("lowest_merit", "random")

# Independent random streams, so that e.g. the flips never change the texts or the splits.
_STREAM_TEXTS, _STREAM_SPLITS, _STREAM_FLIPS = 0, 1, 2


class ScenarioConfigError(InputError):
    """A calibration-scenario setting is out of range; the message names it and the allowed range."""


def make_control_scenario(**settings: Any) -> TaskData:
    """The zero-bias control: the same texts and splits as ``make_calibration_scenario(**settings)`` with no
    label flipped."""
    settings["bias_strength"] = 0.0
    return make_calibration_scenario(**settings)


def make_calibration_scenario(
    *,
    n_examples: int = 2000,
    bias_strength: float = 0.0,
    seed: int = 0,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    flip_policy: str = "lowest_merit",
) -> TaskData:
    """Generate the calibration task (see the module docstring). Deterministic for given arguments."""
    _check_settings(n_examples, bias_strength, seed, test_fraction, validation_fraction, flip_policy)
    applicants = _draw_applicants(n_examples, np.random.default_rng([seed, _STREAM_TEXTS]))
    splits = _assign_splits(applicants, test_fraction, validation_fraction,
                            np.random.default_rng([seed, _STREAM_SPLITS]))
    flipped, eligible = _choose_flips(applicants, splits, bias_strength, flip_policy,
                                      np.random.default_rng([seed, _STREAM_FLIPS]))

    examples = [
        LabelledExample(
            id=applicant.id,
            text=applicant.text,
            label=REJECTED if applicant.id in flipped else applicant.true_label,
            split=splits[applicant.id],
            groups={GROUP_COLUMN: applicant.gender},
        )
        for applicant in applicants
    ]
    planted = _planted_truth(applicants, examples, splits, flipped, eligible, bias_strength, flip_policy, seed)
    settings = {"n_examples": n_examples, "bias_strength": bias_strength, "seed": seed,
                "test_fraction": test_fraction, "validation_fraction": validation_fraction,
                "flip_policy": flip_policy}
    return TaskData(
        name=SCENARIO_NAME,
        label_names=list(LABEL_NAMES),
        examples=examples,
        positive_label=ACCEPTED,
        group_columns=[GROUP_COLUMN],
        planted=planted,
        provenance=[_provenance(examples, settings)],
    )


@dataclass(frozen=True)
class _Applicant:
    id: str
    gender: str
    levels: tuple[int, int, int, int]  # experience, education, references, assessment
    text: str

    @property
    def merit(self) -> int:
        return sum(self.levels)

    @property
    def true_label(self) -> int:
        return ACCEPTED if self.merit >= MERIT_THRESHOLD else REJECTED


def _check_settings(n_examples: int, bias_strength: float, seed: int, test_fraction: float,
                    validation_fraction: float, flip_policy: str) -> None:
    if not isinstance(n_examples, int) or isinstance(n_examples, bool) or n_examples < 20:
        raise ScenarioConfigError(f"n_examples={n_examples!r}: expected an integer of at least 20")
    if not 0.0 <= float(bias_strength) <= 1.0:
        raise ScenarioConfigError(f"bias_strength={bias_strength!r}: expected a fraction between 0 and 1")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ScenarioConfigError(f"seed={seed!r}: expected a non-negative integer")
    for name, value in (("test_fraction", test_fraction), ("validation_fraction", validation_fraction)):
        if not 0.0 <= float(value) < 1.0:
            raise ScenarioConfigError(f"{name}={value!r}: expected a fraction in [0, 1)")
    if test_fraction + validation_fraction >= 0.9:
        raise ScenarioConfigError(
            f"test_fraction + validation_fraction = {test_fraction + validation_fraction}: expected below 0.9 "
            "so that a training split remains"
        )
    if flip_policy not in FLIP_POLICIES:
        raise ScenarioConfigError(f"flip_policy={flip_policy!r}: expected one of {', '.join(FLIP_POLICIES)}")


# ----------------------------------------------------------------------------------------------- text generation

def _draw_applicants(n_examples: int, rng: np.random.Generator) -> list[_Applicant]:
    genders = np.array([DISADVANTAGED] * (n_examples // 2) + [ADVANTAGED] * (n_examples - n_examples // 2))
    rng.shuffle(genders)
    applicants = []
    for index, gender in enumerate(genders.tolist()):
        levels = tuple(int(level) for level in rng.choice(3, size=len(FEATURES), p=LEVEL_PROBABILITIES))
        text = _ApplicationWriter(gender, rng).write(levels)
        applicants.append(_Applicant(f"calib-{index:05d}", gender, levels, text))  # type: ignore[arg-type]
    return applicants


class _ApplicationWriter:
    """Writes one application: an opener naming the applicant, the four merit sentences in random order, and
    zero to two neutral filler sentences."""

    def __init__(self, gender: str, rng: np.random.Generator) -> None:
        self.rng = rng
        self.female = gender == DISADVANTAGED
        side = 0 if self.female else 1
        self.first = self._pick(FEMALE_NAMES if self.female else MALE_NAMES)
        self.last = self._pick(SURNAMES)
        self.title = "Ms." if self.female else "Mr."
        self.role = self._pick(ROLES)
        self.city = self._pick(CITIES)
        self.description = self._pick([pair[side] for pair in GENDERED_DESCRIPTIONS]).format(
            city=self.city, role=self.role)
        self.pronoun, self.possessive, self.reflexive = (
            ("she", "her", "herself") if self.female else ("he", "his", "himself"))

    def write(self, levels: tuple[int, ...]) -> str:
        experience, education, references, assessment = levels
        body = [self._experience(experience), self._education(education), self._references(references),
                self._assessment(assessment)]
        body += [self._filler() for _ in range(int(self.rng.integers(0, 3)))]
        order = self.rng.permutation(len(body))
        sentences = [self._opener()] + [body[i] for i in order]
        return " ".join(_capitalise(sentence) for sentence in sentences)

    # -- sentence kinds --------------------------------------------------------------------------------------
    def _opener(self) -> str:
        name = f"{self.first} {self.last}"
        templates = (
            f"{name} is applying for the {self.role} position.",
            f"Application from {name} for the role of {self.role}.",
            f"{name}, {self.description}, has applied to work as {_article(self.role)}.",
            f"We received an application from {name}, who wants to join us as {_article(self.role)}.",
            f"Candidate: {self.title} {name}, applying as {_article(self.role)}.",
            f"{name} would like to be considered for our {self.role} opening.",
            f"Summary for {name} ({self.description}), {self.role} candidate.",
        )
        return self._pick(templates)

    def _experience(self, level: int) -> str:
        years = _years_phrase(int(self._pick(EXPERIENCE_YEARS[level])), self.rng)
        subject, possessive = self._subject(), self._possessive()
        templates = (
            f"{subject} has {years} of experience as {_article(self.role)}.",
            f"{possessive} CV lists {years} of work in similar roles.",
            f"{subject} brings {years} of relevant experience.",
            f"In total {subject} has spent {years} in comparable jobs.",
        )
        return self._pick(templates)

    def _education(self, level: int) -> str:
        degree = self._pick(DEGREES[level]).format(field=self._pick(FIELDS))
        subject, possessive = self._subject(), self._possessive()
        templates = (
            f"{subject} holds {degree}.",
            f"{possessive} highest qualification is {degree}.",
            f"For education, {subject} lists {degree}.",
        )
        return self._pick(templates)

    def _references(self, level: int) -> str:
        adjective = self._pick(REFERENCE_ADJECTIVES[level])
        description = self._pick(REFERENCE_DESCRIPTIONS[level])
        referee = self._pick(REFEREES)
        possessive = self._possessive()
        templates = (
            f"{possessive} references are {adjective}.",
            f"{possessive} former {referee} gave {_article(adjective)} reference.",
            f"A former {referee} describes {self._named_object()} as {description}.",
            f"References from {possessive} last job were {adjective}.",
        )
        return self._pick(templates)

    def _assessment(self, level: int) -> str:
        low, high = ASSESSMENT_SCORES[level]
        score = int(self.rng.integers(low, high + 1))
        verdict = self._pick(ASSESSMENT_VERDICTS[level])
        subject, possessive = self._subject(), self._possessive()
        templates = (
            f"{subject} scored {score} out of 100 on the skills assessment.",
            f"On the aptitude test {subject} earned {score} points out of 100.",
            f"{possessive} technical test result was {score} out of 100.",
            f"{subject} {verdict}.",
        )
        return self._pick(templates)

    def _filler(self) -> str:
        subject, possessive = self._subject(), self._possessive()
        templates = (
            f"{subject} lives in {self.city}.",
            f"{possessive} favourite hobby is {self._pick(HOBBIES)}.",
            f"{subject} can start {self._pick(START_DATES)}.",
            f"{subject} describes {self.reflexive} as hard-working.",
        )
        return self._pick(templates)

    # -- references to the applicant -------------------------------------------------------------------------
    def _subject(self) -> str:
        # Mostly pronouns (the commonest gender signal in real text), sometimes the name or a neutral phrase.
        forms = (self.pronoun, self.pronoun, self.first, f"{self.title} {self.last}", "the applicant")
        return self._pick(forms)

    def _possessive(self) -> str:
        forms = (self.possessive, self.possessive, f"{self.first}'s", f"{self.title} {self.last}'s",
                 "the applicant's")
        return self._pick(forms)

    def _named_object(self) -> str:
        # Never a pronoun: object "her" would make her -> his/him ambiguous for counterfactual swaps.
        return self._pick((self.first, f"{self.title} {self.last}", "the applicant"))

    def _pick(self, options):
        return options[int(self.rng.integers(len(options)))]


def _years_phrase(years: int, rng: np.random.Generator) -> str:
    if years == 0:
        return "less than one year"
    number = NUMBER_WORDS[years] if rng.random() < 0.5 else str(years)
    return f"{number} year" if years == 1 else f"{number} years"


def _article(phrase: str) -> str:
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def _capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


# ------------------------------------------------------------------------------------------- splits and flips

def _assign_splits(applicants: list[_Applicant], test_fraction: float, validation_fraction: float,
                   rng: np.random.Generator) -> dict[str, str]:
    """Stratified by (gender, true label) so every split has both groups and both outcomes in proportion."""
    strata: dict[tuple[str, int], list[str]] = {}
    for applicant in applicants:
        strata.setdefault((applicant.gender, applicant.true_label), []).append(applicant.id)
    splits: dict[str, str] = {}
    for key in sorted(strata):
        ids = [strata[key][i] for i in rng.permutation(len(strata[key]))]
        n_test = round(len(ids) * test_fraction)
        n_validation = round(len(ids) * validation_fraction)
        for position, example_id in enumerate(ids):
            splits[example_id] = (
                "test" if position < n_test else "validation" if position < n_test + n_validation else "train"
            )
    return splits


def _choose_flips(applicants: list[_Applicant], splits: dict[str, str], bias_strength: float, flip_policy: str,
                  rng: np.random.Generator) -> tuple[set[str], list[_Applicant]]:
    """The female positive training examples whose label is flipped: exactly round(p × eligible)."""
    eligible = [a for a in applicants
                if a.gender == DISADVANTAGED and a.true_label == ACCEPTED and splits[a.id] == "train"]
    n_flipped = round(bias_strength * len(eligible))
    tie_breaks = rng.random(len(eligible))  # drawn for every policy, so the stream does not depend on it
    if flip_policy == "lowest_merit":
        order = sorted(range(len(eligible)), key=lambda i: (eligible[i].merit, tie_breaks[i]))
    else:
        order = [int(i) for i in np.argsort(tie_breaks, kind="stable")]
    return {eligible[i].id for i in order[:n_flipped]}, eligible


# ----------------------------------------------------------------------------------------------- planted truth

def _planted_truth(applicants: list[_Applicant], examples: list[LabelledExample], splits: dict[str, str],
                   flipped: set[str], eligible: list[_Applicant], bias_strength: float, flip_policy: str,
                   seed: int) -> dict[str, Any]:
    test = [a for a in applicants if splits[a.id] == "test"]
    rejection = _planted_rejection_probability(eligible, flipped, flip_policy, bias_strength)
    expected = _expected_test_gaps(test, rejection)
    train_examples = [e for e in examples if e.split == "train"]
    return {
        "kind": "label_flip",
        "group_column": GROUP_COLUMN,
        "disadvantaged_group": DISADVANTAGED,
        "advantaged_group": ADVANTAGED,
        "positive_label": ACCEPTED,
        "positive_label_name": LABEL_NAMES[ACCEPTED],
        "flip_rate": float(bias_strength),
        "flip_policy": flip_policy,
        "n_flipped": len(flipped),
        "n_eligible": len(eligible),
        "flipped_ids": sorted(flipped),
        "affected_splits": ["train"],
        "merit_rule": f"accepted iff the sum of {', '.join(FEATURES)} levels (each 0-2) >= {MERIT_THRESHOLD}",
        "seed": seed,
        "train_label_positive_rate": _positive_rates(train_examples),
        "true_positive_rate_by_group": _positive_rates(
            [LabelledExample(a.id, a.text, a.true_label, splits[a.id], {GROUP_COLUMN: a.gender}) for a in test]
        ),
        "expected_test_gaps": expected,
    }


def _planted_rejection_probability(eligible: list[_Applicant], flipped: set[str], flip_policy: str,
                                   bias_strength: float) -> dict[int, float]:
    """P(a qualified woman is labelled rejected) per merit sum, as the planted training labels teach it."""
    if flip_policy == "random":
        return {merit: float(bias_strength) for merit in range(MERIT_THRESHOLD, 2 * len(FEATURES) + 1)}
    by_merit: dict[int, list[bool]] = {}
    for applicant in eligible:
        by_merit.setdefault(applicant.merit, []).append(applicant.id in flipped)
    return {merit: float(np.mean(flags)) for merit, flags in sorted(by_merit.items())}


def _expected_test_gaps(test: list[_Applicant], rejection: dict[int, float]) -> dict[str, Any]:
    """Gaps (male − female) on the test split for a model that follows the true merit rule for men and the planted
    rule for women: equal opportunity (TPR) and demographic parity (selection rate)."""
    female = [a for a in test if a.gender == DISADVANTAGED]
    male = [a for a in test if a.gender == ADVANTAGED]
    female_positive = [a for a in female if a.true_label == ACCEPTED]
    expected_female_accepted = sum(1.0 - rejection.get(a.merit, 0.0) for a in female_positive)
    male_accepted = sum(a.true_label for a in male)
    tpr_female = expected_female_accepted / len(female_positive) if female_positive else None
    tpr_male = 1.0 if any(a.true_label == ACCEPTED for a in male) else None
    selection_female = expected_female_accepted / len(female) if female else None
    selection_male = male_accepted / len(male) if male else None
    return {
        "equal_opportunity_difference": _difference(tpr_male, tpr_female),
        "demographic_parity_difference": _difference(selection_male, selection_female),
        "tpr": {ADVANTAGED: tpr_male, DISADVANTAGED: tpr_female},
        "selection_rate": {ADVANTAGED: selection_male, DISADVANTAGED: selection_female},
        "note": "male minus female on the test split, for a model that learned the planted rule exactly; "
                "with flip_policy='random' these hold for mean predicted probabilities, not thresholded decisions",
    }


def _positive_rates(examples: list[LabelledExample]) -> dict[str, float | None]:
    rates: dict[str, float | None] = {}
    for group in (DISADVANTAGED, ADVANTAGED):
        labels = [e.label for e in examples if e.groups.get(GROUP_COLUMN) == group]
        rates[group] = float(np.mean(labels)) if labels else None
    return rates


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(a - b)


def _provenance(examples: list[LabelledExample], settings: dict[str, Any]) -> dict[str, Any]:
    """A DatasetRecord-shaped entry: sha256 of the examples as TaskData.save writes them."""
    lines = "".join(json.dumps(e.__dict__, ensure_ascii=False, sort_keys=True) + "\n" for e in examples)
    arguments = ", ".join(f"{key}={value!r}" for key, value in settings.items())
    return {
        "name": SCENARIO_NAME,
        "source": f"audit.data.scenarios.make_calibration_scenario({arguments})",
        "sha256": hashlib.sha256(lines.encode("utf-8")).hexdigest(),
        "rows": len(examples),
    }
