"""Canaries of the ``dp_audit`` probe: crafted training examples whose membership is a fair coin flip.

Steinke, Nasr & Jagielski ("Privacy Auditing with One (1) Training Run", NeurIPS 2023) audit a DP training run
with m canaries, each included in the training set independently with probability 1/2; after training, an
attacker guesses which were included, and the number of correct guesses bounds ε from below. Our canaries are texts
of random words drawn from the training texts' vocabulary with a random label: nothing but memorisation of the
example itself makes the model predict that label, so a canary's score says whether it was trained on.

Included canaries get split "train" (the fine-tuning trains on them); excluded ones get split ``EXCLUDED_SPLIT``,
which no training or evaluation step reads. Both have ids starting with ``ID_PREFIX``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from audit.data.task import LabelledExample, TaskData
from audit.train.config import AuditCanarySection
from audit.train.errors import FinetuneDataError

ID_PREFIX = "canary-"
EXCLUDED_SPLIT = "canary_out"


def is_canary(example: LabelledExample) -> bool:
    return example.id.startswith(ID_PREFIX) and example.split in ("train", EXCLUDED_SPLIT)


def with_audit_canaries(task: TaskData, section: AuditCanarySection) -> TaskData:
    """``task`` with ``section.count`` canaries appended, each in "train" with probability 1/2 (seeded)."""
    rng = np.random.default_rng([section.seed, 17])
    vocabulary = sorted({word for example in task.split("train") for word in example.text.split()})
    if not vocabulary:
        raise FinetuneDataError("data.audit_canaries draws its canaries' words from the training texts, and the "
                                "train split has no words; expected a dataset with non-empty training texts")
    n_labels = len(task.label_names)
    canaries = []
    for index in range(section.count):
        words = rng.choice(len(vocabulary), size=section.length)
        label = int(rng.integers(n_labels))
        included = bool(rng.integers(2))
        canaries.append(LabelledExample(
            id=f"{ID_PREFIX}{index:05d}", text=" ".join(vocabulary[i] for i in words), label=label,
            split="train" if included else EXCLUDED_SPLIT,
        ))
    return replace(task, examples=[*task.examples, *canaries])
