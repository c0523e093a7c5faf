"""Association (WEAT/SEAT) probe: known effect sizes and exact p-values on constructed embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bias_helpers import RowsContext

from probes.base import ProbeInputError
from probes.bias.association import AssociationProbe, effect_size, weat

X_SCORES = [0.5, 0.3, 0.4, 0.6]
Y_SCORES = [-0.2, 0.0, -0.1, 0.1]


def vector_with_score(score: float, dims: int = 5) -> np.ndarray:
    """A unit vector w in the (e1, e2) plane with cos(w, e1) − cos(w, e2) = score."""
    angle = math.acos(score / math.sqrt(2.0)) - math.pi / 4.0
    vector = np.zeros(dims)
    vector[0], vector[1] = math.cos(angle), math.sin(angle)
    return vector


class VectorSubject:
    """A stand-in encoder whose word embedding is a fixed vector per word, whatever the template."""

    capabilities = frozenset({"embeddings"})

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table
        self.calls = 0

    def embed_words(self, texts, word_spans, *, layer=-1, batch_size=64):
        self.calls += 1
        return np.stack([self.table[text[start:end].lower()] for text, (start, end) in zip(texts, word_spans)])


def constructed_test(x_scores, y_scores):
    e1, e2 = np.eye(5)[0], np.eye(5)[1]
    table = {f"a{i}": e1 for i in range(3)} | {f"b{i}": e2 for i in range(3)}
    table |= {f"x{i}": vector_with_score(s) for i, s in enumerate(x_scores)}
    table |= {f"y{i}": vector_with_score(s) for i, s in enumerate(y_scores)}
    row = {"name": "constructed", "first_target": "X", "first_target_words": [f"x{i}" for i in range(len(x_scores))],
           "second_target": "Y", "second_target_words": [f"y{i}" for i in range(len(y_scores))],
           "first_attribute": "A", "first_attribute_words": ["a0", "a1", "a2"],
           "second_attribute": "B", "second_attribute_words": ["b0", "b1", "b2"]}
    return VectorSubject(table), row


def run_constructed(x_scores, y_scores):
    subject, row = constructed_test(x_scores, y_scores)
    probe = AssociationProbe({"include_catalog": False, "include_extra": False, "custom_tests": [row],
                              "n_bootstrap": 200})
    return probe.execute(RowsContext({})(subject))


def test_known_effect_size_and_exact_p_value_are_recovered():
    result = run_constructed(X_SCORES, Y_SCORES)
    assert result.status == "ok", result.message
    pooled = np.array(X_SCORES + Y_SCORES)
    expected = (np.mean(X_SCORES) - np.mean(Y_SCORES)) / pooled.std(ddof=1)
    metric = result.metric("effect_size", group="constructed: X/Y vs A/B")
    assert metric.value == pytest.approx(expected, abs=1e-9)
    # 8 words → all C(8,4) = 70 partitions; only the observed one and its mirror reach |difference|.
    assert metric.p_value == pytest.approx(2 / 70)
    assert result.tables[0].rows[0][6] == pytest.approx(1 / 70, rel=1e-3)  # Caliskan's one-sided p
    assert metric.ci_low <= metric.value <= metric.ci_high


def test_no_association_gives_zero_effect_and_p_one():
    result = run_constructed(X_SCORES, X_SCORES)
    metric = result.metric("effect_size", group="constructed: X/Y vs A/B")
    assert metric.value == pytest.approx(0.0, abs=1e-9)
    assert metric.p_value == pytest.approx(1.0)


def test_reversed_association_has_negative_effect():
    forward = effect_size(np.array(X_SCORES), np.array(Y_SCORES))
    assert effect_size(np.array(Y_SCORES), np.array(X_SCORES)) == pytest.approx(-forward)


def test_large_sets_use_monte_carlo_with_phipson_smyth_floor():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 8)) + np.eye(8)[0] * 3
    y = rng.normal(size=(25, 8))
    a = np.eye(8)[:1] + rng.normal(scale=0.1, size=(5, 8))
    b = np.eye(8)[1:2] + rng.normal(scale=0.1, size=(5, 8))
    result = weat(x, y, a, b, rng=np.random.default_rng(1), n_permutations=10_000)
    assert result.effect_size > 1.0
    assert result.p_two_sided == pytest.approx(1 / 10_001)  # C(50,25) is too many: Monte Carlo, +1 correction


def test_too_few_permutations_and_bad_templates_are_input_errors():
    subject, row = constructed_test(X_SCORES, Y_SCORES)
    with pytest.raises(ProbeInputError):
        AssociationProbe({"include_catalog": False, "custom_tests": [row], "n_permutations": 100}).run(
            RowsContext({})(subject))
    with pytest.raises(ProbeInputError):
        AssociationProbe({"include_catalog": False, "custom_tests": [row], "templates": ["no slot"]}).run(
            RowsContext({})(subject))


def test_word_vectors_are_embedded_in_one_batch_per_run():
    subject, row = constructed_test(X_SCORES, Y_SCORES)
    AssociationProbe({"include_catalog": False, "custom_tests": [row], "n_bootstrap": 50}).execute(
        RowsContext({})(subject))
    assert subject.calls == 1
