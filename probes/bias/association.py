"""Association tests (WEAT / SEAT) on contextual embeddings: do target groups sit closer to some attributes?

Method. WEAT (Caliskan, Bryson & Narayanan, "Semantics derived automatically from language corpora contain
human-like biases", Science 2017): for target word sets X, Y and attribute sets A, B,
  s(w, A, B) = mean_{a∈A} cos(w, a) − mean_{b∈B} cos(w, b),
  effect size d = (mean_{x∈X} s(x) − mean_{y∈Y} s(y)) / std_{w∈X∪Y} s(w)   (sample std, ddof = 1),
and a permutation test over equal-size re-partitions of X ∪ Y: exact over all partitions when there are at most
``exact_limit`` of them, otherwise ``n_permutations`` random ones (Phipson & Smyth 2010 correction).
We report the two-sided p-value (|difference of mean s| as statistic, since bias may go either way) and, in the
table, Caliskan's one-sided p-value for the stated X–A direction.

Contextual embeddings follow SEAT (May et al., "On Measuring Social Biases in Sentence Encoders", NAACL 2019):
each word is placed in semantically bleached templates ("This is X.", "X is here." …). With
``representation="word"`` a word's vector is the contextual embedding of its own tokens in each template;
with ``"sentence"`` it is the mean-pooled sentence embedding (SEAT's choice). Either way the vectors are averaged
over the templates, so that the unit of the permutation test stays the word (the exchangeable unit), unlike SEAT,
which permuted template sentences of the same word as if they were independent.

Direction: an effect size of **0 is ideal**; |d| ≥ 0.8 is "large" by Cohen's convention (max 2). Works for any
encoder (needs only embeddings), e.g. all-MiniLM-L6-v2 without an MLM head.

Known limits: WEAT lists are short and US-centric; effect sizes on contextual models are unstable across
templates and layers (May et al. 2019; Ethayarajh et al., ACL 2019) and do not predict downstream harms
(Goldfarb-Tarrant et al., ACL 2021). Treat them as a screening signal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from pydantic import Field

from audit.results import Example, Finding, Metric, Table
from probes.base import (
    FROM_DATA,
    NO_GROUP,
    BootstrapResamples,
    Confidence,
    Count,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeInputError,
    declare,
    register,
)
from probes.bias.common import bar_figure
from probes.bias.terms import EXTRA_ASSOCIATION_TESTS
from probes.stats import bootstrap_indices, holm, percentile_interval, permutation_test

# Semantically bleached templates after May et al. (2019), one "{}" each.
SEAT_TEMPLATES = ("This is {}.", "That is {}.", "There is {}.", "Here is {}.", "{} is here.", "{} is there.",
                  "It is {}.", "This will be {}.")
# WEAT 1 and 2 replicate non-social implicit associations: an effect there shows the method works, not a bias.
NON_SOCIAL_WEAT = frozenset({"1", "2"})
CATALOG_FIELDS = ("first_target", "first_target_words", "second_target", "second_target_words",
                  "first_attribute", "first_attribute_words", "second_attribute", "second_attribute_words")


@dataclass(frozen=True)
class AssociationTest:
    name: str
    x_name: str
    x_words: tuple[str, ...]
    y_name: str
    y_words: tuple[str, ...]
    a_name: str
    a_words: tuple[str, ...]
    b_name: str
    b_words: tuple[str, ...]
    reference_effect: float | None = None  # Caliskan et al.'s GloVe effect size, where known
    social: bool = True  # False for WEAT 1–2 (flowers/insects, instruments/weapons): validity checks, not bias

    def words(self) -> list[str]:
        return list(self.x_words + self.y_words + self.a_words + self.b_words)


@dataclass(frozen=True)
class WeatResult:
    effect_size: float
    ci: tuple[float, float]
    p_two_sided: float
    p_one_sided: float
    x_scores: np.ndarray
    y_scores: np.ndarray


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ProbeInputError("an embedding is all zeros; cosine similarity is undefined (expected non-zero vectors)")
    return vectors / norms


def association_scores(words: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s(w, A, B) for every row of ``words`` (n, H) against attribute matrices ``a`` (na, H), ``b`` (nb, H)."""
    words, a, b = _unit_rows(words), _unit_rows(a), _unit_rows(b)
    return (words @ a.T).mean(axis=1) - (words @ b.T).mean(axis=1)  # (n,)


