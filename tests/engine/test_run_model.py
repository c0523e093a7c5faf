"""`rai-audit run --model DIR [--task FILE] [--probes a,b] [--quick]`: a model folder audited without a TOML file.

The folder is a tiny classifier laid out as `rai-audit finetune` writes one: finetune.json names the masked LM it
came from, task.json/examples.jsonl carry its own task (gender groups). A task file given with --task replaces
that task; its groups and labels must be the ones the fairness probes see.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli_validation import OUTPUT_FILES, assert_one_line_error, invoke
from tiny_models import build_tokenizer, ours_config, save

from audit.config import QUICK_PROBE_SETTINGS, AuditConfigError, command_line_config
from audit.data.scenarios import make_calibration_scenario
from audit.data.task_file import TaskFileError, read_task_file
from audit.model import AuditTransformerForMaskedLM, AuditTransformerForSequenceClassification
from audit.subject import ModelUnderAudit
from probes.base import available_probes, get_probe

LABELS = {0: "rejected", 1: "accepted"}
TEXTS = ["the doctor said she would arrive soon", "a woman walked to the park", "he cooked bread",
         "the engineer played football with children", "the nurse reads", "my kind neighbour fixed the old bridge",
         "the teacher said he was tired", "children played in the park", "she reads books every night"]


@pytest.fixture(scope="module")
def finetuned_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run_model")
    torch.manual_seed(1)
    tokenizer = build_tokenizer()
    mlm_dir = save(AuditTransformerForMaskedLM(ours_config()).eval(), tokenizer, root / "pretrained")
    classifier = AuditTransformerForSequenceClassification(
        ours_config(num_labels=2, id2label=LABELS, label2id={name: index for index, name in LABELS.items()})).eval()
    directory = save(classifier, tokenizer, root / "classifier")
    (directory / "finetune.json").write_text(json.dumps({"pretrained_from": str(mlm_dir)}))
    make_calibration_scenario(n_examples=60, bias_strength=0.5, seed=0).save(directory)  # its own task: gender
    return directory


def task_rows(n: int = 72) -> list[dict[str, str]]:
    """Regions north/south, labels written as names and as indices, a few training rows."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(n):
        label = int(rng.integers(2))
        rows.append({"text": f"{TEXTS[index % len(TEXTS)]} {index}", "label": LABELS[label] if index % 3 else str(label),
                     "region": "north" if index % 2 else "south", "split": "train" if index % 8 == 0 else "test"})
    return rows


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def probe_result(results: dict, name: str) -> dict:
    return next(result for result in results["probes"] if result["probe"] == name)


def metric(result: dict, name: str, group: str) -> dict:
    return next(m for m in result["metrics"] if m["name"] == name and m.get("group") == group)


def expected_rates(finetuned_dir: Path, rows: list[dict], region: str) -> tuple[float, float, int]:
    """Hand-computed over the task's test rows of one region: base rate of "accepted", selection rate, count."""
    held_out = [row for row in rows if row["split"] == "test" and row["region"] == region]
    labels = np.array([1 if row["label"] in ("accepted", "1") else 0 for row in held_out])
    probabilities = ModelUnderAudit.from_pretrained(finetuned_dir).predict_proba([row["text"] for row in held_out])
    return float(labels.mean()), float((probabilities.argmax(axis=1) == 1).mean()), len(held_out)


@pytest.mark.parametrize("write", [write_csv, write_jsonl], ids=["csv", "jsonl"])
def test_run_model_with_a_task_file_audits_the_file_groups(tmp_path, finetuned_dir, write):
    rows = task_rows()
    task = write(tmp_path / f"task.{'csv' if write is write_csv else 'jsonl'}", rows)
    out = tmp_path / "out"
    outcome = invoke("run", "--model", finetuned_dir, "--task", task, "--probes", "group_metrics", "--quick",
                     "--quiet", "--out", out)
    assert outcome.exit_code == 0, outcome.output
    assert all((out / name).is_file() for name in OUTPUT_FILES)
    results = json.loads((out / "results.json").read_text())
    assert [result["probe"] for result in results["probes"]] == ["group_metrics"]
    fairness = probe_result(results, "group_metrics")
    assert fairness["status"] == "ok", fairness["message"]
    for region in ("north", "south"):  # the file's groups, not the folder's own gender groups
        base_rate, selection_rate, n = expected_rates(finetuned_dir, rows, region)
        assert metric(fairness, "base_rate", f"region={region}")["value"] == pytest.approx(base_rate)
        assert metric(fairness, "base_rate", f"region={region}")["n"] == n
        assert metric(fairness, "selection_rate", f"region={region}")["value"] == pytest.approx(selection_rate)
    assert not any("gender" in (m.get("group") or "") for m in fairness["metrics"])
    # The masked LM named by finetune.json comes with the classifier (for the MLM probes).
    assert {"mlm", "classifier"} <= set(results["subject"]["capabilities"])
    assert {role for entry in results["manifest"]["models"] for role in entry["roles"]} >= {"subject", "mlm"}
    record = next(d for d in results["datasets"] if d["name"] == task.name)
    assert record["rows"] == len(rows) and record["source"] == "path"
    assert results["config"]["subject"] == {**results["config"]["subject"], "model": str(finetuned_dir),
                                            "task": str(task)}


