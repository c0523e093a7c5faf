"""Dialect groups from the TwitterAAE demographic dialect model (Blodgett, Green & O'Connor, EMNLP 2016).

Blodgett et al. fit a mixed-membership (LDA-like) model to geo-located tweets with four topics tied to U.S.
census demographics: African-American, Hispanic, Asian and White-aligned language. The released model is a
word-by-topic count table. For a new tweet, the quantity of interest is the posterior proportion of each topic
over the tweet's in-vocabulary tokens. We infer it with collapsed variational Bayes (CVB0; Asuncion et al., UAI
2009) holding the topic-word distributions fixed:

    p(word | topic k) = (N_wk + 1) / N_k                  (add-one smoothed counts)
    q_t(k)  ∝ p(w_t | k) · (sum_{s != t} q_s(k) + alpha)   (per-token topic posterior, symmetric Dirichlet prior)
    proportions = sum_t q_t / T                           (average of the per-token posteriors)

with alpha = 1 and 5 passes, as in the authors' released predictor. Tokens are updated one position at a time
(the sequential CVB0 order), vectorised across tweets. Blodgett et al. validate only the African-American and
White-aligned proportions, so only those two become groups.

Labelling follows the thresholding of Sap et al. ("The Risk of Racial Bias in Hate Speech Detection", ACL 2019)
and Davidson et al. ("Racial Bias in Hate Speech and Abusive Language Detection Datasets", 2019, who use 0.8): a
tweet is ``aa_aligned`` when its African-American proportion is at least ``threshold`` and ``white_aligned`` when
its White proportion is at least ``threshold``; everything else is ``other`` (or ``unassigned`` when no token is
in the model's vocabulary). Our default is 0.6, not 0.8: on an abusive-language corpus the model assigns much of
the (profane) vocabulary to the AA topic, and 0.8 leaves almost no White-aligned tweets (26 of Davidson et al.'s
24,783; 590 AA-aligned), so no comparison is possible. 0.6 still demands a clear majority of the tweet's tokens
(4,827 AA-aligned and 1,132 White-aligned tweets in Davidson). Any value in (0.5, 1] can be set; the report
states the one used. Dialect is a *proxy* for the author's race and misassigns individual tweets; results are
about dialect groups, not people.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audit.errors import InputError

TOPICS = ("african_american", "hispanic", "asian", "white")
AA, WHITE = 0, 3
DEFAULT_THRESHOLD = 0.6
ALIGNED_LABELS = {AA: "aa_aligned", WHITE: "white_aligned"}
OTHER, UNASSIGNED = "other", "unassigned"

# Tokens as in the model's vocabulary: lowercased words (with inner apostrophes), emoticons, runs of ! ? .
_DROP = re.compile(r"https?://\S+|www\.\S+|@\w+|&#\d+;|\brt\b", re.IGNORECASE)
_TOKEN = re.compile(r"[:;=]-?[()dpo/\\|]|<3|[a-z0-9]+(?:'[a-z]+)*|[!?.]+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercased tweet tokens; URLs, @-mentions, retweet markers and HTML entities are dropped."""
    text = _DROP.sub(" ", html.unescape(_DROP.sub(" ", text)).lower())
    return _TOKEN.findall(text.replace("#", " "))


class DialectModelError(InputError):
    """The TwitterAAE files are missing or malformed."""


