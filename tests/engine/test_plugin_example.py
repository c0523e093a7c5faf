"""The probe plug-in of examples/plugin, registered through its entry point as pip would, runs in a real audit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from typer.testing import CliRunner

from audit.cli import app
from audit.data.task import TaskData
from audit.subject import ModelUnderAudit
from probes import base

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "examples" / "plugin"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """What `pip install examples/plugin` leaves behind for importlib.metadata: the module on sys.path and a
    dist-info folder whose entry_points.txt is written from the example's pyproject.toml."""
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    entry_points = project["entry-points"][base.ENTRY_POINT_GROUP]
    site = tmp_path / "site-packages"
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                        f"Version: {project['version']}\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{base.ENTRY_POINT_GROUP}]\n" + "".join(f"{name} = {target}\n" for name, target in entry_points.items()))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    monkeypatch.setattr(base, "_entry_points_loaded", False)  # discover entry points again, with the plug-in
    yield list(entry_points)
    for name in entry_points:
        base._REGISTRY.pop(name, None)
    sys.modules.pop("calibration_in_the_large", None)


def test_plugin_is_found_through_its_entry_point_and_its_result_lands_in_results_json(
        tmp_path, tiny_classifier_dir, installed_plugin):
    assert installed_plugin == ["calibration_in_the_large"]
    listing = CliRunner().invoke(app, ["probes"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0 and "calibration_in_the_large" in listing.output

    config = tmp_path / "audit.toml"
    config.write_text(f'seed = 1\nthreads = 1\n[subject]\nmodel = "{tiny_classifier_dir}"\n'
                      '[probes]\nrun = ["calibration_in_the_large"]\n'
                      '[probes.settings.calibration_in_the_large]\nn_resamples = 200\n')
    outcome = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    assert outcome.exit_code == 0, outcome.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    result = next(probe for probe in results["probes"] if probe["probe"] == "calibration_in_the_large")
    assert result["status"] == "ok", result["message"]
    assert result["citation"].startswith("Kleinberg")

    # The known answer: the gap is the mean positive probability minus the observed positive rate, per group too.
    task = TaskData.load(tiny_classifier_dir)
    probabilities = ModelUnderAudit.from_pretrained(tiny_classifier_dir, device="cpu").predict_proba(
        task.texts("test"))[:, task.positive_label]
    observed = np.asarray(task.labels("test")) == task.positive_label
    genders = np.asarray(task.groups("test", "gender"))
    expected = {None: probabilities.mean() - observed.mean()}
    expected |= {f"gender={value}": probabilities[genders == value].mean() - observed[genders == value].mean()
                 for value in set(genders)}
    written = {metric["group"]: metric for metric in result["metrics"]}
    assert set(expected) <= set(written)
    for group, value in expected.items():
        assert written[group]["value"] == pytest.approx(value, abs=1e-6)
        assert written[group]["ci_low"] <= written[group]["value"] <= written[group]["ci_high"]
    assert len(result["findings"]) == len(written)
    assert "calibration_in_the_large" in (tmp_path / "out" / "report.html").read_text()
