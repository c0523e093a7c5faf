"""Helpers for the privacy tests: tiny tasks and fine-tuning of tiny classifiers (vocab 99, hidden 32, 4 heads,
2 layers), all offline.

The membership known-answer tests use random word sequences with a learnable rule and a share of flipped labels:
the rule generalises (so validation-based model selection means something), the flipped labels can only be
memorised, and the member/non-member gap is driven by how hard a model was trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit.data.task import LabelledExample, TaskData
from audit.train.config import finetune_config_from_dict
from audit.train.finetune import finetune_classifier
from probes.privacy.shadow import pinned_threads

WORDS = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(60)]
KEYWORDS = frozenset(WORDS[:5])

# Fine-tuning recipes: one that memorises (many epochs, no dropout, large learning rate, no early stopping: the
# final weights are kept, by the target and by its reference models alike) and one that barely trains.
OVERFIT_RECIPE = {"epochs": 40, "batch_size": 8, "learning_rate": 3e-3, "weight_decay": 0.0, "warmup_fraction": 0.0,
                  "patience": 100, "keep": "last", "classifier_dropout": 0.0, "hidden_dropout_prob": 0.0,
                  "max_length": 16, "precision": "fp32"}
GENTLE_RECIPE = {**OVERFIT_RECIPE, "epochs": 1, "learning_rate": 1e-4, "keep": "best"}


def random_sentence(rng: np.random.Generator, length: int = 8) -> str:
    return " ".join(rng.choice(WORDS, size=length))


def noisy_rule_task(n_train: int, n_heldout: int, *, noise: float = 0.25, seed: int = 0) -> TaskData:
    """Random 8-word sentences labelled 1 when they hold one of the five KEYWORDS (about half do), with a
    fraction ``noise`` of labels flipped. The rule generalises, so a model predicts unseen examples by it and
    validation-based model selection means something; the flipped labels can only be memorised, which is what
    membership inference detects. Held-out examples are split between validation and test."""
    rng = np.random.default_rng(seed)
    splits = ["train"] * n_train + ["validation"] * (n_heldout // 2) + ["test"] * (n_heldout - n_heldout // 2)
    examples = []
    for i, split in enumerate(splits):
        words = list(rng.choice(WORDS, size=8))
        label = int(any(word in KEYWORDS for word in words)) ^ int(rng.random() < noise)
        examples.append(LabelledExample(id=f"ex{i}", text=" ".join(words), label=label, split=split))
    return TaskData(name="noisy-rule", label_names=["no", "yes"], examples=examples)


def finetune_to_dir(pretrained_dir: Path, task: TaskData, recipe: dict, out_dir: Path, *, seed: int = 0) -> Path:
    """Fine-tune on the task's train split (model selection, if the recipe keeps the best evaluation, on the
    validation split) and save a classifier directory with its split membership."""
    with pinned_threads(1):
        outcome = finetune_classifier(pretrained_dir, task.split("train"), task.split("validation"),
                                      finetune_config_from_dict(recipe), seed=seed, num_labels=2)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome.model.save_pretrained(out_dir)
    outcome.tokenizer.save_pretrained(out_dir)
    task.save(out_dir)
    return out_dir
