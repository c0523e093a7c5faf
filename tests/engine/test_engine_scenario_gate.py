"""Known answers for the gate and the comparison (issue 8) on the calibration-scenario classifiers.

The example policy must fail the planted-bias model and pass the zero-bias control; the comparison must call the
fairness gap and the counterfactual flip rate significantly different, and find no difference where none can exist.

Zero-effect controls of the comparison: the male group's label base rate (the same test examples in both runs),
and two runs of one model under different seeds (every metric's point value is the same; only the bootstrap
resamples differ). The male group's true-positive rate is not such a control: the planted model, trained on fewer
positive labels, is stricter with everyone, so its male TPR can come out significantly lower than the control's
(compare says "worse" on some CPUs' arithmetic, e.g. an AMD EPYC without AVX-512).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.cli import app
from audit.compare import compare_runs
from audit.results import load_results

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"
PROBES = ["group_metrics", "counterfactual"]


@pytest.fixture(scope="module")
def scenario_runs(scenario_classifiers, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scenario_runs")
    runs = {}
    subjects = [(name, model_dir, 0) for name, model_dir in scenario_classifiers.items()]
    subjects.append(("planted_reseeded", scenario_classifiers["planted"], 1))
    for name, model_dir, seed in subjects:
        config = root / f"{name}.toml"
        names = ", ".join(f'"{probe}"' for probe in PROBES)
        config.write_text(f'seed = {seed}\nthreads = 2\n[subject]\nmodel = "{model_dir}"\n[probes]\nrun = [{names}]\n')
        outcome = CliRunner().invoke(app, ["run", str(config), "--out", str(root / name)])
        assert outcome.exit_code == 0, outcome.output
        runs[name] = root / name / "results.json"
    return runs


def gate(results: Path, tmp_path: Path) -> tuple[int, list[dict]]:
    outcome = CliRunner().invoke(app, ["gate", str(results), "--policy", str(POLICY), "--format", "json",
                                       "--junit", str(tmp_path / "gate.xml")])
    return outcome.exit_code, json.loads(outcome.stdout)


@pytest.mark.slow
def test_example_policy_fails_planted_and_passes_control(scenario_runs, tmp_path):
    planted_exit, planted_verdicts = gate(scenario_runs["planted"], tmp_path)
    control_exit, control_verdicts = gate(scenario_runs["control"], tmp_path)
    assert planted_exit == 1, planted_verdicts
    assert control_exit == 0, control_verdicts
    failed = {v["rule"] for v in planted_verdicts if not v["passed"] and v["severity"] == "fail"}
    assert "gender counterfactual flip rate at most 25%" in failed
    assert "gender selection-rate gap within ±0.25" in failed
    again_exit, again_verdicts = gate(scenario_runs["planted"], tmp_path)
    assert (again_exit, again_verdicts) == (planted_exit, planted_verdicts)


@pytest.mark.slow
def test_compare_separates_planted_effects_from_untouched_metrics(scenario_runs):
    comparison = compare_runs([load_results(scenario_runs["control"]), load_results(scenario_runs["planted"])],
                              ["control", "planted"])
    calls = {(row.probe, row.metric, row.group): row.calls[0] for row in comparison.rows}
    assert calls[("group_metrics", "selection_rate_gap", "gender=male vs gender=female")] in ("better", "worse")
    assert calls[("counterfactual", "flip_rate", "gender")] == "worse"
    assert calls[("group_metrics", "train_label_base_rate_gap", "gender=male vs gender=female")] == "worse"
    assert calls[("group_metrics", "base_rate", "gender=male")] == "no significant difference"


@pytest.mark.slow
def test_compare_finds_no_difference_between_two_seeds_of_one_model(scenario_runs):
    comparison = compare_runs([load_results(scenario_runs["planted"]), load_results(scenario_runs["planted_reseeded"])],
                              ["planted", "planted_reseeded"])
    tested = [row for row in comparison.rows if row.p_values[0] is not None]
    assert len(tested) >= 20, [(row.metric, row.group) for row in comparison.rows]
    assert {row.calls[0] for row in tested} == {"no significant difference"}, [
        (row.metric, row.group, row.calls[0], row.p_values[0]) for row in tested if row.calls[0] != "no significant difference"]