@dataclass
class TwitterAAEModel:
    """Topic-word probabilities (V, 4) and the vocabulary (word -> row)."""

    word_probs: np.ndarray
    vocabulary: dict[str, int]
    alpha: float = 1.0
    passes: int = 5

    @classmethod
    def from_counts(cls, words: Sequence[str], counts: np.ndarray, **settings) -> TwitterAAEModel:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[1] != len(TOPICS) or counts.shape[0] != len(words):
            raise DialectModelError(
                f"expected a ({len(words)}, 4) count table aligned with the vocabulary; got {counts.shape}"
            )
        # Add-one smoothing of the topic-word counts, normalised per topic (Blodgett et al.'s released model).
        word_probs = (counts + 1.0) / counts.sum(axis=0)
        return cls(word_probs, {word: row for row, word in enumerate(words)}, **settings)

    @classmethod
    def from_directory(cls, directory: str | Path, **settings) -> TwitterAAEModel:
        """Read ``model_vocab.txt`` (count<TAB>word) and ``model_count_table.txt`` (4 topic counts per line)."""
        directory = Path(directory)
        vocab_path, counts_path = directory / "model_vocab.txt", directory / "model_count_table.txt"
        if not vocab_path.is_file() or not counts_path.is_file():
            raise DialectModelError(
                f"{directory}: expected model_vocab.txt and model_count_table.txt (the TwitterAAE model); "
                "set data_dir or RAI_AUDIT_DATA_DIR to the shared data folder"
            )
        with open(vocab_path, encoding="utf-8") as handle:
            words = [line.rstrip("\n").split("\t")[-1] for line in handle]
        counts = np.loadtxt(counts_path, dtype=np.float64, ndmin=2)
        return cls.from_counts(words, counts, **settings)

    @classmethod
    def from_dataset(cls, dataset, **settings) -> TwitterAAEModel:
        """From the data catalog's ``twitteraae`` table (columns word + one per topic)."""
        counts = np.stack([np.asarray(dataset[topic], dtype=np.float64) for topic in TOPICS], axis=1)
        return cls.from_counts(list(dataset["word"]), counts, **settings)

    def proportions(self, texts: Iterable[str], *, batch_size: int = 2048) -> np.ndarray:
        """(N, 4) topic proportions per text (AA, Hispanic, Asian, White); NaN rows when no token is known."""
        token_rows = [[self.vocabulary[t] for t in tokenize(text) if t in self.vocabulary] for text in texts]
        out = np.full((len(token_rows), len(TOPICS)), np.nan)
        for start in range(0, len(token_rows), batch_size):
            batch = token_rows[start : start + batch_size]
            out[start : start + len(batch)] = self._infer(batch)
        return out

    def _infer(self, docs: list[list[int]]) -> np.ndarray:
        """CVB0 for a batch of documents of word rows; sequential over token positions, parallel over documents."""
        n_docs, n_topics = len(docs), len(TOPICS)
        max_len = max((len(doc) for doc in docs), default=0)
        result = np.full((n_docs, n_topics), np.nan)
        if max_len == 0:
            return result
        mask = np.zeros((n_docs, max_len), dtype=bool)
        rows = np.zeros((n_docs, max_len), dtype=np.int64)
        for d, doc in enumerate(docs):
            mask[d, : len(doc)] = True
            rows[d, : len(doc)] = doc
        likelihood = self.word_probs[rows] * mask[..., None]  # (D, T, K)
        # Initial per-token posteriors: the word's topic likelihoods, normalised (uniform prior).
        q = _normalise(likelihood)  # (D, T, K)
        totals = q.sum(axis=1)  # (D, K) expected topic counts
        for _ in range(1, self.passes):
            for t in range(max_len):
                totals -= q[:, t]
                updated = _normalise(likelihood[:, t] * (totals + self.alpha)) * mask[:, t, None]
                q[:, t] = updated
                totals += updated
        lengths = mask.sum(axis=1)
        known = lengths > 0
        result[known] = totals[known] / lengths[known, None]
        return result


def _normalise(values: np.ndarray) -> np.ndarray:
    total = values.sum(axis=-1, keepdims=True)
    return np.divide(values, total, out=np.zeros_like(values), where=total > 0)


def dialect_labels(proportions: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """aa_aligned / white_aligned when that topic's proportion >= threshold; other; unassigned (no known token)."""
    if not 0.5 < threshold <= 1.0:
        raise ValueError(f"dialect threshold must be in (0.5, 1] so a tweet gets at most one label; got {threshold}")
    labels = []
    for row in proportions:
        if np.isnan(row).any():
            labels.append(UNASSIGNED)
        elif row[AA] >= threshold:
            labels.append(ALIGNED_LABELS[AA])
        elif row[WHITE] >= threshold:
            labels.append(ALIGNED_LABELS[WHITE])
        else:
            labels.append(OTHER)
    return labels
