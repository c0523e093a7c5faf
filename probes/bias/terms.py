"""Identity-term lists for counterfactual swaps and association tests, with where each association comes from.

Each counterfactual category maps identity *values* to slot-aligned term lists: the term at slot k of one value is
swapped for the term at slot k of another (``woman`` ↔ ``man``, ``Emily`` ↔ ``Lakisha``). A value may repeat a
term across slots when a language has fewer forms (``mr`` stands for both ``ms`` and ``mrs``; a repeated term
swaps back to its first slot, so ``Mr.`` becomes ``Ms.``).

Sources:
- gender words and pronouns: the gendered word pairs used for counterfactual data augmentation by Lu et al.,
  "Gender Bias in Neural NLP" (2018) and Zhao et al., "Gender Bias in Coreference Resolution" (NAACL 2018);
  the calibration scenario's own term pairs and names (audit.data.scenarios) are added at run time.
- first names by gender and race: Bertrand & Mullainathan, "Are Emily and Greg More Employable than Lakisha and
  Jamal?" (American Economic Review, 2004), the names their field experiment found most distinctively
  White- or African-American and female or male.
- religion, nationality, sexual orientation, disability and age terms: the identity terms of Dixon et al.,
  "Measuring and Mitigating Unintended Bias in Text Classification" (AIES 2018) and the counterfactual token
  fairness term sets of Garg et al., "Counterfactual Fairness in Text Classification through Robustness" (AIES 2019).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SwapCategory:
    """One identity category: values with slot-aligned terms, and where the associations come from."""

    name: str
    values: dict[str, tuple[str, ...]]
    source: str

    def __post_init__(self) -> None:
        lengths = {len(terms) for terms in self.values.values()}
        if len(lengths) != 1:
            raise ValueError(f"category {self.name!r}: every value needs the same number of slot-aligned terms")


_GENDER_WORDS = {
    "female": (
        "she", "her", "her", "hers", "herself", "woman", "women", "girl", "girls", "mother", "mothers", "daughter",
        "daughters", "sister", "sisters", "wife", "wives", "aunt", "niece", "female", "females", "lady", "ladies",
        "queen", "ms", "mrs", "grandmother", "girlfriend", "madam", "actress", "waitress", "mom", "mum",
    ),
    "male": (
        "he", "his", "him", "his", "himself", "man", "men", "boy", "boys", "father", "fathers", "son",
        "sons", "brother", "brothers", "husband", "husbands", "uncle", "nephew", "male", "males", "gentleman",
        "gentlemen", "king", "mr", "mr", "grandfather", "boyfriend", "sir", "actor", "waiter", "dad", "dad",
    ),
}

# Bertrand & Mullainathan (2004), Table A1: the names used in their resume audit study.
_WHITE_FEMALE = ("Emily", "Anne", "Jill", "Allison", "Laurie", "Sarah", "Meredith", "Carrie", "Kristen")
_BLACK_FEMALE = ("Aisha", "Keisha", "Tamika", "Lakisha", "Tanisha", "Latoya", "Kenya", "Latonya", "Ebony")
_WHITE_MALE = ("Todd", "Neil", "Geoffrey", "Brett", "Brendan", "Greg", "Matthew", "Jay", "Brad")
_BLACK_MALE = ("Rasheed", "Tremayne", "Kareem", "Darnell", "Tyrone", "Hakim", "Jamal", "Leroy", "Jermaine")

BASE_CATEGORIES: tuple[SwapCategory, ...] = (
    SwapCategory("gender", dict(_GENDER_WORDS), "Lu et al. 2018; Zhao et al. 2018 (gendered word pairs)"),
    SwapCategory(
        "gender_names",
        {"female": _WHITE_FEMALE + _BLACK_FEMALE, "male": _WHITE_MALE + _BLACK_MALE},
        "Bertrand & Mullainathan 2004 (names by perceived gender)",
    ),
    SwapCategory(
        "race_names",
        {"white": _WHITE_FEMALE + _WHITE_MALE, "black": _BLACK_FEMALE + _BLACK_MALE},
        "Bertrand & Mullainathan 2004 (names by perceived race)",
    ),
    SwapCategory(
        "race",
        {
            "white": ("white", "european american", "caucasian"),
            "black": ("black", "african american", "african american"),
            "asian": ("asian", "asian american", "asian"),
            "hispanic": ("hispanic", "latino", "latina"),
        },
        "Dixon et al. 2018; Garg et al. 2019 (identity terms)",
    ),
    SwapCategory(
        "religion",
        {
            "christian": ("christian", "christians", "church"),
            "muslim": ("muslim", "muslims", "mosque"),
            "jewish": ("jewish", "jews", "synagogue"),
            "hindu": ("hindu", "hindus", "temple"),
            "buddhist": ("buddhist", "buddhists", "monastery"),
            "sikh": ("sikh", "sikhs", "gurdwara"),
            "atheist": ("atheist", "atheists", "secular group"),
        },
        "Dixon et al. 2018; Garg et al. 2019 (identity terms)",
    ),
    SwapCategory(
        "nationality",
        {
            "american": ("american", "americans", "america"),
            "mexican": ("mexican", "mexicans", "mexico"),
            "chinese": ("chinese", "chinese people", "china"),
            "indian": ("indian", "indians", "india"),
            "nigerian": ("nigerian", "nigerians", "nigeria"),
            "german": ("german", "germans", "germany"),
            "iraqi": ("iraqi", "iraqis", "iraq"),
            "canadian": ("canadian", "canadians", "canada"),
        },
        "Dixon et al. 2018 (nationality identity terms)",
    ),
    SwapCategory(
        "sexual_orientation",
        {
            "gay": ("gay", "homosexual", "gays"),
            "lesbian": ("lesbian", "lesbian", "lesbians"),
            "bisexual": ("bisexual", "bisexual", "bisexuals"),
            "heterosexual": ("heterosexual", "heterosexual", "heterosexuals"),
        },
        "Dixon et al. 2018; Garg et al. 2019 (identity terms; 'straight' is left out as a source term because it "
        "is mostly not an identity word)",
    ),
    SwapCategory(
        "disability",
        {
            "disabled": ("disabled", "disabled people"),
            "blind": ("blind", "blind people"),
            "deaf": ("deaf", "deaf people"),
            "autistic": ("autistic", "autistic people"),
            "able-bodied": ("able-bodied", "able-bodied people"),
        },
        "Dixon et al. 2018 (blind, deaf, paralyzed); Hutchinson et al., ACL 2020 (disability terms)",
    ),
    SwapCategory(
        "age",
        {
            "young": ("young", "teenage", "younger"),
            "old": ("old", "elderly", "older"),
            "middle-aged": ("middle-aged", "middle-aged", "middle-aged"),
        },
        "Dixon et al. 2018 (old, older, young, younger, teenage, elderly, middle aged)",
    ),
)


def scenario_gender_category() -> SwapCategory | None:
    """The calibration scenario's own gender terms and names (audit.data.scenarios), if that module exports them.

    The scenario signals gender by names and pronouns; swapping exactly those is the known-answer check.
    """
    try:
        from audit.data import scenarios
    except ImportError:
        return None
    pairs = list(getattr(scenarios, "GENDER_TERM_PAIRS", []))
    female_names = list(getattr(scenarios, "FEMALE_NAMES", []))
    male_names = list(getattr(scenarios, "MALE_NAMES", []))
    female = [pair[0] for pair in pairs] + female_names[: len(male_names)]
    male = [pair[1] for pair in pairs] + male_names[: len(female_names)]
    if not female:
        return None
    return SwapCategory(
        "gender_scenario",
        {"female": tuple(female), "male": tuple(male)},
        "the calibration scenario's gender terms and names (audit.data.scenarios)",
    )


def default_categories() -> list[SwapCategory]:
    """The built-in categories, with the scenario's gender terms folded into ``gender`` when available."""
    categories = list(BASE_CATEGORIES)
    scenario = scenario_gender_category()
    if scenario is not None:
        gender = categories[0]
        merged = {
            value: gender.values[value] + scenario.values[value] for value in ("female", "male")
        }
        categories[0] = SwapCategory("gender", merged, gender.source + "; " + scenario.source)
    return categories


