"""The runner and `rai-audit run`: failure isolation, skipped needs, bad input, determinism, schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from typer.testing import CliRunner

from audit import runner
from audit.cli import app
from audit.results import SCHEMA_PATH, json_schema

TIMING_KEYS = {"started", "duration_s", "stages", "results_sha256"}  # the fingerprint covers the timestamps


def write_config(tmp_path, model_dir, probes, extra=""):
    path = tmp_path / "audit.toml"
    names = ", ".join(f'"{name}"' for name in probes)
    path.write_text(f'seed = 3\nthreads = 1\n{extra}\n[subject]\nmodel = "{model_dir}"\n[probes]\nrun = [{names}]\n')
    return path


def strip_timing(value):
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def invoke(*arguments):
    return CliRunner().invoke(app, [str(argument) for argument in arguments])


def test_failures_are_isolated_and_needs_are_skipped(tmp_path, tiny_classifier_dir, engine_probes):
    config = write_config(tmp_path, tiny_classifier_dir, engine_probes)
    outcome = invoke("run", config, "--out", tmp_path / "out")
    assert outcome.exit_code == 1, outcome.output  # a probe errored: the exit code says so
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    status = {probe["probe"]: (probe["status"], probe["message"]) for probe in results["probes"]}
    assert status["engine_constant"][0] == "ok"
    assert status["engine_raising"] == ("error", "RuntimeError: deliberate failure <b>inside</b> a probe")
    assert status["engine_needs_mlm"] == ("skipped", "the model has no mlm capability")
    for name in ("report.html", "junit.xml"):
        assert (tmp_path / "out" / name).is_file()
    assert "deliberate failure &lt;b&gt;inside&lt;/b&gt;" in (tmp_path / "out" / "report.html").read_text()


def test_same_config_seed_threads_give_identical_results(tmp_path, tiny_classifier_dir, engine_probes):
    config = write_config(tmp_path, tiny_classifier_dir, ["engine_constant"])
    assert invoke("run", config, "--out", tmp_path / "a").exit_code == 0
    assert invoke("run", config, "--out", tmp_path / "b").exit_code == 0
    first, second = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("a", "b"))
    assert strip_timing(first) == strip_timing(second)
    other_seed = invoke("run", config, "--out", tmp_path / "c", "--seed", 4)
    assert other_seed.exit_code == 0
    third = json.loads((tmp_path / "c" / "results.json").read_text())
    assert third["probes"][0]["metrics"][1]["value"] != first["probes"][0]["metrics"][1]["value"]


def test_results_validate_against_the_shipped_schema(tmp_path, tiny_classifier_dir, engine_probes):
    config = write_config(tmp_path, tiny_classifier_dir, engine_probes)
    invoke("run", config, "--out", tmp_path / "out")
    shipped = json.loads(SCHEMA_PATH.read_text())
    assert shipped == json_schema(), "regenerate with: python -m audit.results"
    jsonschema.validate(json.loads((tmp_path / "out" / "results.json").read_text()), shipped)


def test_report_rerenders_identically_from_json(tmp_path, tiny_classifier_dir, engine_probes):
    config = write_config(tmp_path, tiny_classifier_dir, engine_probes)
    invoke("run", config, "--out", tmp_path / "out")
    assert invoke("report", tmp_path / "out" / "results.json", "--out", tmp_path / "again.html").exit_code == 0
    assert (tmp_path / "again.html").read_text() == (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize(
    "probes, extra, expected",
    [
        (["engine_constnt"], "", "did you mean 'engine_constant'"),
        (["engine_constant"], "bogus_key = 1", "unknown key 'bogus_key'"),
        (["engine_constant"], '[probes.settings.engine_constant]\nscale = "x"', "setting 'scale'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, tiny_classifier_dir, engine_probes,
                                                             probes, extra, expected):
    config = tmp_path / "audit.toml"
    names = ", ".join(f'"{name}"' for name in probes)
    settings = extra if extra.startswith("[probes.settings") else ""
    top = "" if settings else extra
    config.write_text(f'seed = 0\n{top}\n[subject]\nmodel = "{tiny_classifier_dir}"\n[probes]\nrun = [{names}]\n{settings}\n')
    outcome = invoke("run", config, "--out", tmp_path / "out")
    assert outcome.exit_code == 2, outcome.output
    assert expected in outcome.stderr and len(outcome.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unknown_and_empty_training_datasets_exit_2(tmp_path, engine_probes):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    for dataset, expected in (("no_such_dataset", "no_such_dataset"), (str(empty), "empty")):
        config = tmp_path / "audit.toml"
        config.write_text(
            f'[subject.train]\npretrain = "tiny"\nfinetune = {{ data = {{ dataset = "{dataset}" }} }}\n'
            f'[probes]\nrun = ["engine_constant"]\n'
        )
        outcome = invoke("run", config, "--out", tmp_path / "out", "--data-dir", tmp_path)
        assert outcome.exit_code == 2, outcome.output
        assert expected in outcome.stderr.lower()
        assert not (tmp_path / "out").exists()


def test_missing_model_directory_is_a_clear_error(tmp_path, engine_probes):
    config = write_config(tmp_path, tmp_path / "nowhere", ["engine_constant"])
    outcome = invoke("run", config, "--out", tmp_path / "out")
    assert outcome.exit_code == 2 and "nowhere" in outcome.stderr


def test_trained_model_cache_is_keyed_by_the_precision_training_resolves_to(monkeypatch):
    from audit.train import precision
    from audit.train.config import finetune_config_from_dict, load_pretrain_config

    small = load_pretrain_config("small")  # hidden 256: "auto" means bf16 on a CPU with bf16 units
    finetune = finetune_config_from_dict({"preset": "scenario"})
    keys = {}
    for has_units in (False, True):
        monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda has_units=has_units: has_units)
        keys[has_units] = runner.training_cache_keys(small, finetune)
    assert keys[False][0] != keys[True][0] and keys[False][1] != keys[True][1]

    pinned = small.model_copy(update={"train": small.train.model_copy(update={"precision": "fp32"})})
    pinned_finetune = finetune.model_copy(update={"precision": "fp32"})
    pinned_keys = set()
    for has_units in (False, True):
        monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda has_units=has_units: has_units)
        pinned_keys.add(runner.training_cache_keys(pinned, pinned_finetune))
    assert len(pinned_keys) == 1
