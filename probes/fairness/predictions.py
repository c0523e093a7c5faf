"""The classifier's decisions on held-out task examples, checked before any fairness metric sees them.

"Positive" is the task's ``positive_label`` (e.g. "abusive" for a moderation model, "accepted" for a screening
model): selection rate is the share predicted positive, TPR/FPR are taken with respect to that label. Examples are
put in a canonical order (by id) so that results never depend on the order in which the task lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from audit.data.task import SPLITS
from probes.base import ProbeInputError, ProbeSkipped

if TYPE_CHECKING:
    from audit.data.task import LabelledExample, TaskData
    from probes.base import ProbeContext


@dataclass
class Decisions:
    """Aligned per-example arrays for one set of held-out examples (canonical order: by example id)."""

    examples: list[LabelledExample]
    probabilities: np.ndarray  # (N, C)
    positive_label: int

    @property
    def ids(self) -> list[str]:
        return [example.id for example in self.examples]

    @property
    def texts(self) -> list[str]:
        return [example.text for example in self.examples]

    @property
    def labels(self) -> np.ndarray:
        return np.array([example.label for example in self.examples], dtype=np.int64)

    @property
    def predicted_class(self) -> np.ndarray:
        return np.argmax(self.probabilities, axis=1)

    @property
    def y_true(self) -> np.ndarray:
        return self.labels == self.positive_label

    @property
    def y_pred(self) -> np.ndarray:
        return self.predicted_class == self.positive_label

    @property
    def score(self) -> np.ndarray:
        """Probability of the positive label."""
        return self.probabilities[:, self.positive_label]


def split_examples(task: TaskData, split: str) -> list[LabelledExample]:
    """Examples of one split, or several joined with '+' ("validation+test"), sorted by id; errors name the splits."""
    names = [part.strip() for part in split.split("+") if part.strip()]
    known = sorted({example.split for example in task.examples})
    unknown = [name for name in names if name not in known]
    if names and unknown and set(unknown) <= set(SPLITS):
        # A task without this standard split (e.g. a --task file of test rows only): nothing to run on, not an
        # error in the settings.
        raise ProbeSkipped(f"the task has no {' or '.join(unknown)} examples (its splits: {', '.join(known)}); "
                           "give the task file a split column to run this probe")
    if not names or unknown:
        raise ProbeInputError(f"split {split!r}: unknown split(s) {unknown or [split]}; the task has {known}")
    examples = [example for example in task.examples if example.split in names]
    if not examples:
        raise ProbeInputError(f"split {split!r} holds no examples")
    return sorted(examples, key=lambda example: example.id)


def check_labels(task: TaskData, n_classes: int, examples: Sequence[LabelledExample]) -> None:
    """Labels and the positive label must be classes the model outputs."""
    if not 0 <= task.positive_label < n_classes:
        raise ProbeInputError(
            f"the task's positive_label {task.positive_label} is not one of the model's {n_classes} classes"
        )
    labels = {example.label for example in examples}
    bad = sorted(label for label in labels if not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes)
    if bad:
        raise ProbeInputError(
            f"label value(s) {bad[:5]} are not classes the model knows (it outputs {n_classes} classes, 0..{n_classes - 1})"
        )


def predict(ctx: ProbeContext, examples: Sequence[LabelledExample], *, batch_size: int = 64) -> Decisions:
    """Class probabilities of the examples from ``ctx.subject``; NaN or mis-shaped outputs are input errors."""
    if ctx.task is None:
        raise ProbeSkipped("no fine-tuning task with labels and groups was given")
    probabilities = np.asarray(
        ctx.subject.predict_proba([example.text for example in examples], batch_size=batch_size), dtype=np.float64
    )
    if probabilities.ndim != 2 or probabilities.shape[0] != len(examples):
        raise ProbeInputError(
            f"the model returned probabilities of shape {probabilities.shape}; expected ({len(examples)}, classes)"
        )
    bad_rows = int(np.isnan(probabilities).any(axis=1).sum())
    if bad_rows:
        raise ProbeInputError(f"the model returned NaN probabilities for {bad_rows} example(s); expected finite values")
    check_labels(ctx.task, probabilities.shape[1], examples)
    return Decisions(list(examples), probabilities, ctx.task.positive_label)
