"""The fine-tuning task as the probes see it: every example with its label, groups and split membership.

Fine-tuning writes ``examples.jsonl`` (one example per line: id, text, label, split, groups) and
``task.json`` (task name, label names, positive label, group columns, dataset provenance, planted truth when the
data came from the calibration scenario) into the model directory. Membership-inference probes need to know who was
trained on; fairness and counterfactual probes need labels and groups of the held-out examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.errors import InputError

EXAMPLES_FILE = "examples.jsonl"
TASK_FILE = "task.json"
SPLITS = ("train", "validation", "test")
# Names a split column may use for the three splits (case-insensitive).
SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation",
                 "val": "validation", "test": "test"}


def label_key(value: Any) -> str:
    """A label or group value as text; a whole float (a CSV column pandas read as float) loses its ".0"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


class TaskDataError(InputError):
    """The task files are missing or malformed; the message says what to re-run."""


@dataclass(frozen=True)
class LabelledExample:
    id: str
    text: str
    label: int
    split: str
    groups: dict[str, str] = field(default_factory=dict)


@dataclass
class TaskData:
    """Examples of a classification task with their split membership.

    label_names[i] names label i; ``positive_label`` is the label treated as the "positive"/harmful decision by
    fairness metrics: selection rate is the rate of predicting it (e.g. "abusive" for a toxicity task,
    "accepted" in the calibration scenario); ``planted`` holds the calibration scenario's planted truth, if any.
    """

    name: str
    label_names: list[str]
    examples: list[LabelledExample]
    positive_label: int = 1
    group_columns: list[str] = field(default_factory=list)
    planted: dict[str, Any] | None = None
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def split(self, name: str) -> list[LabelledExample]:
        return [example for example in self.examples if example.split == name]

    def texts(self, split: str) -> list[str]:
        return [example.text for example in self.split(split)]

    def labels(self, split: str) -> list[int]:
        return [example.label for example in self.split(split)]

    def groups(self, split: str, column: str) -> list[str]:
        return [example.groups.get(column, "") for example in self.split(split)]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        with open(directory / EXAMPLES_FILE, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(example.__dict__, ensure_ascii=False, sort_keys=True) + "\n"
                              for example in self.examples)
        meta = {
            "name": self.name,
            "label_names": self.label_names,
            "positive_label": self.positive_label,
            "group_columns": self.group_columns,
            "planted": self.planted,
            "provenance": self.provenance,
        }
        (directory / TASK_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> TaskData:
        directory = Path(directory)
        task_path, examples_path = directory / TASK_FILE, directory / EXAMPLES_FILE
        if not task_path.is_file() or not examples_path.is_file():
            raise TaskDataError(
                f"{directory}: no {TASK_FILE}/{EXAMPLES_FILE} (split membership); "
                "re-run `rai-audit finetune` to write them"
            )
        try:
            meta = json.loads(task_path.read_text(encoding="utf-8"))
            examples = [LabelledExample(**json.loads(line)) for line in _lines(examples_path)]
            return cls(examples=examples, **meta)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, RecursionError) as error:
            # Also a JSON value that is not an object, or keys the dataclasses do not take (TypeError).
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise TaskDataError(
                f"{directory}: {TASK_FILE}/{EXAMPLES_FILE} are damaged ({first_line}); "
                "re-run `rai-audit finetune` to write them"
            ) from None


def _lines(path: Path) -> Iterable[str]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line