def test_without_task_data_the_probes_that_need_it_are_skipped_with_the_reason(tmp_path, finetuned_dir):
    bare = tmp_path / "bare"  # the classifier without the task files fine-tuning writes
    shutil.copytree(finetuned_dir, bare, ignore=shutil.ignore_patterns("task.json", "examples.jsonl"))
    masked_lm = json.loads((finetuned_dir / "finetune.json").read_text())["pretrained_from"]
    for model, missing in ((bare, "no fine-tuning data"), (masked_lm, "no classifier")):
        out = tmp_path / f"out-{missing.replace(' ', '-')}"
        outcome = invoke("run", "--model", model, "--probes", "group_metrics,counterfactual", "--quiet", "--out", out)
        assert outcome.exit_code == 0, outcome.output
        results = json.loads((out / "results.json").read_text())
        for result in results["probes"]:
            assert result["status"] == "skipped" and missing in result["message"], result


def test_a_task_file_of_test_rows_only_skips_the_probes_that_need_other_splits(tmp_path, finetuned_dir):
    rows = [{**row, "split": "test"} for row in task_rows()]
    task = write_csv(tmp_path / "test_only.csv", rows, ["text", "label", "region"])  # no split column: all test
    out = tmp_path / "out"
    outcome = invoke("run", "--model", finetuned_dir, "--task", task, "--probes", "group_metrics,mitigation,membership",
                     "--quick", "--quiet", "--out", out)
    assert outcome.exit_code == 0, outcome.output
    results = json.loads((out / "results.json").read_text())
    assert probe_result(results, "group_metrics")["status"] == "ok"
    for name, missing in (("mitigation", "no validation examples"), ("membership", "lacks split membership")):
        result = probe_result(results, name)
        assert result["status"] == "skipped" and missing in result["message"], result


def test_quick_settings_land_in_results_and_report(tmp_path, finetuned_dir):
    outcome = invoke("run", "--model", finetuned_dir, "--probes", "group_metrics,membership", "--quick", "--quiet",
                     "--out", tmp_path / "quick")
    assert outcome.exit_code == 0, outcome.output
    results = json.loads((tmp_path / "quick" / "results.json").read_text())
    assert results["config"]["quick"] is True
    assert results["config"]["probes"]["settings"] == {name: QUICK_PROBE_SETTINGS[name]
                                                      for name in ("group_metrics", "membership")}
    membership = probe_result(results, "membership")
    assert membership["status"] == "ok", membership["message"]
    assert {m["group"] for m in membership["metrics"] if m["name"] == "auc"} == {"loss"}  # no reference models
    assert 'id="quick-run"' in (tmp_path / "quick" / "report.html").read_text()
    assert "quick run" in outcome.stderr

    outcome = invoke("run", "--model", finetuned_dir, "--probes", "group_metrics", "--quiet", "--out", tmp_path / "full")
    assert outcome.exit_code == 0, outcome.output
    results = json.loads((tmp_path / "full" / "results.json").read_text())
    assert results["config"]["quick"] is False and results["config"]["probes"]["settings"] == {}
    assert 'id="quick-run"' not in (tmp_path / "full" / "report.html").read_text()


BAD_TASKS = {
    "missing": (None, "does not exist"),
    "zero bytes": ("", "empty"),
    "header only": ("text,label,region\n", "no rows"),
    "no label column": ("text,region\nhello,north\n", "'label'"),
    "no text column": ("txt,label,region\nhello,accepted,north\n", "'text'"),
    "no group column": ("text,label\nhello,accepted\n", "no group column"),
    "unknown label": ("text,label,region\nhello,accepted,north\nbye,maybe,south\n", "row 2: unknown label 'maybe'"),
    "index out of range": ("text,label,region\nhello,2,north\n", "unknown label '2'"),
    "empty label": ("text,label,region\nhello,,north\n", "no label"),
    "empty text": ("text,label,region\n,accepted,north\n", "text is empty"),
    "bad split": ("text,label,region,split\nhello,1,north,holdout\n", "split 'holdout'"),
    "duplicate id": ("id,text,label,region\n7,hello,1,north\n7,bye,0,south\n", "id '7'"),
}


