"""benchmarks/default_audit_time.py: the per-stage times it prints are read correctly from what a run leaves."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "default_audit_time.py"
    spec = importlib.util.spec_from_file_location("default_audit_time", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


default_audit_time = _benchmark()


def test_stages_are_read_from_run_stages_in_order_and_the_rest_is_other():
    results = {"run": {"stages": [
        {"stage": "pretraining", "duration_s": 61.5},
        {"stage": "fine-tuning", "duration_s": 40.0, "reused": True},
        {"stage": "probe", "probe": "exposure", "duration_s": 12.0},
        {"stage": "rendering", "duration_s": 1.5},
    ]}}
    assert default_audit_time.stage_times(results, total=120.0) == [
        ("pretraining", 61.5),
        ("fine-tuning (reused)", 40.0),
        ("probe exposure", 12.0),
        ("rendering", 1.5),
        ("other (start-up, imports, writing outputs)", 5.0),
    ]
