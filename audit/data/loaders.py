"""Readers that turn one local file into an in-memory `datasets.Dataset`, plus the file's sha256.

Each file is read once as bytes: the sha256 recorded for provenance is of exactly the bytes that were parsed.
Text formats must be UTF-8 (a leading byte-order mark is accepted). Datasets are built in memory
(`Dataset.from_pandas` / `from_list` / `Dataset(pyarrow.Table)`), so nothing is written to the `datasets`
cache and the result depends only on the file's bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pyarrow as pa

from audit import digests
from audit.data.errors import (
    DatasetEncodingError,
    DatasetFormatError,
    EmptyDatasetError,
    MissingColumnsError,
)

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "text")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".txt": "text",
    ".text": "text",
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Full hex sha256 of a file's bytes."""
    return digests.file_sha256(Path(path))[0]


def infer_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise DatasetFormatError(
            f"{path}: cannot tell the format from the suffix {suffix or '(none)'!r}; "
            f"expected one of {', '.join(sorted(_SUFFIX_FORMATS))} or pass format= one of {', '.join(FORMATS)}"
        )
    return _SUFFIX_FORMATS[suffix]


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if not data.strip():
        raise EmptyDatasetError(f"{path}: the file is empty; expected at least one row of data")
    return data


def decode_utf8(data: bytes, path: Path) -> str:
    try:
        # utf-8-sig: a byte-order mark written by spreadsheet tools is not part of the first column's name.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetEncodingError(
            f"{path}: not valid UTF-8 (byte {error.start}: {data[error.start:error.start + 1]!r}); "
            "re-save the file as UTF-8"
        ) from None


def parse_csv(text: str, path: Path, *, delimiter: str = ",") -> datasets.Dataset:
    try:
        # Only empty cells are missing: strings such as "NA" or "null" in a tweet stay text.
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter, keep_default_na=False, na_values=[""], low_memory=False
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as error:
        raise DatasetFormatError(f"{path}: not a valid CSV file ({_first_line(error)})") from None
    return _from_frame(frame, path)


def parse_jsonl(text: str, path: Path) -> datasets.Dataset:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetFormatError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise DatasetFormatError(f"{path}: line {number} is not a JSON object; expected one object per line")
        rows.append(row)
    return _from_rows(rows, path)


def parse_json_records(text: str, path: Path) -> datasets.Dataset:
    """A JSON array of objects, one row each."""
    records = load_json(text, path)
    if not isinstance(records, list) or not all(isinstance(row, dict) for row in records):
        raise DatasetFormatError(f"{path}: expected a JSON array of objects (one per row)")
    return _from_rows(records, path)


def load_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetFormatError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None


def parse_text_lines(text: str, path: Path, *, column: str = "text") -> datasets.Dataset:
    """One row per non-blank line (blank lines separate nothing and are dropped)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return _from_rows([{column: line} for line in lines], path)


def parse_parquet(data: bytes, path: Path) -> datasets.Dataset:
    from pyarrow import parquet

    try:
        table = parquet.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as error:
        raise DatasetFormatError(f"{path}: not a valid parquet file ({_first_line(error)})") from None
    if table.num_rows == 0:
        raise EmptyDatasetError(f"{path}: the parquet file has no rows; expected at least one")
    return datasets.Dataset(table)


def read_file(path: Path, fmt: str | None = None, *, text_column: str = "text") -> tuple[datasets.Dataset, str]:
    """Parse one file into a Dataset; returns (dataset, sha256 of the file's bytes)."""
    fmt = fmt or infer_format(path)
    if fmt not in FORMATS:
        raise DatasetFormatError(f"{path}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    data = read_bytes(path)
    digest = sha256_bytes(data)
    if fmt == "parquet":
        return parse_parquet(data, path), digest
    text = decode_utf8(data, path)
    parsers: dict[str, Callable[[], datasets.Dataset]] = {
        "csv": lambda: parse_csv(text, path),
        "tsv": lambda: parse_csv(text, path, delimiter="\t"),
        "jsonl": lambda: parse_jsonl(text, path),
        "json": lambda: parse_json_records(text, path),
        "text": lambda: parse_text_lines(text, path, column=text_column),
    }
    return parsers[fmt](), digest


def check_columns(dataset: datasets.Dataset, required: Iterable[str], *, where: str) -> None:
    missing = [column for column in required if column not in dataset.column_names]
    if missing:
        raise MissingColumnsError(
            f"{where}: missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(repr(c) for c in dataset.column_names) or 'no columns'}"
        )


def _from_frame(frame: pd.DataFrame, path: Path) -> datasets.Dataset:
    if len(frame) == 0:
        raise EmptyDatasetError(f"{path}: the file has a header but no rows; expected at least one row")
    try:
        return datasets.Dataset.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as error:  # columns mixing types
        raise DatasetFormatError(f"{path}: columns could not be typed ({_first_line(error)})") from None


def _from_rows(rows: list[dict[str, Any]], path: Path) -> datasets.Dataset:
    if not rows:
        raise EmptyDatasetError(f"{path}: no rows found; expected at least one")
    try:
        return datasets.Dataset.from_list(rows)
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise DatasetFormatError(f"{path}: rows could not be typed ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
