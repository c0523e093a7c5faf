"""Helpers for the fairness tests: a deterministic scripted classifier and a task builder."""

from __future__ import annotations

import hashlib

import numpy as np

from audit.data.task import LabelledExample, TaskData


class ScriptedClassifier:
    """A stand-in for ModelUnderAudit: probabilities are looked up per text (or derived from a hash of it).

    It records the batch sizes it was asked for so tests can check that batching really happened.
    """

    capabilities = frozenset({"classifier"})

    def __init__(self, table: dict[str, list[float]] | None = None, n_classes: int = 2) -> None:
        self.table = table or {}
        self.n_classes = n_classes
        self.calls: list[int] = []

    def _one(self, text: str) -> list[float]:
        if text in self.table:
            return list(self.table[text])
        digest = hashlib.sha256(text.encode()).digest()
        positive = digest[0] / 255.0
        if self.n_classes == 2:
            return [1.0 - positive, positive]
        rest = (1.0 - positive) / (self.n_classes - 1)
        return [rest] * (self.n_classes - 1) + [positive]

    def predict_proba(self, texts, *, batch_size: int = 64):
        out = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            self.calls.append(len(batch))
            out.extend(self._one(text) for text in batch)
        return np.array(out, dtype=float).reshape(len(texts), self.n_classes)


def make_task(rows, *, label_names=("negative", "positive"), positive_label=1, group_columns=("gender",)):
    """rows: (id, text, label, split, groups) tuples."""
    examples = [LabelledExample(id=i, text=t, label=y, split=s, groups=dict(g)) for i, t, y, s, g in rows]
    return TaskData(name="toy", label_names=list(label_names), examples=examples, positive_label=positive_label,
                    group_columns=list(group_columns))
