"""Group sources: identity-term mentions, intersections, and the TwitterAAE dialect inference."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from probes.base import ProbeInputError
from probes.fairness.dialect import TwitterAAEModel, dialect_labels, tokenize
from probes.fairness.groups import build_groupings, column_labels, identity_labels, identity_mentions


def test_identity_mentions_respect_word_boundaries_and_longest_terms():
    texts = ["I am a gay man", "gayety is not a term", "my African American friend", "An American, and Muslim",
             "nothing here"]
    masks = identity_mentions(texts, ["gay", "african american", "american", "muslim"])
    assert masks["gay"].tolist() == [True, False, False, False, False]
    assert masks["african american"].tolist() == [False, False, True, False, False]
    assert masks["american"].tolist() == [False, False, False, True, False]  # not counted inside "african american"
    assert identity_labels(texts, ["gay", "african american", "american", "muslim"]) == [
        "gay", "none", "african american", "multiple", "none"]


def test_intersections_and_empty_cells():
    features = {"a": ["x", "x", "y"], "b": ["p", "q", "p"]}
    grouping_set = build_groupings(features)
    names = [g.name for g in grouping_set.groupings]
    assert names == ["a", "b", "a × b"]
    assert grouping_set.empty["a × b"] == ["a=y & b=q"]


def test_column_labels_error_names_known_columns():
    from audit.data.task import LabelledExample

    examples = [LabelledExample("1", "t", 0, "test", {"gender": "f"})]
    with pytest.raises(ProbeInputError, match="'race'.*gender"):
        column_labels(examples, "race", available=["gender"])


def _reference_cvb0(word_probs: np.ndarray, rows: list[int], alpha: float = 1.0, passes: int = 5) -> np.ndarray:
    """Token-by-token CVB0 for one document, written plainly (the algorithm of Blodgett et al.'s predictor)."""
    likelihood = word_probs[rows]
    q = likelihood / likelihood.sum(axis=1, keepdims=True)
    totals = q.sum(axis=0)
    for _ in range(1, passes):
        for t in range(len(rows)):
            totals = totals - q[t]
            update = likelihood[t] * (totals + alpha)
            q[t] = update / update.sum()
            totals = totals + q[t]
    return totals / totals.sum()


def test_vectorised_cvb0_matches_the_plain_reference():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    counts = rng.integers(0, 50, size=(30, 4)).astype(float)
    model = TwitterAAEModel.from_counts(words, counts)
    documents = [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for _ in range(25)] + ["zzz unknown"]
    proportions = model.proportions(documents, batch_size=7)
    for document, row in zip(documents[:-1], proportions[:-1]):
        ids = [model.vocabulary[token] for token in tokenize(document)]
        np.testing.assert_allclose(row, _reference_cvb0(model.word_probs, ids), atol=1e-12)
    assert np.isnan(proportions[-1]).all()
    assert dialect_labels(proportions)[-1] == "unassigned"


def test_planted_dialect_words_are_recovered():
    # word "a" occurs only in topic 0 (AA), "w" only in topic 3 (White); "n" is neutral
    model = TwitterAAEModel.from_counts(["a", "w", "n"], np.array([[1000, 0, 0, 0], [0, 0, 0, 1000], [50, 50, 50, 50]]))
    labels = dialect_labels(model.proportions(["a a a a a a a a a n", "w w w w n w w w w w", "n n"]), threshold=0.8)
    assert labels == ["aa_aligned", "white_aligned", "other"]


def test_tokenizer_drops_mentions_urls_and_entities():
    assert tokenize("RT @user: Wassup!!! http://t.co/x &amp; y'all :)") == [":", "wassup", "!!!", "&", "y'all", ":)"]


@pytest.mark.skipif(not os.environ.get("RAI_AUDIT_DATA_DIR"), reason="RAI_AUDIT_DATA_DIR is not set")
def test_real_twitteraae_model_separates_dialects():
    folder = Path(os.environ["RAI_AUDIT_DATA_DIR"]) / "twitteraae"
    model = TwitterAAEModel.from_directory(folder)
    proportions = model.proportions([
        "wassup bruh yall finna go to the store",
        "I had a lovely afternoon at the museum with my family",
    ])
    assert proportions[0, 0] > 0.8  # African-American-aligned proportion
    assert proportions[1, 3] > proportions[1, 0]  # White-aligned above AA-aligned