def effect_size(x_scores: np.ndarray, y_scores: np.ndarray) -> float:
    """Caliskan et al.'s d; 0 when every s(w) is equal (no association to separate)."""
    spread = np.std(np.concatenate([x_scores, y_scores]), ddof=1)
    if spread == 0:
        return 0.0
    return float((x_scores.mean() - y_scores.mean()) / spread)


def weat(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, *, rng: np.random.Generator,
         n_permutations: int = 10_000, exact_limit: int = 50_000, n_bootstrap: int = 1000,
         confidence: float = 0.95) -> WeatResult:
    """WEAT effect size, bootstrap interval (target words resampled within X and within Y) and permutation
    p-values for embeddings x (nx, H), y (ny, H), a (na, H), b (nb, H)."""
    x_scores, y_scores = association_scores(x, a, b), association_scores(y, a, b)
    observed = effect_size(x_scores, y_scores)
    pooled = np.concatenate([x_scores, y_scores])
    n_x = len(x_scores)

    def mean_difference(masks: np.ndarray) -> np.ndarray:  # masks (P, n) mark the "X" side
        in_x = masks.astype(float)
        return in_x @ pooled / n_x - (1.0 - in_x) @ pooled / (len(pooled) - n_x)

    options = {"rng": rng, "n_permutations": n_permutations, "exact_limit": exact_limit}
    p_one = permutation_test(mean_difference, len(pooled), n_x, **options)
    p_two = permutation_test(lambda masks: np.abs(mean_difference(masks)), len(pooled), n_x, **options)

    x_rows = bootstrap_indices(len(x_scores), n_bootstrap, rng)  # (R, nx)
    y_rows = bootstrap_indices(len(y_scores), n_bootstrap, rng)  # (R, ny)
    x_boot, y_boot = x_scores[x_rows], y_scores[y_rows]
    spread = np.concatenate([x_boot, y_boot], axis=1).std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = np.where(spread > 0, (x_boot.mean(axis=1) - y_boot.mean(axis=1)) / spread, 0.0)
    low, high = percentile_interval(replicates, confidence=confidence)
    return WeatResult(observed, (float(low), float(high)), p_two, p_one, x_scores, y_scores)


def catalog_tests(rows: list[dict]) -> list[AssociationTest]:
    """WEAT 1–10 from the data catalog's ``weat`` rows."""
    tests = []
    for index, row in enumerate(rows):
        missing = [field for field in CATALOG_FIELDS if field not in row]
        if missing:
            raise ProbeInputError(f"weat row {index}: missing {', '.join(missing)}; expected {', '.join(CATALOG_FIELDS)}")
        number = row.get("test", index + 1)
        test = _test_from_mapping(f"WEAT {number}", row, reference=row.get("original_d"))
        if str(number) in NON_SOCIAL_WEAT:
            test = replace(test, social=False)
        tests.append(test)
    return tests


def _test_from_mapping(name: str, row: dict, reference=None) -> AssociationTest:
    return AssociationTest(
        name=f"{name}: {row['first_target']}/{row['second_target']} vs {row['first_attribute']}/{row['second_attribute']}",
        x_name=str(row["first_target"]), x_words=tuple(row["first_target_words"]),
        y_name=str(row["second_target"]), y_words=tuple(row["second_target_words"]),
        a_name=str(row["first_attribute"]), a_words=tuple(row["first_attribute_words"]),
        b_name=str(row["second_attribute"]), b_words=tuple(row["second_attribute_words"]),
        reference_effect=float(reference) if reference is not None else None,
    )


def extra_tests() -> list[AssociationTest]:
    """The built-in gender/career and race/pleasantness tests (probes.bias.terms)."""
    tests = []
    for spec in EXTRA_ASSOCIATION_TESTS:
        row = {}
        for role in ("first_target", "second_target", "first_attribute", "second_attribute"):
            row[role], row[f"{role}_words"] = spec[role][0], spec[role][1]
        tests.append(_test_from_mapping(spec["name"].split(" / ")[0], row))
    return tests


