"""Comparison of runs: paired tests where per-example data exist, interval tests otherwise, bad input."""

import numpy as np
import pytest
from synthetic_results import build_results
from typer.testing import CliRunner

from audit.cli import app
from audit.compare import CompareError, compare_runs
from audit.results import Metric


def with_flips(results, flips):
    probe = results.probe("crows_pairs")
    probe.per_example = {"example_ids": [f"e{i}" for i in range(len(flips))], "flip_rate": list(map(float, flips))}
    probe.metrics.append(Metric(name="flip_rate", value=float(np.mean(flips)), higher_is_better=False, n=len(flips)))
    return results


def test_paired_binary_outcomes_use_mcnemar_and_call_direction():
    rng = np.random.default_rng(0)
    control = rng.random(300) < 0.05
    biased = control | (rng.random(300) < 0.3)
    comparison = compare_runs([with_flips(build_results(), control), with_flips(build_results(), biased)],
                              ["control", "biased"])
    row = next(r for r in comparison.rows if r.metric == "flip_rate")
    assert row.methods == ["McNemar (paired)"]
    assert row.calls == ["worse"] and row.p_values[0] < 1e-6


def test_identical_runs_show_no_significant_difference():
    comparison = compare_runs([build_results(), build_results()])
    assert {call for row in comparison.rows for call in row.calls} <= {"no significant difference", "not comparable"}


def test_interval_test_detects_separated_intervals():
    a, b = build_results(), build_results()
    b.probe("group_metrics").metrics[0] = Metric(name="gap", value=0.5, ci_low=0.45, ci_high=0.55,
                                                 higher_is_better=False, n=400)
    row = next(r for r in compare_runs([a, b]).rows if r.probe == "group_metrics" and r.metric == "gap" and r.group is None)
    assert row.calls == ["worse"] and row.methods == ["intervals (normal approx.)"]


def test_leaderboard_and_flags_for_three_runs():
    runs = [build_results(), build_results(), build_results()]
    runs[2].probe("crows_pairs").version = "2"
    runs[1].probe("group_metrics").metrics[0] = Metric(name="gap", value=0.01, ci_low=0.0, ci_high=0.02,
                                                       higher_is_better=False)
    comparison = compare_runs(runs, ["a", "b", "c"])
    entry = next(e for e in comparison.leaderboard if e["probe"] == "group_metrics" and e["metric"] == "gap"
                 and e["group"] is None)
    assert entry["ranking"][0] == "b"
    assert any("crows_pairs version 2" in flag for flag in comparison.flags)


def test_no_common_probe_is_an_error(tmp_path):
    a, b = build_results(), build_results()
    b.probes = [p for p in b.probes if p.probe == "exposure"]
    with pytest.raises(CompareError, match="no successfully run probe in common"):
        compare_runs([a, b])
    for name, run in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(run.to_json())
    out = tmp_path / "compare.html"
    outcome = CliRunner().invoke(app, ["compare", str(tmp_path / "a/results.json"), str(tmp_path / "b/results.json"),
                                       "--out", str(out)])
    assert outcome.exit_code == 2 and not out.exists()


def test_compare_command_writes_escaped_report(tmp_path):
    paths = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "results.json"
        path.write_text(build_results().to_json())
        paths.append(str(path))
    out = tmp_path / "compare.html"
    outcome = CliRunner().invoke(app, ["compare", *paths, "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    html = out.read_text()
    assert "Metrics side by side" in html and "<script" not in html
