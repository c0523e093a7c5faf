"""Every named dataset loads from RAI_AUDIT_DATA_DIR with the documented rows and sha256."""

from __future__ import annotations

import os

import pytest

from audit.data.catalog import CATALOG, file_sha256, load_dataset

pytestmark = pytest.mark.slow

# (rows, sha256 prefix) as the data directory's README.md lists them; the toxicity test-set hashes are not listed there.
EXPECTED = {
    "wiki_passages": (15_440, "ce0187b613bfb76a"),
    "crows_pairs": (1_508, "dfb36986ce0502ab"),
    "stereoset": (4_229, "9240d77481e211b4"),
    "davidson": (24_783, "fcb8bc7c68120ae4"),
    "madlibs": (76_564, "aac542254cf15841"),
    "madlibs_toxicity_fuzzed": (1_492, None),
    "madlibs_toxicity_nonfuzzed": (1_492, None),
    "weat": (10, "f94fb1de58593331"),
}


@pytest.fixture(scope="module")
def data_dir():
    directory = os.environ.get("RAI_AUDIT_DATA_DIR")
    if not directory:
        pytest.fail("RAI_AUDIT_DATA_DIR must point at the shared data folder for the real-data tests")
    return directory


def test_every_catalog_name_is_covered():
    assert set(EXPECTED) | {"twitteraae"} == set(CATALOG)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_named_dataset_rows_and_sha256(data_dir, name):
    rows, prefix = EXPECTED[name]
    loaded = load_dataset(name, data_dir=data_dir)
    assert loaded.record.rows == loaded.dataset.num_rows == rows
    assert len(loaded.record.sha256) == 64
    if prefix is not None:
        assert loaded.record.sha256.startswith(prefix)
    assert loaded.record.sha256 == file_sha256(loaded.files["data"])


def test_real_column_contents(data_dir):
    crows = load_dataset("crows_pairs", data_dir=data_dir).dataset
    assert set(crows["stereo_antistereo"]) == {"stereo", "antistereo"}
    assert len(set(crows["bias_type"])) == 9
    stereoset = load_dataset("stereoset", data_dir=data_dir).dataset
    kinds = list(stereoset["type"])
    assert (kinds.count("intrasentence"), kinds.count("intersentence")) == (2_106, 2_123)
    davidson = load_dataset("davidson", data_dir=data_dir).dataset
    assert set(davidson["class"]) == {0, 1, 2}
    weat = load_dataset("weat", data_dir=data_dir).dataset
    assert list(weat["test"]) == list(range(1, 11)) and all(len(words) >= 6 for words in weat["first_target_words"])
    fuzzed = load_dataset("madlibs_toxicity_fuzzed", data_dir=data_dir).dataset
    assert set(fuzzed["toxic"]) == {True, False}


def test_twitteraae_files(data_dir):
    loaded = load_dataset("twitteraae", data_dir=data_dir)
    assert file_sha256(loaded.files["counts"]).startswith("9907158995bea093")
    assert file_sha256(loaded.files["vocab"]).startswith("6ef8e0ed59ed1377")
    assert loaded.record.rows == 191_874
    assert loaded.dataset.column_names == ["word", "count", "african_american", "hispanic", "asian", "white"]
