"""Each supported file format loads into an in-memory Dataset with the sha256 of exactly the bytes read."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from audit.data.catalog import load_dataset


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_keeps_text_that_looks_missing(tmp_path, isolated_catalog):
    file = tmp_path / "rows.csv"
    file.write_text('text,label\nNA,1\n"null, maybe",0\n,1\n', encoding="utf-8")
    loaded = load_dataset(file)
    assert loaded.dataset["text"] == ["NA", "null, maybe", None]  # only an empty cell is missing
    assert loaded.dataset["label"] == [1, 0, 1]
    assert loaded.record.sha256 == _sha(file) and loaded.record.rows == 3


def test_tsv_jsonl_json_parquet_text(tmp_path, isolated_catalog):
    rows = [{"text": "first", "label": 0}, {"text": "second", "label": 1}]
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("text\tlabel\nfirst\t0\nsecond\t1\n", encoding="utf-8")
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n\n" for row in rows), encoding="utf-8")
    array = tmp_path / "rows.json"
    array.write_text(json.dumps(rows), encoding="utf-8")
    parquet = tmp_path / "rows.parquet"
    pd.DataFrame(rows).to_parquet(parquet, index=False)
    for file in (tsv, jsonl, array, parquet):
        loaded = load_dataset(file)
        assert loaded.dataset.to_list() == rows, file.name
        assert loaded.record.sha256 == _sha(file)
    text = tmp_path / "corpus.txt"
    text.write_text("line one\n\n   \nline two\n", encoding="utf-8")
    loaded = load_dataset(text, text_column="sentence")
    assert loaded.dataset["sentence"] == ["line one", "line two"]


def test_format_override_and_byte_order_mark(tmp_path, isolated_catalog):
    file = tmp_path / "rows.data"
    file.write_bytes("\ufefftext,label\nhello,1\n".encode("utf-8"))
    loaded = load_dataset(file, format="csv")
    assert loaded.dataset.column_names == ["text", "label"]


def test_loading_twice_is_identical(tmp_path, isolated_catalog):
    file = tmp_path / "rows.csv"
    file.write_text("text,label\na,1\nb,0\n", encoding="utf-8")
    first, second = load_dataset(file), load_dataset(file)
    assert first.record == second.record
    assert first.dataset.to_list() == second.dataset.to_list()


@pytest.mark.parametrize("name", ["weat", "twitteraae"])
def test_special_readers_on_small_files(tmp_path, isolated_catalog, name):
    if name == "weat":
        (tmp_path / "weat").mkdir()
        side = lambda label: {"name": label, "words": [label.lower(), label.lower() + "s"]}
        tests = [{"first_target": side("A"), "second_target": side("B"), "first_attribute": side("C"),
                  "second_attribute": side("D"), "original_finding": {"d": "1.5", "p": "1e-7", "N": "20"}}]
        (tmp_path / "weat" / "weat.json").write_text(json.dumps(tests), encoding="utf-8")
        row = load_dataset("weat", data_dir=tmp_path).dataset[0]
        assert row["test"] == 1 and row["first_target"] == "A" and row["second_attribute_words"] == ["d", "ds"]
        assert (row["original_d"], row["original_p"]) == (1.5, 1e-7)
    else:
        folder = tmp_path / "twitteraae"
        folder.mkdir()
        (folder / "model_count_table.txt").write_text("1.5\t2\t0\t10\n0\t0\t1\t3\n", encoding="utf-8")
        (folder / "model_vocab.txt").write_text("12\tthe\n4\tsmh\n", encoding="utf-8")
        loaded = load_dataset("twitteraae", data_dir=tmp_path)
        assert loaded.dataset.to_list()[0] == {"word": "the", "count": 12, "african_american": 1.5,
                                               "hispanic": 2.0, "asian": 0.0, "white": 10.0}
        assert set(loaded.files) == {"counts", "vocab"}
        manifest = "".join(f"{_sha(folder / f)}  {f}\n" for f in ("model_count_table.txt", "model_vocab.txt"))
        assert loaded.record.sha256 == hashlib.sha256(manifest.encode()).hexdigest()
