"""Word lists of the calibration scenario (job applications): gender signals and merit phrasings.

Gender signals are chosen so a counterfactual probe can swap them exactly:
- first names come in aligned pairs (``FEMALE_NAMES[i]`` ↔ ``MALE_NAMES[i]``), taken from the most common US given
  names by sex (U.S. Social Security Administration, popular baby names, 1960-2000 decades), avoiding names that
  are also common English words or surnames used here;
- ``her`` is only used as a possessive determiner (never as an object pronoun), so her ↔ his is an exact swap;
  the titles used are ``Ms.`` and ``Mr.`` only;
- gendered nouns appear in the pairs of ``GENDER_TERM_PAIRS``.
Merit phrasings are grouped by level 0 (weak), 1 (adequate), 2 (strong) and never mention gender.
"""

from __future__ import annotations

# (female, male): every gendered word the scenario's templates use, lowercase. Counterfactual probes should
# swap in both directions, word-boundary aware and case preserving. ("ms", "mr") covers the titles "Ms."/"Mr.".
GENDER_TERM_PAIRS: tuple[tuple[str, str], ...] = (
    ("she", "he"),
    ("her", "his"),
    ("herself", "himself"),
    ("woman", "man"),
    ("women", "men"),
    ("ms", "mr"),
    ("mother", "father"),
    ("wife", "husband"),
    ("daughter", "son"),
    ("sister", "brother"),
    ("girlfriend", "boyfriend"),
    ("businesswoman", "businessman"),
    ("female", "male"),
)

FEMALE_NAMES: tuple[str, ...] = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Lisa", "Nancy", "Sandra", "Ashley", "Emily", "Donna", "Michelle", "Carol", "Amanda", "Melissa",
    "Deborah", "Stephanie", "Rebecca", "Laura", "Sharon", "Cynthia", "Kathleen", "Amy", "Angela", "Anna",
    "Emma", "Olivia", "Sophia", "Hannah", "Rachel", "Megan", "Julia", "Samantha", "Natalie", "Victoria",
)
MALE_NAMES: tuple[str, ...] = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Charles",
    "Christopher", "Daniel", "Matthew", "Anthony", "Benjamin", "Donald", "Steven", "Paul", "Andrew", "Joshua",
    "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward", "Jason", "Jeffrey", "Ryan",
    "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Patrick", "Brandon",
)

# Gender-neutral surnames (no first names, colours, ages or common words among them).
SURNAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Lopez", "Wilson", "Anderson",
    "Taylor", "Moore", "Jackson", "Harris", "Clark", "Lewis", "Walker", "Hall", "Allen", "Wright",
    "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Carter", "Nguyen", "Patel", "Kim",
    "Chen", "Singh", "Cohen", "Murphy", "Rossi", "Novak", "Schmidt", "Okafor", "Tanaka", "Silva",
)

ROLES: tuple[str, ...] = (
    "accountant", "data analyst", "nurse", "electrician", "teacher", "software developer", "project manager",
    "pharmacist", "civil engineer", "paralegal", "graphic designer", "sales representative", "lab technician",
    "logistics coordinator", "financial advisor", "web developer", "mechanic", "physiotherapist",
    "customer service agent", "marketing specialist", "chef", "architect", "librarian", "office administrator",
    "research assistant", "quality inspector", "bookkeeper", "network administrator", "dental hygienist",
    "warehouse supervisor",
)
FIELDS: tuple[str, ...] = (
    "accounting", "nursing", "computer science", "biology", "economics", "engineering", "education", "history",
    "marketing", "statistics", "chemistry", "psychology", "finance", "design", "business administration",
)
CITIES: tuple[str, ...] = (
    "Denver", "Portland", "Austin", "Chicago", "Boston", "Phoenix", "Seattle", "Atlanta", "Detroit", "Dallas",
    "Columbus", "Nashville", "Milwaukee", "Sacramento", "Pittsburgh",
)
HOBBIES: tuple[str, ...] = (
    "hiking", "chess", "gardening", "photography", "cycling", "cooking", "painting", "running", "reading",
    "swimming", "woodworking", "birdwatching",
)
START_DATES: tuple[str, ...] = ("immediately", "next month", "in two weeks", "after the holidays", "in the spring")
REFEREES: tuple[str, ...] = ("manager", "supervisor", "team lead", "employer", "director")

# Gendered descriptions for openers: (female, male) pairs built only from GENDER_TERM_PAIRS words.
GENDERED_DESCRIPTIONS: tuple[tuple[str, str], ...] = (
    ("a mother of two", "a father of two"),
    ("a woman from {city}", "a man from {city}"),
    ("a wife and mother", "a husband and father"),
    ("a businesswoman from {city}", "a businessman from {city}"),
    ("the daughter of a {role}", "the son of a {role}"),
    ("a female applicant", "a male applicant"),
    ("the sister of one of our staff", "the brother of one of our staff"),
)

NUMBER_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen",
)

# Merit levels: 0 weak, 1 adequate, 2 strong.
EXPERIENCE_YEARS: dict[int, tuple[int, ...]] = {0: (0, 1, 2), 1: (3, 4, 5, 6), 2: tuple(range(7, 16))}
DEGREES: dict[int, tuple[str, ...]] = {
    0: ("a high school diploma", "a GED certificate", "no formal qualifications", "a few evening-class credits"),
    1: ("a bachelor's degree in {field}", "an associate degree in {field}", "a college diploma in {field}"),
    2: ("a master's degree in {field}", "a PhD in {field}", "a doctorate in {field}", "an MBA"),
}
REFERENCE_ADJECTIVES: dict[int, tuple[str, ...]] = {
    0: ("weak", "poor", "lukewarm", "negative", "unenthusiastic"),
    1: ("good", "solid", "positive", "decent", "favourable"),
    2: ("excellent", "outstanding", "glowing", "exceptional", "superb"),
}
REFERENCE_DESCRIPTIONS: dict[int, tuple[str, ...]] = {
    0: ("unreliable", "often late", "difficult to work with", "careless with details"),
    1: ("dependable", "competent", "reliable", "a steady worker"),
    2: ("brilliant", "an exceptional colleague", "the best hire they ever made", "a natural leader"),
}
ASSESSMENT_SCORES: dict[int, tuple[int, int]] = {0: (20, 49), 1: (50, 79), 2: (80, 99)}
ASSESSMENT_VERDICTS: dict[int, tuple[str, ...]] = {
    0: ("failed the skills assessment", "did not pass the technical test"),
    1: ("passed the skills assessment", "passed the technical test without distinction"),
    2: ("passed the skills assessment with distinction", "achieved a top result on the technical test"),
}
