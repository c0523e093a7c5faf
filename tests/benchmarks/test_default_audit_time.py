"""benchmarks/default_audit_time.py: the per-stage times it prints are read correctly from what a run leaves."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest


def _benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "default_audit_time.py"
    spec = importlib.util.spec_from_file_location("default_audit_time", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


default_audit_time = _benchmark()


def _cache(tmp_path: Path, *, pretrain_seconds: float, finetune_end_after: float) -> Path:
    pretrained = tmp_path / "models" / "pretrained-abc"
    classifier = tmp_path / "models" / "classifier-def"
    pretrained.mkdir(parents=True)
    classifier.mkdir(parents=True)
    (pretrained / "pretrain.json").write_text(json.dumps({"wall_seconds": pretrain_seconds}), encoding="utf-8")
    (classifier / "finetune.json").write_text("{}", encoding="utf-8")
    written = (pretrained / "pretrain.json").stat().st_mtime
    os.utime(classifier / "finetune.json", (written + finetune_end_after, written + finetune_end_after))
    return tmp_path


def test_stages_come_from_the_training_records_and_probe_durations(tmp_path):
    cache = _cache(tmp_path, pretrain_seconds=61.5, finetune_end_after=40.0)
    results = {"probes": [{"probe": "exposure", "duration_s": 12.0}, {"probe": "membership", "duration_s": 30.0}]}
    stages = dict(default_audit_time.stage_times(results, cache, total=150.0))
    assert stages["pretraining"] == 61.5
    assert stages["fine-tuning"] == pytest.approx(40.0, abs=0.01)
    assert stages["probe exposure"] == 12.0 and stages["probe membership"] == 30.0
    other = stages["other (start-up, loading, hashing, writing outputs)"]
    assert other == pytest.approx(150.0 - 61.5 - 40.0 - 42.0, abs=0.01)


def test_stage_times_recorded_in_results_are_used_as_they_are(tmp_path):
    results = {"run": {"stages": {"pretraining": 5.0, "report": 1.0}}, "probes": []}
    assert default_audit_time.stage_times(results, tmp_path, total=7.0) == [("pretraining", 5.0), ("report", 1.0)]
