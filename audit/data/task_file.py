"""A task file given on the command line (``rai-audit run --model DIR --task FILE``) read into ``TaskData``.

The file is CSV (header row) or JSONL (one object per line) with these columns:

* ``text`` (required): the input text, non-empty;
* ``label`` (required): the true class, as one of the classifier's label names (its ``id2label``) or as a label
  index ``0 … n-1``; a value that is a name wins over the same value read as an index;
* group columns (at least one): every other column, e.g. ``group`` or ``gender`` and ``dialect``; an empty cell
  is a missing group value;
* ``split`` (optional): train / validation / test (also valid, val, dev); without it every row is held-out
  ``test`` data, which is what the fairness probes evaluate; mitigation fits its thresholds on ``validation``
  rows, and membership inference compares ``train`` rows (only examples the model was trained on) with held-out
  ones;
* ``id`` (optional): a unique example id; default ``row-N`` (N counts data rows from 1).

The positive label (the decision whose rate fairness metrics compare) is the one the model folder's own task
records (``task.json``, written by ``rai-audit finetune``), else label 1 of a two-class model, else label 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from audit.data.loaders import check_columns, read_file
from audit.data.task import SPLIT_ALIASES, LabelledExample, TaskData, TaskDataError, label_key
from audit.errors import InputError
from audit.results import DatasetRecord

TEXT_COLUMN, LABEL_COLUMN, SPLIT_COLUMN, ID_COLUMN = "text", "label", "split", "id"
TASK_FILE_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
TASK_FILE_SOURCE = "path"


class TaskFileError(TaskDataError):
    """A task file that cannot be used; the message names the file, the row or column, and what is expected."""


def read_task_file(path: str | Path, *, label_names: list[str], positive_label: int | None = None) -> TaskData:
    """The examples of ``path`` with label indices of a classifier whose classes are ``label_names``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TaskFileError(f"task file {path} does not exist; expected a CSV or JSONL file with columns "
                            "text, label and at least one group column")
    file_format = TASK_FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise TaskFileError(f"task file {path}: unknown suffix {path.suffix or '(none)'!r}; expected .csv or .jsonl")
    try:
        dataset, digest = read_file(path, file_format)
        check_columns(dataset, (TEXT_COLUMN, LABEL_COLUMN), where=f"task file {path}")
    except TaskFileError:
        raise
    except InputError as error:  # empty, not UTF-8, malformed, missing columns: said in one line already
        raise TaskFileError(f"{error}" if str(error).startswith("task file") else f"task file {error}") from None
    reserved = {TEXT_COLUMN, LABEL_COLUMN, SPLIT_COLUMN, ID_COLUMN}
    group_columns = [column for column in dataset.column_names if column not in reserved]
    if not group_columns:
        raise TaskFileError(f"task file {path} has no group column (columns: {', '.join(dataset.column_names)}); "
                            "expected at least one column besides text, label, split and id, e.g. group")
    rows = dataset.to_dict()
    examples = [_example(path, rows, index, label_names, group_columns) for index in range(dataset.num_rows)]
    ids = [example.id for example in examples]
    if len(set(ids)) < len(ids):
        duplicate = next(example_id for example_id in ids if ids.count(example_id) > 1)
        raise TaskFileError(f"task file {path}: id {duplicate!r} appears more than once; expected unique ids")
    if positive_label is None or not 0 <= positive_label < len(label_names):
        positive_label = 1 if len(label_names) == 2 else 0
    return TaskData(
        name=path.stem,
        label_names=list(label_names),
        examples=examples,
        positive_label=positive_label,
        group_columns=group_columns,
        provenance=[DatasetRecord(name=path.name, source=TASK_FILE_SOURCE, sha256=digest,
                                  rows=dataset.num_rows).model_dump(mode="json")],
    )


def _example(path: Path, rows: dict[str, list], index: int, label_names: list[str],
             group_columns: list[str]) -> LabelledExample:
    where = f"task file {path}, row {index + 1}"
    text = _cell(rows[TEXT_COLUMN][index])
    if not text.strip():
        raise TaskFileError(f"{where}: the text is empty; expected a non-empty text in every row")
    raw_label = _cell(rows[LABEL_COLUMN][index])
    if not raw_label:
        raise TaskFileError(f"{where}: no label; expected one of {_expected_labels(label_names)}")
    label = _label_index(raw_label, label_names)
    if label is None:
        raise TaskFileError(f"{where}: unknown label {raw_label!r}; expected one of {_expected_labels(label_names)}")
    split = "test"
    if SPLIT_COLUMN in rows:
        raw_split = _cell(rows[SPLIT_COLUMN][index]).strip().lower()
        if raw_split not in SPLIT_ALIASES:
            raise TaskFileError(f"{where}: split {raw_split!r}; expected train, validation or test")
        split = SPLIT_ALIASES[raw_split]
    example_id = _cell(rows[ID_COLUMN][index]) if ID_COLUMN in rows else f"row-{index + 1}"
    if not example_id:
        raise TaskFileError(f"{where}: the id is empty; expected a unique id in every row (or no id column)")
    groups = {column: _cell(rows[column][index]) for column in group_columns}
    return LabelledExample(id=example_id, text=text, label=label, split=split, groups=groups)


def _cell(value: Any) -> str:
    """A cell as text; an empty cell (None, or NaN where pandas read a numeric column) is ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return label_key(value)


def _label_index(value: str, label_names: list[str]) -> int | None:
    if value in label_names:
        return label_names.index(value)
    if value.isdigit() and int(value) < len(label_names):
        return int(value)
    return None


def _expected_labels(label_names: list[str]) -> str:
    names = ", ".join(repr(name) for name in label_names)
    return f"the model's labels {names} (or their index 0-{len(label_names) - 1})"
