import json

import pytest

from audit.train.canaries import (
    CanaryManifestError,
    check_tokenizer,
    count_occurrences,
    draw_canaries,
    load_manifest,
    plant_canaries,
)
from audit.train.config import CanarySection
from audit.train.tokenizer import train_tokenizer


def test_planted_counts_match_manifest(synthetic_corpus):
    documents = synthetic_corpus.read_text(encoding="utf-8").splitlines()
    manifest = draw_canaries(CanarySection(count=3, repeats=[1, 4, 16], seed=5))
    planted = plant_canaries(documents, manifest)
    counts = count_occurrences(planted, manifest)
    assert {s.text: s.repeats for s in manifest.secrets} == counts
    assert sorted(manifest.by_repeats()) == [0, 1, 4, 16]
    assert all(len(group) == 3 for group in manifest.by_repeats().values())
    # nothing but the canary sentences was added
    stripped = [doc for doc in planted]
    for secret in manifest.secrets:
        stripped = [doc.replace(secret.text + ". ", "") for doc in stripped]
    assert stripped == documents


def test_secrets_are_distinct_well_formed_and_seeded():
    section = CanarySection(count=5, repeats=[1, 4, 16], length=6, seed=1)
    manifest = draw_canaries(section)
    digits = [tuple(s.digits) for s in manifest.secrets]
    assert len(set(digits)) == len(digits) == 20
    assert all(len(d) == 6 and set(d) <= set("0123456789") for d in digits)
    assert manifest.secrets[0].text == "my pin code is " + " ".join(manifest.secrets[0].digits)
    assert manifest.candidate_space == 10**6
    assert draw_canaries(section) == manifest
    assert draw_canaries(section.model_copy(update={"seed": 2})) != manifest


def test_manifest_roundtrip_and_tokenizer_check(tmp_path, synthetic_corpus):
    manifest = draw_canaries(CanarySection(count=2, repeats=[1], seed=0))
    documents = plant_canaries(synthetic_corpus.read_text(encoding="utf-8").splitlines(), manifest)
    tokenizer = train_tokenizer(documents, 120, min_frequency=1, required_characters=manifest.alphabet)
    checked = check_tokenizer(manifest, tokenizer)
    assert checked.tokenizer_check["single_token_symbols"] is True
    checked.save(tmp_path)
    assert load_manifest(tmp_path) == checked
    # a tokenizer without single-token digits is flagged
    no_digits = train_tokenizer(["words only here"] * 5, 40, min_frequency=1)
    assert check_tokenizer(manifest, no_digits).tokenizer_check["single_token_symbols"] is False


def test_missing_or_malformed_manifest(tmp_path):
    with pytest.raises(CanaryManifestError, match="no canaries.json"):
        load_manifest(tmp_path)
    (tmp_path / "canaries.json").write_text(json.dumps({"format": "x {}"}), encoding="utf-8")
    with pytest.raises(CanaryManifestError, match="malformed"):
        load_manifest(tmp_path)


def test_bad_canary_settings_rejected():
    with pytest.raises(ValueError, match="exactly one"):
        CanarySection(format="no slot")
    with pytest.raises(ValueError, match="candidate space"):
        CanarySection(count=50, length=1)
