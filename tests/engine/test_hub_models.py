"""Hub subjects: `subject.model = "org/name"` (pinned by `revision` or `org/name@rev`) and `run --model org/name`.

Nothing here touches the network: HF_HUB_OFFLINE is on, and the Hugging Face cache is one built here the way
huggingface_hub lays it out (`models--org--name/refs/<branch or tag>` holding a commit hash,
`snapshots/<commit>/<file>` linking to `blobs/<digest>`), filled with tiny models saved by the fixtures. huggingface_hub
reads HF_HOME / HF_HUB_OFFLINE when it is imported, so besides setting them the fixture points its constants at the
test's cache, as the environment would in a fresh process.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from test_cli_validation import OUTPUT_FILES, assert_one_line_error, audit_config, invoke
from tiny_models import build_tokenizer, ours_config, save

from audit.data.scenarios import make_calibration_scenario
from audit.data.task import TaskData
from audit.hub import FETCHED_PATTERNS, SKIPPED_PATTERNS, HubModelError, HubRequest, hub_model
from audit.model import AuditTransformerForSequenceClassification
from audit.model_folder import SubjectLoadError
from audit.subject import ModelUnderAudit

REPO = "tiny-org/tiny-classifier"
MAIN_COMMIT = "1" * 40
OLD_COMMIT = "a0" * 20


def add_snapshot(cache: Path, repo_id: str, folder: Path, *, commit: str, refs: tuple[str, ...] = ("main",)) -> Path:
    """Put the files of ``folder`` into the cache as the snapshot ``commit`` of ``repo_id``, named by ``refs``."""
    repository = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repository / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repository / "blobs").mkdir(exist_ok=True)
    for file in sorted(folder.iterdir()):
        content = file.read_bytes()
        blob = repository / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    for ref in refs:
        (repository / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repository / "refs" / ref).write_text(commit)  # huggingface_hub writes the hash without a newline
    return snapshot


def tiny_classifier(directory: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = AuditTransformerForSequenceClassification(ours_config(num_labels=2)).eval()
    save(model, build_tokenizer(), directory)
    make_calibration_scenario(n_examples=40, bias_strength=0.5, seed=0).save(directory)
    return directory


@pytest.fixture(scope="module")
def classifier_versions(tmp_path_factory) -> dict[str, Path]:
    """Two versions of one tiny classifier (different weights): the repository's main branch and an old tag."""
    root = tmp_path_factory.mktemp("hub_models")
    return {"main": tiny_classifier(root / "main", seed=0), "old": tiny_classifier(root / "old", seed=1)}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache under HF_HOME, offline."""
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def cached_repo(hub_cache, classifier_versions) -> Path:
    add_snapshot(hub_cache, REPO, classifier_versions["main"], commit=MAIN_COMMIT)
    add_snapshot(hub_cache, REPO, classifier_versions["old"], commit=OLD_COMMIT, refs=("v0.1",))
    return hub_cache


def file_digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.mark.usefixtures("engine_probes")
@pytest.mark.parametrize(("named", "revision", "commit", "version"), [
    (REPO, None, MAIN_COMMIT, "main"),
    (f"{REPO}@v0.1", None, OLD_COMMIT, "old"),
    (REPO, OLD_COMMIT, OLD_COMMIT, "old"),  # subject.revision in the config, a commit hash
], ids=["id", "id@tag", "config-revision"])
def test_a_hub_model_is_audited_from_the_cache_pinned_to_its_commit(tmp_path, cached_repo, classifier_versions,
                                                                    named, revision, commit, version):
    out = tmp_path / "out"
    if revision is None:
        arguments = ("run", "--model", named, "--probes", "engine_constant", "--quick")
    else:
        config = audit_config(tmp_path, named)
        config.write_text(config.read_text().replace("[probes]", f'revision = "{revision}"\n[probes]'))
        arguments = ("run", config)
    outcome = invoke(*arguments, "--quiet", "--out", out)
    assert outcome.exit_code == 0, outcome.output
    assert all((out / name).is_file() for name in OUTPUT_FILES)
    results = json.loads((out / "results.json").read_text())
    requested = revision or (named.partition("@")[2] or None)
    assert results["subject"]["hub"] == {"repo_id": REPO, "revision": requested, "commit": commit}
    assert results["subject"]["name"] == REPO
    assert Path(results["subject"]["path"]) == cached_repo / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit
    # Every file of the snapshot, hashed as the blob it links to: the very bytes of the version saved.
    [entry] = results["manifest"]["models"]
    assert entry["roles"] == ["subject"]
    assert {file["name"]: file["sha256"] for file in entry["files"]} == file_digests(classifier_versions[version])
    assert results["subject"]["sha256"] == file_digests(classifier_versions[version])["model.safetensors"]
    # The probe ran on that version's weights.
    expected = ModelUnderAudit.from_pretrained(classifier_versions[version])
    probe = results["probes"][0]
    assert probe["status"] == "ok", probe["message"]
    texts = TaskData.load(classifier_versions[version]).texts("test")
    assert probe["metrics"][0]["value"] == pytest.approx(float(expected.predict_proba(texts)[:, 1].mean()))
    report = (out / "report.html").read_text()
    assert 'id="hub-source"' in report and commit in report and REPO in report
    assert invoke("verify", out / "results.json").exit_code == 0  # the snapshot's files are the ones recorded


def test_a_repository_with_only_pickled_weights_is_refused_before_any_work(tmp_path, hub_cache, classifier_versions,
                                                                            no_work):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (pickled / name).write_bytes((classifier_versions["main"] / name).read_bytes())
    torch.save({"weight": torch.zeros(2)}, pickled / "pytorch_model.bin")
    add_snapshot(hub_cache, "tiny-org/pickled", pickled, commit="b" * 40)
    out = tmp_path / "out"
    outcome = invoke("run", "--model", "tiny-org/pickled", "--quiet", "--out", out)
    assert_one_line_error(outcome, "tiny-org/pickled", "pytorch_model.bin", "only pickled weights", "b" * 40)
    assert not out.exists()


def test_an_unknown_id_offline_is_one_line_naming_it_and_hf_hub_offline(tmp_path, cached_repo, no_work):
    for named in ("tiny-org/no-such-model", f"{REPO}@no-such-branch"):
        out = tmp_path / "out"
        outcome = invoke("run", "--model", named, "--quiet", "--out", out)
        assert_one_line_error(outcome, named, "HF_HUB_OFFLINE", "Hugging Face cache")
        assert not out.exists()


def test_snapshot_links_may_reach_the_repository_blobs_but_nothing_outside(tmp_path, cached_repo):
    snapshot = cached_repo / f"models--{REPO.replace('/', '--')}" / "snapshots" / MAIN_COMMIT
    outside = tmp_path / "outside.json"
    outside.write_text((snapshot / "tokenizer_config.json").read_text())
    (snapshot / "tokenizer_config.json").unlink()
    (snapshot / "tokenizer_config.json").symlink_to(outside)
    with pytest.raises(SubjectLoadError, match="outside the model folder"):
        ModelUnderAudit.from_pretrained(REPO)


def test_a_folder_is_told_from_a_hub_id_an_existing_path_winning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub_model("org/name") == HubRequest("org/name", None)
    assert hub_model("org/name@v1.0") == HubRequest("org/name", "v1.0")
    assert hub_model("org/name", revision="refs/pr/1") == HubRequest("org/name", "refs/pr/1")
    (tmp_path / "org" / "name").mkdir(parents=True)
    for folder in ("org/name", "./org/name", "missing/model/folder", "classifier", str(tmp_path / "x"), "~/x"):
        assert hub_model(folder) is None, folder
    for named, revision, expected in [("org/other@", None, "names no revision"),
                                      ("org/other@v1", "v2", "give the revision once"),
                                      ("org/name", "v1", "local folder"),
                                      ("a/b/c", "v1", "neither")]:
        with pytest.raises(HubModelError, match=expected):
            hub_model(named, revision=revision)


def test_subject_revision_needs_a_model(tmp_path):
    config = tmp_path / "audit.toml"
    config.write_text('[subject]\nrevision = "v1"\ntrain = {}\n')
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "out"), "subject.revision")


def test_only_the_files_an_audit_reads_are_fetched():
    """The patterns as huggingface_hub applies them to a typical repository listing."""
    from huggingface_hub.utils import filter_repo_objects

    listing = ["config.json", "model.safetensors", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "merges.txt",
               "spiece.model", "task.json", "examples.jsonl", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
               "training_args.bin", "model.ckpt", "modeling_custom.py", "README.md", ".gitattributes",
               "onnx/model.onnx", "1_Pooling/config.json", "checkpoint-500/model.safetensors"]
    fetched = set(filter_repo_objects(listing, allow_patterns=list(FETCHED_PATTERNS),
                                      ignore_patterns=list(SKIPPED_PATTERNS)))
    assert fetched == {"config.json", "model.safetensors", "model-00001-of-00002.safetensors",
                       "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                       "special_tokens_map.json", "vocab.txt", "merges.txt", "spiece.model", "task.json",
                       "examples.jsonl"}


@pytest.mark.parametrize(("kind", "expected"), [
    ("RepositoryNotFoundError", "was not found"),
    ("GatedRepoError", "is gated"),
    ("RevisionNotFoundError", "no such revision"),
], ids=["missing", "gated", "revision"])
def test_hub_refusals_online_are_one_line_naming_the_model(tmp_path, monkeypatch, no_work, kind, expected):
    """What huggingface_hub raises for a repository it cannot serve (replayed: nothing here goes online)."""
    import httpx2
    from huggingface_hub import errors

    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/models/tiny-org/x"))

    def refuse(repo_id, **kwargs):
        assert kwargs["allow_patterns"] == list(FETCHED_PATTERNS)
        raise getattr(errors, kind)(f"404 Client Error.\n{kind} for {repo_id}", response=response)

    monkeypatch.setattr("huggingface_hub.snapshot_download", refuse)
    out = tmp_path / "out"
    assert_one_line_error(invoke("run", "--model", "tiny-org/x@v2", "--out", out), "tiny-org/x@v2", expected)
    assert not out.exists()


@pytest.mark.usefixtures("engine_probes")
def test_a_task_file_labels_a_hub_classifier(tmp_path, cached_repo, classifier_versions):
    rows = ["text,label,region"] + [f"the nurse reads {index},{index % 2},{'north' if index % 3 else 'south'}"
                                    for index in range(12)]
    task = tmp_path / "task.csv"
    task.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    outcome = invoke("run", "--model", REPO, "--task", task, "--probes", "engine_constant", "--quiet", "--out", out)
    assert outcome.exit_code == 0, outcome.output
    results = json.loads((out / "results.json").read_text())
    assert results["subject"]["hub"]["commit"] == MAIN_COMMIT
    texts = [row.split(",")[0] for row in rows[1:]]
    expected = ModelUnderAudit.from_pretrained(classifier_versions["main"]).predict_proba(texts)[:, 1].mean()
    assert results["probes"][0]["metrics"][0]["value"] == pytest.approx(float(expected))


@pytest.mark.usefixtures("engine_probes")
def test_one_run_resolves_the_hub_snapshot_once(tmp_path, cached_repo, monkeypatch):
    """The up-front subject check fetches the snapshot and the audit uses it, rather than asking the hub again
    (each ask is a round trip online, and the branch could move in between)."""
    import huggingface_hub

    calls = []
    real = huggingface_hub.snapshot_download

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", counting)
    out = tmp_path / "out"
    outcome = invoke("run", "--model", REPO, "--probes", "engine_constant", "--quick", "--quiet", "--out", out)
    assert outcome.exit_code == 0, outcome.output
    assert calls == [REPO]
    assert json.loads((out / "results.json").read_text())["subject"]["hub"]["commit"] == MAIN_COMMIT