@pytest.mark.parametrize("case", list(BAD_TASKS))
def test_bad_task_files_exit_2_in_one_line_before_any_work(tmp_path, finetuned_dir, no_work, case):
    content, expected = BAD_TASKS[case]
    task = tmp_path / "task.csv"
    if content is not None:
        task.write_text(content, encoding="utf-8")
    outcome = invoke("run", "--model", finetuned_dir, "--task", task, "--out", tmp_path / "out")
    assert_one_line_error(outcome, str(task), expected)
    assert not (tmp_path / "out").exists()


def test_other_bad_run_model_input_exits_2_before_any_work(tmp_path, finetuned_dir, no_work):
    task = write_csv(tmp_path / "task.csv", task_rows(4))
    config = tmp_path / "audit.toml"
    config.write_text(f'[subject]\nmodel = "{finetuned_dir}"\n')
    masked_lm = json.loads((finetuned_dir / "finetune.json").read_text())["pretrained_from"]
    text_file = tmp_path / "task.txt"
    text_file.write_text("hello\n")
    cases = [
        (("run", config, "--model", finetuned_dir), ["not both"]),
        (("run", "--model", "missing/model/folder"), ["does not exist", "model directory"]),
        (("run", "--model", finetuned_dir, "--probes", "group_metric"), ["did you mean 'group_metrics'"]),
        (("run", "--model", finetuned_dir, "--probes", " , "), ["names no probe"]),
        (("run", "--task", task), ["--task", "needs --model"]),
        (("run", "--model", masked_lm, "--task", task), ["needs a classifier", "mlm"]),
        (("run", "--model", finetuned_dir, "--task", text_file), ["expected .csv or .jsonl"]),
    ]
    for arguments, expected in cases:
        assert_one_line_error(invoke(*arguments, "--out", tmp_path / "out"), *expected)
        assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ task files
def test_labels_map_by_name_first_then_by_index(tmp_path):
    task = write_csv(tmp_path / "t.csv", [{"text": "a", "label": "1", "g": "x"}, {"text": "b", "label": "0", "g": "y"},
                                          {"text": "c", "label": "no", "g": ""}])
    by_name = read_task_file(task, label_names=["1", "0", "no"])  # "1" is a name here: index 0
    assert [example.label for example in by_name.examples] == [0, 1, 2]
    by_index = read_task_file(task, label_names=["yes", "no"])
    assert [example.label for example in by_index.examples] == [1, 0, 1]
    assert by_index.positive_label == 1 and by_index.group_columns == ["g"]
    assert [example.groups for example in by_index.examples] == [{"g": "x"}, {"g": "y"}, {"g": ""}]
    assert {example.split for example in by_index.examples} == {"test"}
    assert read_task_file(task, label_names=["yes", "no", "maybe"]).positive_label == 0
    assert read_task_file(task, label_names=["yes", "no"], positive_label=0).positive_label == 0
    with pytest.raises(TaskFileError, match="unknown label 'no'"):
        read_task_file(task, label_names=["a", "b"])


# ------------------------------------------------------------------------------------------------ the config
def test_quick_budgets_are_valid_smaller_settings_of_registered_probes():
    for name, settings in QUICK_PROBE_SETTINGS.items():
        assert name in available_probes(), name
        defaults = get_probe(name).Config()
        get_probe(name)(settings)  # every key is a setting of the probe, in its allowed range
        for key, value in settings.items():
            default = getattr(defaults, key)
            if isinstance(value, int) and default is not None:
                assert value < default, (name, key)


def test_quick_overrides_the_config_budgets_and_keeps_other_settings(tmp_path):
    config_path = tmp_path / "audit.toml"
    config_path.write_text('[subject]\nmodel = "m"\n[probes]\nrun = ["crows_pairs", "stereoset"]\n'
                           '[probes.settings.crows_pairs]\nmax_pairs = 900\nbias_types = ["gender"]\n')
    config = command_line_config(config_path, quick=True)
    assert config.quick
    assert config.probes.settings == {"crows_pairs": {**QUICK_PROBE_SETTINGS["crows_pairs"], "bias_types": ["gender"]},
                                      "stereoset": QUICK_PROBE_SETTINGS["stereoset"]}
    default_quick = command_line_config(None, quick=True)  # the default recipe's own budgets are overridden too
    assert default_quick.probes.settings["membership"] == QUICK_PROBE_SETTINGS["membership"]
    assert command_line_config(None).probes.settings["membership"] == {"n_reference_models": 2}
    revalidated = command_line_config(None, quick=True, overrides={"seed": 3})  # applying it twice changes nothing
    assert revalidated.probes == default_quick.probes and revalidated.seed == 3
    with pytest.raises(AuditConfigError, match="not both"):
        command_line_config(config_path, model="m")