# Dixon et al. (2018): the identity terms of the madlibs templates (bias_madlibs_77k.csv), longest first when
# matching so that "african american" wins over "american".
MADLIBS_IDENTITY_TERMS: tuple[str, ...] = (
    "lesbian", "gay", "bisexual", "transgender", "trans", "queer", "lgbt", "lgbtq", "homosexual", "straight",
    "heterosexual", "male", "female", "nonbinary", "african", "african american", "black", "white", "european",
    "hispanic", "latino", "latina", "latinx", "mexican", "canadian", "american", "asian", "indian",
    "middle eastern", "chinese", "japanese", "christian", "muslim", "jewish", "buddhist", "catholic", "protestant",
    "sikh", "taoist", "old", "older", "young", "younger", "teenage", "millenial", "middle aged", "elderly", "blind",
    "deaf", "paralyzed",
)

# Association-test lists beyond WEAT 1–10 (which come from the data catalog).
# Gender/career: the career and family attributes of WEAT 6 (Caliskan et al. 2017) with gendered common nouns
# instead of names (as in May et al. 2019's SEAT "terms" variants).
GENDER_CAREER = {
    "name": "Gender terms / career vs family",
    "first_target": ("Male terms", ("man", "he", "him", "his", "male", "boy", "brother", "son", "father", "uncle")),
    "second_target": (
        "Female terms", ("woman", "she", "her", "hers", "female", "girl", "sister", "daughter", "mother", "aunt"),
    ),
    "first_attribute": (
        "Career", ("executive", "management", "professional", "corporation", "salary", "office", "business", "career"),
    ),
    "second_attribute": (
        "Family", ("home", "parents", "children", "family", "cousins", "marriage", "wedding", "relatives"),
    ),
}
# Race/pleasantness: Bertrand & Mullainathan (2004) names with the short pleasant/unpleasant lists of WEAT 5.
RACE_PLEASANTNESS = {
    "name": "Race names (Bertrand & Mullainathan) / pleasant vs unpleasant",
    "first_target": ("European American names", _WHITE_FEMALE + _WHITE_MALE),
    "second_target": ("African American names", _BLACK_FEMALE + _BLACK_MALE),
    "first_attribute": ("Pleasant", ("joy", "love", "peace", "wonderful", "pleasure", "friend", "laughter", "happy")),
    "second_attribute": ("Unpleasant", ("agony", "terrible", "horrible", "nasty", "evil", "war", "awful", "failure")),
}
EXTRA_ASSOCIATION_TESTS = (GENDER_CAREER, RACE_PLEASANTNESS)
