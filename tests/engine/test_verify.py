"""Tamper-evident audit records: the manifest and fingerprint in results.json, and `rai-audit verify`."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.cli import app
from audit.results import load_results
from probes import base
from probes.base import Probe, register

REPO = Path(__file__).resolve().parents[2]


class DatasetFileProbe(Probe):
    """Reads a CSV through the data catalog (so that its file lands in the manifest) and counts its rows."""

    name = "engine_dataset_file"
    family = "bias"
    citation = "test probe"
    description = "counts the rows of a dataset file"

    def run(self, ctx):
        from audit.results import Metric

        loaded = ctx.load_dataset(str(ctx.data_dir / "sentences.csv"))
        return self.new_result(metrics=[Metric(name="rows", value=float(loaded.dataset.num_rows))])


@pytest.fixture
def dataset_probe():
    base.available_probes()
    register(DatasetFileProbe)
    yield DatasetFileProbe.name
    base._REGISTRY.pop(DatasetFileProbe.name, None)


def invoke(*arguments):
    return CliRunner().invoke(app, [str(argument) for argument in arguments])


def audit_run(tmp_path, model_dir, probes, *, name="out", seed=3, data_dir=None, policy=None):
    """`rai-audit run` on ``model_dir``; returns the output folder."""
    config = tmp_path / f"{name}.toml"
    names = ", ".join(f'"{probe}"' for probe in probes)
    data = f'data_dir = "{data_dir}"\n' if data_dir else ""
    config.write_text(f'seed = {seed}\nthreads = 1\n{data}[subject]\nmodel = "{model_dir}"\n[probes]\nrun = [{names}]\n')
    extra = ["--policy", policy] if policy else []
    outcome = invoke("run", config, "--out", tmp_path / name, *extra)
    assert outcome.exit_code == 0, outcome.output
    return tmp_path / name


@pytest.fixture
def model_copy(tmp_path, tiny_classifier_dir):
    """A private copy of the tiny classifier, so that tests may damage it."""
    return Path(shutil.copytree(tiny_classifier_dir, tmp_path / "model"))


@pytest.fixture
def untouched_run(tmp_path, model_copy, engine_probes):
    return audit_run(tmp_path, model_copy, ["engine_constant"])


def verify(*arguments):
    outcome = invoke("verify", *arguments)
    return outcome.exit_code, outcome.stdout.strip(), outcome.stderr.strip()


def test_importing_verify_loads_neither_torch_nor_transformers():
    code = "import sys, audit.verify; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                               env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert completed.stdout.strip() == "[]"


def test_import_audit_still_registers_our_model_when_transformers_comes_later():
    code = ("import sys, audit; assert 'transformers' not in sys.modules\n"
            "from transformers import AutoConfig, AutoModelForSequenceClassification\n"
            "config = AutoConfig.for_model('rai-transformer')\n"
            "print(AutoModelForSequenceClassification._model_mapping[type(config)].__name__)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                               env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert completed.stdout.strip() == "AuditTransformerForSequenceClassification"


def test_verify_passes_on_an_untouched_run(untouched_run, model_copy):
    code, stdout, _ = verify(untouched_run / "results.json", "--model", model_copy,
                             "--report", untouched_run / "report.html")
    assert code == 0, stdout
    assert len(stdout.splitlines()) == 1 and stdout.startswith("verified ")
    assert "subject model files" in stdout and "report" in stdout and "not checked" not in stdout


def test_results_record_every_model_file_and_the_documented_fingerprint(untouched_run, model_copy):
    document = json.loads((untouched_run / "results.json").read_text())
    subject = next(folder for folder in document["manifest"]["models"] if "subject" in folder["roles"])
    on_disk = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in model_copy.iterdir()}
    assert {entry["name"]: entry["sha256"] for entry in subject["files"]} == on_disk
    assert {"model.safetensors", "config.json", "tokenizer.json", "task.json", "examples.jsonl"} <= set(on_disk)
    # The definition in audit.results.content_sha256, spelled out.
    content = {key: value for key, value in document.items() if key != "results_sha256"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert document["results_sha256"] == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    config = json.dumps(document["config"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert document["manifest"]["config_sha256"] == hashlib.sha256(config.encode("utf-8")).hexdigest()


def test_report_embeds_the_results_fingerprint(untouched_run):
    fingerprint = json.loads((untouched_run / "results.json").read_text())["results_sha256"]
    report = (untouched_run / "report.html").read_text()
    assert f'<meta name="rai-audit-results-sha256" content="{fingerprint}">' in report
    assert f'<code id="results-sha256">{fingerprint}</code>' in report


def test_verify_detects_one_flipped_byte_in_a_weight_file(untouched_run, model_copy):
    weights = model_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    code, stdout, _ = verify(untouched_run / "results.json", "--model", model_copy)
    assert code == 1, stdout
    assert stdout.startswith("MISMATCH") and f"{weights} changed" in stdout


def test_verify_checks_the_recorded_model_folder_without_model_option(untouched_run, model_copy):
    (model_copy / "model.safetensors.index.json").write_text("{}")
    code, stdout, _ = verify(untouched_run / "results.json")
    assert code == 1 and "model.safetensors.index.json, which the audit did not see" in stdout


def test_verify_detects_an_edited_metric_value(untouched_run):
    results = untouched_run / "results.json"
    document = json.loads(results.read_text())
    document["probes"][0]["metrics"][0]["value"] += 0.01
    results.write_text(json.dumps(document, indent=2))
    code, stdout, _ = verify(results)
    assert code == 1 and "results.json was changed after it was written" in stdout


def test_verify_ignores_layout_of_the_json(untouched_run):
    results = untouched_run / "results.json"
    results.write_text(json.dumps(json.loads(results.read_text()), sort_keys=True))  # other key order, no indent
    assert verify(results)[0] == 0


def test_verify_detects_a_report_from_other_results(tmp_path, untouched_run, model_copy):
    other = audit_run(tmp_path, model_copy, ["engine_constant"], name="other", seed=4)
    code, stdout, _ = verify(untouched_run / "results.json", "--report", other / "report.html")
    assert code == 1 and "was rendered from other results" in stdout
    assert verify(other / "results.json", "--report", other / "report.html")[0] == 0


def test_rerendered_report_still_matches(untouched_run):
    again = untouched_run / "again.html"
    assert invoke("report", untouched_run / "results.json", "--out", again).exit_code == 0
    assert verify(untouched_run / "results.json", "--report", again)[0] == 0


def test_dataset_files_are_rechecked_where_they_are_and_not_checked_when_gone(tmp_path, model_copy, dataset_probe):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    sentences = data_dir / "sentences.csv"
    sentences.write_text("text\nfirst sentence\nsecond sentence\n")
    out = audit_run(tmp_path, model_copy, [dataset_probe], data_dir=data_dir)
    recorded = json.loads((out / "results.json").read_text())["manifest"]["dataset_files"]
    assert [(entry["path"], entry["dataset"]) for entry in recorded] == [(str(sentences.resolve()), "sentences.csv")]
    assert recorded[0]["sha256"] == hashlib.sha256(sentences.read_bytes()).hexdigest()

    code, stdout, _ = verify(out / "results.json")
    assert code == 0 and "dataset file of sentences.csv" in stdout
    sentences.write_text("text\nfirst sentence\nanother sentence\n")
    code, stdout, _ = verify(out / "results.json")
    assert code == 1 and f"{sentences.resolve()} changed" in stdout
    sentences.unlink()
    code, stdout, _ = verify(out / "results.json")
    assert code == 0 and "not checked (not at the recorded path): dataset file of sentences.csv" in stdout


def test_the_gating_policy_is_recorded_and_rechecked(tmp_path, model_copy, engine_probes):
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\nname = "bounded"\nprobe = "engine_constant"\nmetric = "mean_positive"\nmax = 1.0\n')
    out = audit_run(tmp_path, model_copy, ["engine_constant"], policy=policy)
    recorded = json.loads((out / "results.json").read_text())["manifest"]["policy"]
    assert recorded["sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert verify(out / "results.json")[0] == 0
    policy.write_text(policy.read_text().replace("max = 1.0", "max = 2.0"))
    code, stdout, _ = verify(out / "results.json")
    assert code == 1 and f"policy {policy.resolve()} changed" in stdout


def test_older_results_without_digests_still_load_but_cannot_be_verified(untouched_run):
    results = untouched_run / "results.json"
    document = json.loads(results.read_text())
    for key in ("manifest", "results_sha256"):
        document.pop(key)
    results.write_text(json.dumps({**document, "schema_version": "1.0"}))
    assert load_results(results).manifest is None
    code, _, stderr = verify(results)
    assert code == 2 and "records no digests" in stderr and len(stderr.splitlines()) == 1


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"),
    ("folder", "no such file"),
    ("not json", "not a readable JSON file"),
    ("deep", "not a readable JSON file (nested too deeply)"),
    ("not results", "not a results.json"),
    ("model not a folder", "--model"),
    ("report missing", "--report"),
    ("report without digest", "carries no rai-audit-results-sha256"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, untouched_run, case, expected):
    results, arguments = untouched_run / "results.json", []
    if case == "missing":
        results = tmp_path / "nowhere.json"
    elif case == "folder":
        results = untouched_run
    elif case == "not json":
        results = tmp_path / "bad.json"
        results.write_text("{not json")
    elif case == "deep":
        results = tmp_path / "deep.json"
        results.write_text("[" * 100_000 + "]" * 100_000)
    elif case == "not results":
        results = tmp_path / "other.json"
        results.write_text('{"rows": []}')
    elif case == "model not a folder":
        arguments = ["--model", untouched_run / "results.json"]
    elif case == "report missing":
        arguments = ["--report", tmp_path / "missing.html"]
    else:
        (tmp_path / "plain.html").write_text("<html><head></head></html>")
        arguments = ["--report", tmp_path / "plain.html"]
    code, stdout, stderr = verify(results, *arguments)
    assert code == 2, stdout
    assert expected in stderr and len(stderr.splitlines()) == 1 and "Traceback" not in stderr
