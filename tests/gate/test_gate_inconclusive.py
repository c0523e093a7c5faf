"""Inconclusive verdicts at the gate: a rule on a metric its probe marked inconclusive (a bias score of a model
that cannot tell meaningful text from meaningless) fails the gate under `inconclusive = "fail"` and passes with a
visible warning under `"warn"` (the default): table, JSON, Markdown, JUnit and the report all say inconclusive."""

import json

import junitparser
import pytest
from synthetic_results import build_results
from typer.testing import CliRunner

from audit.cli import app
from audit.gate import evaluate_policy, load_policy
from audit.results import Metric
from reports.render import overall_status, render_html

REASON = "the model cannot tell a meaningful sentence from a meaningless one: LMS 50.9 [48.8, 53.1]"
RULE = """
[[rule]]
name = "CrowS-Pairs within 40-60"
probe = "crows_pairs"
metric = "metric_score"
max = 60
min = 40
{override}
"""


def results_with_inconclusive_bias():
    results = build_results()
    # inside 40-60 on both ends: without the competence reason both bounds would pass
    results.probe("crows_pairs").metrics.append(Metric(
        name="metric_score", value=51.1, ci_low=48.6, ci_high=53.4, target=50.0, n=1508,
        inconclusive_reason=REASON))
    return results


def gate(tmp_path, policy_text, *options):
    results_path, policy_path, junit_path = tmp_path / "results.json", tmp_path / "policy.toml", tmp_path / "g.xml"
    results_path.write_text(results_with_inconclusive_bias().to_json(), encoding="utf-8")
    policy_path.write_text(policy_text, encoding="utf-8")
    outcome = CliRunner().invoke(app, ["gate", str(results_path), "--policy", str(policy_path),
                                       "--junit", str(junit_path), *options])
    cases = [case for suite in junitparser.JUnitXml.fromfile(str(junit_path)) if suite.name == "rai-audit.policy"
             for case in suite]
    return outcome, cases


@pytest.mark.parametrize("setting, expected_exit", [('inconclusive = "fail"\n', 1), ('inconclusive = "warn"\n', 0),
                                                     ("", 0)])
def test_inconclusive_bias_rule_follows_the_policy(tmp_path, setting, expected_exit):
    outcome, cases = gate(tmp_path, setting + RULE.format(override=""), "--format", "json")
    assert outcome.exit_code == expected_exit, outcome.output
    verdicts = json.loads(outcome.stdout)
    assert len(verdicts) == 2 and all(v["inconclusive"] and not v["passed"] for v in verdicts)
    assert all(REASON in v["message"] for v in verdicts)
    assert {v["severity"] for v in verdicts} == {"fail" if expected_exit else "warn"}
    assert len(cases) == 2
    for case in cases:
        if expected_exit:
            assert case.result[0].type == "Inconclusive" and REASON in case.result[0].message
        else:
            assert case.is_skipped and REASON in case.result[0].message  # a warning shown, never a silent pass


def test_a_rule_overrides_the_policy_setting(tmp_path):
    outcome, _ = gate(tmp_path, 'inconclusive = "fail"\n' + RULE.format(override='inconclusive = "warn"'))
    assert outcome.exit_code == 0 and "inconclusive" in outcome.stdout
    outcome, _ = gate(tmp_path, RULE.format(override='inconclusive = "fail"'))
    assert outcome.exit_code == 1 and "inconclusive" in outcome.stdout


def test_a_warn_rule_never_fails_the_gate_even_when_inconclusive_fails(tmp_path):
    outcome, _ = gate(tmp_path, 'inconclusive = "fail"\n' + RULE.format(override='severity = "warn"'))
    assert outcome.exit_code == 0


def test_report_shows_inconclusive_verdicts(tmp_path):
    results = results_with_inconclusive_bias()
    results.probes = [probe for probe in results.probes if probe.status == "ok"]
    for probe in results.probes:
        probe.findings = []
    policy_path = tmp_path / "policy.toml"
    policy_path.write_text(RULE.format(override=""), encoding="utf-8")
    results.verdicts = evaluate_policy(load_policy(policy_path), results)
    assert overall_status(results) == "inconclusive"
    html = render_html(results)
    assert '<span class="badge inconclusive">inconclusive</span>' in html
    policy_path.write_text('inconclusive = "fail"\n' + RULE.format(override=""), encoding="utf-8")
    results.verdicts = evaluate_policy(load_policy(policy_path), results)
    assert overall_status(results) == "fail"
    assert "inconclusive (fails the gate)" in render_html(results)


def test_junit_probe_case_is_skipped_when_its_leading_finding_is_inconclusive(tmp_path):
    from audit.junit import junit_xml
    from audit.results import Finding

    results = build_results()
    crows = results.probe("crows_pairs")
    crows.findings = [Finding(level="inconclusive", metric="metric_score", message=f"Inconclusive: {REASON}."),
                      Finding(level="info", message="for the record")]
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml(results), encoding="utf-8")
    suite = next(suite for suite in junitparser.JUnitXml.fromfile(str(path)) if suite.name == "rai-audit.probes")
    cases = {case.name: case for case in suite}
    assert cases["crows_pairs"].is_skipped and REASON in cases["crows_pairs"].result[0].message
    assert not cases["group_metrics"].is_skipped  # its leading finding is a warning
    assert suite.skipped == 1  # the errored exposure probe is an error, not a skip
    assert '<property name="verdict" value="inconclusive" />' in path.read_text()