def word_vectors(subject, words: list[str], *, templates: tuple[str, ...], representation: str, layer: int,
                 batch_size: int) -> dict[str, np.ndarray]:
    """One vector per word: its contextual (or sentence) embedding averaged over the templates."""
    texts, spans = [], []
    for word in words:
        for template in templates:
            filled = word[:1].upper() + word[1:] if template.startswith("{}") else word
            start = template.index("{}")
            texts.append(template.replace("{}", filled))
            spans.append((start, start + len(filled)))
    if representation == "word":
        vectors = subject.embed_words(texts, spans, layer=layer, batch_size=batch_size)
    else:
        vectors = subject.embed(texts, pooling="mean", layer=layer, batch_size=batch_size)
    vectors = np.asarray(vectors, dtype=np.float64).reshape(len(words), len(templates), -1).mean(axis=1)
    return dict(zip(words, vectors))


@register
class AssociationProbe(Probe):
    """WEAT/SEAT effect sizes on contextual embeddings (Caliskan et al. 2017; May et al. 2019); 0 is ideal."""

    name = "association"
    version = "1"
    family = "bias"
    citation = (
        "Caliskan, Bryson & Narayanan. Semantics derived automatically from language corpora contain human-like "
        "biases. Science 2017; May, Wang, Bordia, Bowman & Rudinger. On Measuring Social Biases in Sentence "
        "Encoders. NAACL 2019."
    )
    description = "WEAT/SEAT association effect sizes with permutation p-values on contextual embeddings."
    needs = frozenset({"embeddings"})
    how_to_read = (
        "Each test asks whether one group of words (e.g. male terms) sits closer to one set of attributes (e.g. "
        "career words) than another group does, in the model's internal representation. The effect size is 0 when "
        "there is no such association; values beyond ±0.8 are conventionally 'large' (the maximum is 2). The "
        "p-value says how often a random split of the words gives an association this strong. These are screening "
        "signals: they are sensitive to word lists and templates and do not by themselves show harm in use."
    )

    metrics = declare({"effect_size": FROM_DATA, "mean_abs_effect_size": NO_GROUP})  # groups: test names

    class Config(ProbeConfig):
        dataset: str = "weat"
        include_catalog: bool = True  # WEAT 1–10 from the data catalog
        include_extra: bool = True  # built-in gender/career and race/pleasantness tests
        custom_tests: list[dict] = Field(default_factory=list)  # rows in the catalog's weat format (first_target, first_target_words, …)
        tests: list[str] | None = None  # keep tests whose name starts with one of these (e.g. "WEAT 6")
        representation: Literal["word", "sentence"] = "word"
        templates: list[str] | None = None  # each with one "{}"; default SEAT_TEMPLATES
        layer: int = -1
        n_permutations: Count = 10_000
        exact_limit: Count = 50_000
        n_bootstrap: BootstrapResamples = 1000
        confidence: Confidence = 0.95
        batch_size: Count = 64

    def run(self, ctx: ProbeContext):
        config = self.config
        templates = tuple(config.templates or SEAT_TEMPLATES)
        if any(template.count("{}") != 1 for template in templates):
            raise ProbeInputError("association: every template needs exactly one '{}' placeholder, e.g. 'This is {}.'")
        if config.n_permutations < 10_000:
            raise ProbeInputError(f"association: n_permutations is {config.n_permutations}; expected at least 10000")
        tests = self._tests(ctx)
        words = sorted({word for test in tests for word in test.words()})
        ctx.progress(f"association: embedding {len(words)} words in {len(templates)} templates")
        vectors = word_vectors(ctx.subject, words, templates=templates, representation=config.representation,
                               layer=config.layer, batch_size=config.batch_size)
        results = []
        for test in tests:
            stack = [np.stack([vectors[word] for word in group])
                     for group in (test.x_words, test.y_words, test.a_words, test.b_words)]
            results.append(weat(*stack, rng=ctx.rng, n_permutations=config.n_permutations,
                                exact_limit=config.exact_limit, n_bootstrap=config.n_bootstrap,
                                confidence=config.confidence))
        return self._result(tests, results)

    def _tests(self, ctx: ProbeContext) -> list[AssociationTest]:
        config = self.config
        tests = []
        if config.include_catalog:
            loaded = ctx.load_dataset(config.dataset)
            tests += catalog_tests(getattr(loaded, "dataset", loaded).to_list())
        if config.include_extra:
            tests += extra_tests()
        for index, row in enumerate(config.custom_tests):
            missing = [field for field in CATALOG_FIELDS if field not in row]
            if missing:
                raise ProbeInputError(f"association: custom_tests[{index}] lacks {', '.join(missing)}; expected "
                                      f"{', '.join(CATALOG_FIELDS)}")
            tests.append(_test_from_mapping(str(row.get("name", f"custom {index + 1}")), row))
        if config.tests is not None:
            tests = [test for test in tests if any(test.name.startswith(prefix) for prefix in config.tests)]
        for test in tests:
            if min(len(test.x_words), len(test.y_words)) < 2 or min(len(test.a_words), len(test.b_words)) < 1:
                raise ProbeInputError(f"association: {test.name}: each target set needs at least 2 words and each "
                                      "attribute set at least 1")
        if not tests:
            raise ProbeInputError("association: no test selected; check `tests`, `include_catalog`, `include_extra`")
        return tests

    def _result(self, tests: list[AssociationTest], results: list[WeatResult]):
        adjusted = holm([result.p_two_sided for result in results])
        metrics = [
            Metric(name="effect_size", value=result.effect_size, ci_low=result.ci[0], ci_high=result.ci[1],
                   higher_is_better=None, target=0.0, n=len(test.x_words) + len(test.y_words), group=test.name,
                   p_value=result.p_two_sided,
                   description=f"WEAT d: {test.x_name} vs {test.y_name} towards {test.a_name} over {test.b_name}")
            for test, result in zip(tests, results)
        ]
        metrics.append(Metric(name="mean_abs_effect_size", value=float(np.mean([abs(r.effect_size) for r in results])),
                              higher_is_better=False, n=len(results), description="mean |d| over the tests"))
        table = Table(
            name="association_tests",
            title="WEAT/SEAT association tests",
            columns=["test", "effect size d", "CI low", "CI high", "p (two-sided)", "p (Holm)",
                     "p (one-sided, X–A)", "reference d (GloVe, Caliskan 2017)", "target words"],
            rows=[[test.name, round(result.effect_size, 3), round(result.ci[0], 3), round(result.ci[1], 3),
                   _sig(result.p_two_sided), _sig(p), _sig(result.p_one_sided),
                   test.reference_effect, len(test.x_words) + len(test.y_words)]
                  for test, result, p in zip(tests, results, adjusted)],
            caption="Permutation tests over re-partitions of the target words; Holm-adjusted across tests. "
                    "Positive d: the first target set is closer to the first attribute set.",
        )
        findings = []
        for test, result, p, metric in zip(tests, results, adjusted, metrics):
            if p < 0.05 and (abs(result.effect_size) >= 0.5 or not test.social):
                level = "fail" if abs(result.effect_size) >= 0.8 else "warn"
                if not test.social:
                    level = "info"
                leaning = (f"{test.x_name} closer to {test.a_name}" if result.effect_size > 0
                           else f"{test.x_name} closer to {test.b_name}")
                findings.append(Finding(level=level, metric="effect_size",
                                        message=f"{test.name}: effect size {result.effect_size:.2f} (CI "
                                                f"{result.ci[0]:.2f}–{result.ci[1]:.2f}, Holm p = {p:.3g}); {leaning}."
                                                + ("" if test.social else " A non-social validity check: an effect "
                                                   "in this direction is expected.")))
        significant = sum(1 for p, test in zip(adjusted, tests) if p < 0.05 and test.social)
        social = sum(1 for test in tests if test.social)
        findings.insert(0, Finding(level="info", metric="mean_abs_effect_size",
                                   message=f"{significant} of {social} social-bias association tests show a significant "
                                           f"association after Holm correction (mean |d| = {metrics[-1].value:.2f})."))
        examples = [
            Example(title=f"{test.name}: most extreme target words",
                    fields={f"{test.x_name} (highest s)": ", ".join(_top(test.x_words, result.x_scores)),
                            f"{test.y_name} (lowest s)": ", ".join(_top(test.y_words, -result.y_scores))})
            for test, result in list(zip(tests, results))[:5]
        ]
        return self.new_result(
            metrics=metrics, tables=[table], examples=examples, findings=findings,
            figures=[bar_figure("effect_sizes", "Association effect sizes", metrics[:-1], reference=0.0,
                                y_label="WEAT effect size d", caption="0 = no association; whiskers: bootstrap CIs.")],
        )


def _sig(value: float) -> float:
    """Four significant digits, so that small p-values do not round to 0."""
    return float(f"{float(value):.4g}")


def _top(words: tuple[str, ...], scores: np.ndarray, count: int = 3) -> list[str]:
    order = np.argsort(-scores, kind="stable")[:count]
    return [f"{words[index]} ({scores[index]:+.3f})" for index in order]
