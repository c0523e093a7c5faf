"""Where the groups of a fairness audit come from: dataset columns, identity-term mentions, and dialect.

* Columns: the task's group columns (e.g. ``gender`` in the calibration scenario), one label per example.
* Identity terms: word-boundary, case-insensitive mentions of the identity terms of Dixon et al. ("Measuring and
  Mitigating Unintended Bias in Text Classification", AIES 2018). The term list is shared with the bias probes
  (``probes.bias.terms.MADLIBS_IDENTITY_TERMS``) so both families audit the same identities. Mentions overlap
  (a text may name several identities): subgroup AUCs use the overlapping masks; group metrics, which need a
  partition, use one feature whose value is the single term mentioned, ``multiple`` or ``none``.
* Dialect: TwitterAAE posterior proportions (Blodgett et al., EMNLP 2016) thresholded into ``aa_aligned`` /
  ``white_aligned`` / ``other`` (see ``probes.fairness.dialect``).

Intersections of several features are formed here too; combinations that no example falls into are reported as
empty (explicitly "not defined"), never dropped silently.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from probes.base import ProbeInputError
from probes.bias.terms import MADLIBS_IDENTITY_TERMS
from probes.fairness.dialect import DEFAULT_THRESHOLD, TwitterAAEModel, dialect_labels
from probes.fairness.rates import Grouping

if TYPE_CHECKING:
    from audit.data.task import LabelledExample
    from probes.base import ProbeContext

IDENTITY_TERMS: tuple[str, ...] = MADLIBS_IDENTITY_TERMS
NO_MENTION, SEVERAL_MENTIONS = "none", "multiple"
MISSING = "(missing)"
INTERSECTION_SEPARATOR = " & "
INTERSECTION_NAME_SEPARATOR = " × "


def column_labels(examples: Sequence[LabelledExample], column: str, *, available: Sequence[str] = ()) -> list[str]:
    """The value of group column ``column`` for each example; an error naming the known columns if none has it."""
    values = [example.groups.get(column) for example in examples]
    if examples and all(value in (None, "") for value in values):
        known = sorted(set(available) | {key for example in examples for key in example.groups})
        raise ProbeInputError(
            f"sensitive feature {column!r} is not a group column of the task; expected one of {known or 'none'}"
        )
    return [MISSING if value in (None, "") else str(value) for value in values]


def _term_pattern(term: str) -> re.Pattern[str]:
    # Word boundaries on both sides; multi-word terms match across any whitespace or a hyphen.
    words = [re.escape(word) for word in term.split()]
    return re.compile(r"(?<!\w)" + r"[\s\-]+".join(words) + r"(?!\w)", re.IGNORECASE)


def identity_mentions(texts: Sequence[str], terms: Sequence[str] = IDENTITY_TERMS) -> dict[str, np.ndarray]:
    """For each term, a boolean mask of the texts that mention it (word-boundary match, case-insensitive).

    A multi-word term ("african american") hides the shorter terms it contains ("american") in the same span, so
    a text about African Americans is not also counted as mentioning Americans.
    """
    ordered = sorted(dict.fromkeys(terms), key=lambda term: (-len(term), term))
    masks = {term: np.zeros(len(texts), dtype=bool) for term in ordered}
    patterns = [(term, _term_pattern(term)) for term in ordered]
    for row, text in enumerate(texts):
        remaining = text
        for term, pattern in patterns:
            if pattern.search(remaining):
                masks[term][row] = True
                remaining = pattern.sub(" ", remaining)
    return {term: masks[term] for term in sorted(masks)}


def identity_labels(texts: Sequence[str], terms: Sequence[str] = IDENTITY_TERMS) -> list[str]:
    """One partition label per text: the single identity term it mentions, ``multiple`` or ``none``."""
    masks = identity_mentions(texts, terms)
    matrix = np.stack([masks[term] for term in masks], axis=1) if masks else np.zeros((len(texts), 0), bool)
    names = list(masks)
    labels = []
    for row in matrix:
        hits = np.flatnonzero(row)
        labels.append(NO_MENTION if hits.size == 0 else names[hits[0]] if hits.size == 1 else SEVERAL_MENTIONS)
    return labels


def load_dialect_model(ctx: ProbeContext | None = None, *, data_dir: str | Path | None = None) -> TwitterAAEModel:
    """The TwitterAAE model: from ``data_dir/twitteraae`` (or a folder holding the two files) when given, else
    through the data catalog name ``twitteraae`` (which records its provenance in the run)."""
    if data_dir is not None:
        folder = Path(data_dir)
        return TwitterAAEModel.from_directory(folder / "twitteraae" if (folder / "twitteraae").is_dir() else folder)
    if ctx is None:
        raise ProbeInputError("the dialect model needs a data_dir or a probe context with a data directory")
    loaded = ctx.load_dataset("twitteraae")
    return TwitterAAEModel.from_dataset(loaded.dataset)


def dialect_labels_for(texts: Sequence[str], model: TwitterAAEModel, *, threshold: float = DEFAULT_THRESHOLD):
    """aa_aligned / white_aligned / other / unassigned per text (see probes.fairness.dialect)."""
    return dialect_labels(model.proportions(texts), threshold=threshold)


@dataclass
class GroupingSet:
    """Partitions to audit: one per feature and, with two or more features, their full intersection.

    ``empty`` lists intersection cells (combinations of observed feature values) that hold no example.
    """

    groupings: list[Grouping]
    empty: dict[str, list[str]]


def build_groupings(features: dict[str, Sequence[str]], *, intersections: bool = True) -> GroupingSet:
    """Groupings from per-example labels of each feature (feature name -> labels aligned with the rows)."""
    if not features:
        raise ProbeInputError("no sensitive feature to group by; set sensitive_features or enable dialect/identity")
    lengths = {len(labels) for labels in features.values()}
    if len(lengths) != 1:
        raise ProbeInputError(f"sensitive features must align with the rows; got lengths {sorted(lengths)}")
    names = sorted(features)
    groupings = [Grouping.from_labels(name, features[name]) for name in names]
    empty: dict[str, list[str]] = {}
    if intersections and len(names) > 1:
        name = INTERSECTION_NAME_SEPARATOR.join(names)
        labels = [
            INTERSECTION_SEPARATOR.join(f"{feature}={value}" for feature, value in zip(names, combo))
            for combo in zip(*(features[feature] for feature in names))
        ]
        groupings.append(Grouping.from_labels(name, labels))
        observed = set(labels)
        cells = itertools.product(*(sorted(set(features[feature])) for feature in names))
        all_cells = [INTERSECTION_SEPARATOR.join(f"{f}={v}" for f, v in zip(names, combo)) for combo in cells]
        empty[name] = [cell for cell in all_cells if cell not in observed]
    return GroupingSet(groupings, empty)
