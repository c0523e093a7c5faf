"""Policy gating: verdicts, exit codes, JUnit parsed by a real consumer, bad input."""

import json

import junitparser
import pytest
from synthetic_results import build_results
from typer.testing import CliRunner

from audit.cli import app
from audit.gate import PolicyError, evaluate_policy, load_policy

POLICY = """
[[rule]]
name = "overall gap"
probe = "group_metrics"
metric = "gap"
max = {max}

[[rule]]
name = "gap estimate (warn only)"
probe = "crows_pairs"
metric = "gap"
statistic = "value"
max = 0.1
severity = "warn"
"""


def write_run(tmp_path, results=None, name="run"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "results.json").write_text((results or build_results()).to_json(), encoding="utf-8")
    return folder / "results.json"


def write_policy(tmp_path, text, name="policy.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conservative_bound_uses_upper_interval_end(tmp_path):
    results = build_results()  # gap value 0.12, 95% CI [0.05, 0.2]
    passing = evaluate_policy(load_policy(write_policy(tmp_path, POLICY.format(max=0.25))), results)
    straddling = evaluate_policy(load_policy(write_policy(tmp_path, POLICY.format(max=0.15), "p2.toml")), results)
    failing = evaluate_policy(load_policy(write_policy(tmp_path, POLICY.format(max=0.04), "p3.toml")), results)
    assert passing[0].passed and passing[0].statistic == "ci_high" and passing[0].observed == 0.2
    # the estimate 0.12 is under 0.15 but the interval reaches across it: no pass, and no evidence of a breach
    assert not straddling[0].passed and straddling[0].inconclusive and straddling[0].severity == "warn"
    assert not failing[0].passed and not failing[0].inconclusive and failing[0].severity == "fail"
    assert not passing[1].passed and passing[1].severity == "warn"


# (max bound, top-level policy setting, exit code, JUnit outcome of "overall gap"); the interval is [0.05, 0.2]
@pytest.mark.parametrize("bound, setting, expected_exit, expected_case", [
    (0.25, "", 0, "passed"),                             # interval within the bound
    (0.15, "", 0, "skipped"),                            # across it: inconclusive, by default reported only
    (0.15, 'inconclusive = "fail"\n', 1, "Inconclusive"),  # ... or failing the gate when the policy says so
    (0.04, "", 1, "PolicyViolation"),                    # wholly above it
])
def test_gate_command_exit_codes_and_junit(tmp_path, bound, setting, expected_exit, expected_case):
    results_path = write_run(tmp_path)
    policy = write_policy(tmp_path, setting + POLICY.format(max=bound))
    junit_path = tmp_path / "gate.xml"
    outcome = CliRunner().invoke(app, ["gate", str(results_path), "--policy", str(policy), "--junit", str(junit_path)])
    assert outcome.exit_code == expected_exit, outcome.output
    xml = junitparser.JUnitXml.fromfile(str(junit_path))
    policy_suite = next(suite for suite in xml if suite.name == "rai-audit.policy")
    cases = {case.name: case for case in policy_suite}
    assert set(cases) == {"overall gap", "gap estimate (warn only)"}
    case = cases["overall gap"]
    assert case.is_passed == (expected_case == "passed")
    assert case.is_skipped == (expected_case == "skipped")
    if expected_case not in ("passed", "skipped"):
        assert case.result[0].type == expected_case
    if expected_case != "passed":
        assert "0.2" in case.result[0].message  # value in the message, not in time
    assert cases["gap estimate (warn only)"].is_passed  # warnings never fail the build


def test_gate_is_deterministic_and_json_format(tmp_path):
    results_path = write_run(tmp_path)
    policy = write_policy(tmp_path, POLICY.format(max=0.04))
    runner = CliRunner()
    first = runner.invoke(app, ["gate", str(results_path), "--policy", str(policy), "--format", "json"])
    second = runner.invoke(app, ["gate", str(results_path), "--policy", str(policy), "--format", "json"])
    assert first.exit_code == second.exit_code == 1
    assert json.loads(first.stdout) == json.loads(second.stdout)


def test_github_step_summary_markdown(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    for bound in (0.04, 0.15):
        CliRunner().invoke(app, ["gate", str(write_run(tmp_path, name=f"run{bound}")), "--policy",
                                 str(write_policy(tmp_path, POLICY.format(max=bound), f"p{bound}.toml"))])
    failed, undecided = summary.read_text().split("### ")[1:]
    assert "FAILED" in failed and "| overall gap | fail |" in failed
    assert "passed (2 rules, 0 failing, 1 inconclusive)" in undecided
    assert "| overall gap | inconclusive |" in undecided


@pytest.mark.parametrize(
    "policy_text, expected",
    [
        ('[[rule]]\nname="x"\nprobe="group_metrix"\nmetric="gap"\nmax=1\n', "did you mean 'group_metrics'"),
        ('[[rule]]\nname="x"\nprobe="group_metrics"\nmetric="gapp"\nmax=1\n', "did you mean 'gap'"),
        ('[[rule]]\nname="x"\nprobe="group_metrics"\nmetric="gap" max=1\n', "line 4"),
        ('[[rule]]\nname="x"\nprobe="group_metrics"\nmetric="gap"\nmaximum=1\n', "unknown key"),
        ('[[rule]]\nname="x"\nprobe="group_metrics"\nmetric="gap"\n', "needs max, min or no_regression"),
    ],
)
def test_bad_policies_exit_2_with_one_line(tmp_path, policy_text, expected):
    outcome = CliRunner().invoke(app, ["gate", str(write_run(tmp_path)), "--policy",
                                       str(write_policy(tmp_path, policy_text))])
    assert outcome.exit_code == 2
    assert expected in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1


def test_other_schema_version_is_refused(tmp_path):
    path = write_run(tmp_path)
    payload = json.loads(path.read_text())
    payload["schema_version"] = "0.9"
    path.write_text(json.dumps(payload))
    outcome = CliRunner().invoke(app, ["gate", str(path), "--policy", str(write_policy(tmp_path, POLICY.format(max=1)))])
    assert outcome.exit_code == 2 and "schema_version '0.9' is not supported" in outcome.stderr


def test_no_regression_rule_uses_paired_per_example_values(tmp_path):
    baseline = build_results()
    current = build_results()
    ids = [f"e{i}" for i in range(200)]
    baseline.probe("group_metrics").per_example = {"example_ids": ids, "gap": [0.0] * 200}
    current.probe("group_metrics").per_example = {"example_ids": ids, "gap": [1.0] * 60 + [0.0] * 140}
    policy = load_policy(write_policy(tmp_path, '[[rule]]\nname="r"\nprobe="group_metrics"\nmetric="gap"\nno_regression=true\n'))
    verdict = evaluate_policy(policy, current, baseline=baseline)[0]
    assert not verdict.passed and "paired bootstrap" in verdict.message
    same = evaluate_policy(policy, baseline, baseline=baseline)[0]
    assert same.passed
    with pytest.raises(PolicyError, match="no --baseline"):
        evaluate_policy(policy, current)
