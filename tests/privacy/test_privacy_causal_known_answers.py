"""Known answers of the causal-LM privacy probes on a tiny decoder pretrained by audit.train.pretrain (slow: the
session fixture trains it once, see conftest.causal_canary_dir).

(b) canaries planted 16x are extracted verbatim by greedy decoding, never-inserted controls are not, and exposure
    rises with the repetition count;
(c) membership AUC on pretraining documents vs held-out documents excludes 0.5, and covers 0.5 when the "members"
    are documents the model never saw.
"""

from __future__ import annotations

import json
import os

import pytest

from audit.subject import ModelUnderAudit
from audit.train.canaries import MANIFEST_FILE
from probes.base import ProbeContext, get_probe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def subject(causal_canary_dir):
    if not os.environ.get("RAI_AUDIT_DATA_DIR"):
        pytest.skip("RAI_AUDIT_DATA_DIR is not set; the corpus is the shared Wikipedia passages")
    return ModelUnderAudit.from_pretrained(causal_canary_dir)


def _context(subject, directory, **extra):
    return ProbeContext(subject=subject, seed=0, canary_manifest=directory / MANIFEST_FILE, **extra)


def _by_group(result, name):
    return {metric.group: metric for metric in result.metrics if metric.name == name}


def test_sixteen_times_planted_canaries_are_extracted_and_controls_are_not(subject, causal_canary_dir):
    result = get_probe("extraction")().execute(_context(subject, causal_canary_dir))
    assert result.status == "ok", result.message
    greedy = _by_group(result, "greedy_extraction_rate")
    assert greedy["repeats_16"].value >= 0.5, greedy  # planted effect
    assert greedy["repeats_16"].ci_low > greedy["control"].value
    for name in ("greedy_extraction_rate", "beam_extraction_rate"):
        assert _by_group(result, name)["control"].value == 0.0  # zero-effect control
    assert any(finding.level == "fail" for finding in result.findings)


def test_exposure_rises_with_the_repeat_count(subject, causal_canary_dir):
    result = get_probe("exposure")({"n_candidates": 2000}).execute(_context(subject, causal_canary_dir))
    assert result.status == "ok", result.message
    exposure = _by_group(result, "exposure")
    means = [exposure[group].value for group in ("control", "repeats_1", "repeats_4", "repeats_16")]
    assert means[3] > means[2] > means[0], means
    assert exposure["repeats_16"].ci_low > exposure["control"].ci_high
    assert exposure["control"].ci_low < 1.44 < exposure["control"].ci_high + 1.0  # chance: 1/ln 2 bits


def test_pretraining_documents_are_told_from_held_out_ones(subject, causal_canary_dir):
    result = get_probe("lm_membership")({"n_bootstrap": 500}).execute(
        _context(subject, causal_canary_dir, data_dir=None))
    assert result.status == "ok", result.message
    auc = _by_group(result, "auc")
    assert auc["loss"].ci_low > 0.5, auc["loss"]
    loss = _by_group(result, "mean_token_loss")
    assert loss["members"].value < loss["non_members"].value


def test_membership_auc_covers_chance_when_the_members_were_never_trained_on(subject, causal_canary_dir, tmp_path):
    """Zero-effect control: 'members' are passages after the model's corpus (never trained on), non-members its
    held-out documents (never trained on either)."""
    from audit.data.catalog import load_dataset
    from probes.privacy.pretraining_documents import documents_from_recipe

    recipe = json.loads((causal_canary_dir / "pretrain.json").read_text())
    ctx = _context(subject, causal_canary_dir)
    heldout = [text for text, member in zip(*_texts_and_members(documents_from_recipe(
        ctx, causal_canary_dir / "pretrain.json"))) if not member]
    passages = [text.strip() for text in load_dataset("wiki_passages").dataset["text"] if text.strip()]
    unseen = passages[recipe["config"]["corpus"]["max_documents"]:][:len(heldout)]
    rows = [{"text": text, "member": True} for text in unseen] + [{"text": text, "member": False} for text in heldout]
    path = tmp_path / "never_trained.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = get_probe("lm_membership")({"documents": str(path), "n_bootstrap": 500}).execute(ctx)
    assert result.status == "ok", result.message
    for attack, auc in _by_group(result, "auc").items():
        assert auc.ci_low < 0.5 < auc.ci_high, (attack, auc)


def _texts_and_members(documents):
    return documents.texts, documents.members.tolist()
