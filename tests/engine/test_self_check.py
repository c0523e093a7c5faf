"""The self-check (audit.self_check): planted effects judged on hand-built ProbeResults, shown in the report, and
the exit code of `rai-audit run` on a tiny scenario subject."""

from __future__ import annotations

import json

import jsonschema
import pytest
from synthetic_results import XSS, build_results
from test_cli_validation import audit_config, invoke

from audit.results import SCHEMA_PATH, AuditResults, Metric, ProbeResult, SelfCheck, SelfCheckRow
from audit.self_check import PlantedTruth, evaluate_self_check
from reports.render import overall_status, render_html

SCENARIO = {"kind": "label_flip", "group_column": "gender", "advantaged_group": "male",
            "disadvantaged_group": "female", "positive_label_name": "accepted", "flip_rate": 0.8,
            "flip_policy": "lowest_merit", "n_flipped": 120, "flipped_ids": ["a", "b"]}
PLANTED = PlantedTruth(scenario=SCENARIO, canary_repeats=(0, 1, 4, 16))
EFFECTS = ["planted_fairness_gap", "counterfactual_flips", "identity_attribution", "membership", "canary_exposure"]


def result(probe: str, *metrics: Metric, status: str = "ok", message: str = "", **config) -> ProbeResult:
    return ProbeResult(probe=probe, version="1", family="bias", citation="test", status=status, message=message,
                       metrics=list(metrics), config=config)


def interval(name: str, value: float, low: float, high: float, group: str | None = None, n: int = 100) -> Metric:
    return Metric(name=name, value=value, ci_low=low, ci_high=high, group=group, n=n)


def probes_recovering_everything() -> dict[str, ProbeResult]:
    """Each probe's metric with the planted effect clearly inside its interval."""
    return {
        "group_metrics": result("group_metrics",
                                interval("selection_rate_gap", 0.25, 0.15, 0.35, "gender=male vs gender=female")),
        "counterfactual": result("counterfactual", interval("flip_rate", 0.06, 0.03, 0.09, "gender"),
                                 interval("flip_rate", 0.0, 0.0, 0.0, "race")),
        "identity_attribution": result("identity_attribution", interval("identity_attribution_share", 0.3, 0.2, 0.4),
                                       interval("identity_token_fraction", 0.08, 0.07, 0.09), category="gender"),
        "membership": result("membership", interval("max_auc", 0.62, 0.56, 0.68)),
        "exposure": result("exposure", interval("exposure", 1.4, 1.0, 1.8, "control", 10),
                           interval("exposure", 1.5, 1.0, 2.0, "repeats_1", 10),
                           interval("exposure", 3.0, 2.0, 4.0, "repeats_4", 10),
                           interval("exposure", 8.0, 6.0, 10.0, "repeats_16", 10)),
    }


def check(probes: dict[str, ProbeResult], planted: PlantedTruth = PLANTED, **options) -> SelfCheck:
    return evaluate_self_check(list(probes.values()), planted, **options)


def rows_by_effect(self_check: SelfCheck) -> dict[str, SelfCheckRow]:
    return {row.effect: row for row in self_check.rows}


def test_every_planted_effect_recovered():
    outcome = check(probes_recovering_everything(), enforced=True)
    rows = rows_by_effect(outcome)
    assert list(rows) == EFFECTS
    assert {row.status for row in rows.values()} == {"recovered"} and outcome.recovered and outcome.enforced
    assert rows["canary_exposure"].group == "repeats_16" and rows["canary_exposure"].value == 8.0
    assert "16× > 4× > controls" in rows["canary_exposure"].condition
    assert "0.250 (95% CI 0.150 to 0.350)" in rows["planted_fairness_gap"].measured
    assert outcome.planted["scenario"]["flip_rate"] == 0.8 and "flipped_ids" not in outcome.planted["scenario"]
    assert outcome.planted["canary_repeats"] == [0, 1, 4, 16]


MISSED = {  # per effect: the probe's result with the effect absent or not resolved by its interval
    "planted_fairness_gap": result("group_metrics",
                                   interval("selection_rate_gap", 0.05, -0.02, 0.12, "gender=male vs gender=female")),
    "counterfactual_flips": result("counterfactual", interval("flip_rate", 0.0, 0.0, 0.0, "gender")),
    "identity_attribution": result("identity_attribution", interval("identity_attribution_share", 0.1, 0.05, 0.15),
                                   interval("identity_token_fraction", 0.08, 0.07, 0.09), category="gender"),
    "membership": result("membership", interval("max_auc", 0.53, 0.49, 0.57)),
    # the measured default run: 16× below 4×, and 16×'s interval overlaps the controls'
    "canary_exposure": result("exposure", interval("exposure", 0.88, 0.5, 1.3, "control", 10),
                              interval("exposure", 0.48, 0.2, 0.8, "repeats_1", 10),
                              interval("exposure", 1.13, 0.7, 1.6, "repeats_4", 10),
                              interval("exposure", 0.99, 0.6, 1.4, "repeats_16", 10)),
}


@pytest.mark.parametrize("effect", EFFECTS)
def test_a_missed_effect_is_not_recovered_and_fails_the_check(effect):
    probes = probes_recovering_everything()
    probes[MISSED[effect].probe] = MISSED[effect]
    outcome = check(probes)
    rows = rows_by_effect(outcome)
    assert rows[effect].status == "not recovered", rows[effect]
    assert all(row.status == "recovered" for name, row in rows.items() if name != effect)
    assert not outcome.recovered and rows[effect].measured


def test_the_gap_is_read_in_the_planted_direction_whichever_group_is_the_reference():
    probes = probes_recovering_everything()
    probes["group_metrics"] = result("group_metrics", interval("selection_rate_gap", -0.25, -0.35, -0.15,
                                                               "gender=female vs gender=male"))
    row = rows_by_effect(check(probes))["planted_fairness_gap"]
    assert row.status == "recovered" and (row.value, row.ci_low, row.ci_high) == (0.25, 0.15, 0.35)
    probes["group_metrics"] = result("group_metrics", interval("selection_rate_gap", 0.25, 0.15, 0.35,
                                                               "gender=female vs gender=male"))  # women favoured
    assert rows_by_effect(check(probes))["planted_fairness_gap"].status == "not recovered"


@pytest.mark.parametrize(("means", "recovered"), [
    ({"control": (1.4, 1.0, 1.8), "repeats_4": (3.0, 2.0, 4.0), "repeats_16": (2.5, 2.0, 3.0)}, False),  # 16× < 4×
    ({"control": (1.4, 1.0, 2.2), "repeats_4": (1.8, 1.0, 2.5), "repeats_16": (3.0, 2.1, 4.0)}, False),  # overlap
    ({"control": (1.4, 1.0, 2.0), "repeats_4": (1.3, 1.0, 2.5), "repeats_16": (3.0, 2.1, 4.0)}, False),  # 4× < ctl
    ({"control": (1.4, 1.0, 2.0), "repeats_4": (1.5, 1.0, 2.5), "repeats_16": (3.0, 2.1, 4.0)}, True),
])
def test_canary_exposure_needs_the_order_and_the_separation(means, recovered):
    probes = probes_recovering_everything()
    probes["exposure"] = result("exposure", *(interval("exposure", *values, group, 10)
                                              for group, values in means.items()))
    row = rows_by_effect(check(probes, PlantedTruth(canary_repeats=(0, 4, 16))))["canary_exposure"]
    assert row.status == ("recovered" if recovered else "not recovered"), row


def test_rows_whose_probe_did_not_measure_are_not_checked_with_the_reason():
    probes = probes_recovering_everything()
    del probes["membership"]
    probes["counterfactual"] = result("counterfactual", status="skipped",
                                      message="no evaluation text mentions an identity term\nsecond line")
    probes["identity_attribution"] = result("identity_attribution", status="error", message="RuntimeError: boom")
    probes["group_metrics"] = result("group_metrics", Metric(
        name="selection_rate_gap", value=None, group="gender=male vs gender=female",
        undefined_reason="a group has no examples"))
    probes["exposure"] = result("exposure", interval("exposure", 1.4, 1.0, 1.8, "control"))  # no planted group
    outcome = check(probes)
    rows = rows_by_effect(outcome)
    assert {row.status for row in rows.values()} == {"not checked"}
    assert rows["membership"].reason == "the membership probe did not run in this audit"
    assert rows["counterfactual_flips"].reason == ("the counterfactual probe was skipped: no evaluation text "
                                                   "mentions an identity term")
    assert rows["identity_attribution"].reason == "the identity_attribution probe ended in error: RuntimeError: boom"
    assert "not defined (a group has no examples)" in rows["planted_fairness_gap"].reason
    assert "no exposure for 'repeats_16'" in rows["canary_exposure"].reason
    assert outcome.recovered  # nothing checked was missed: "not checked" is not a failure


def test_what_cannot_be_judged_from_the_planted_truth_is_not_checked():
    probes = probes_recovering_everything()
    probes["identity_attribution"] = probes["identity_attribution"].model_copy(update={"config": {"category": "race"}})
    rows = rows_by_effect(check(probes, PlantedTruth(scenario=SCENARIO, canary_repeats=(4, 16))))
    assert "'race' identity words" in rows["identity_attribution"].reason
    assert "no never-inserted controls" in rows["canary_exposure"].reason
    control_scenario = rows_by_effect(check(probes, PlantedTruth(scenario={**SCENARIO, "flip_rate": 0.0})))
    assert [control_scenario[effect].status for effect in EFFECTS[:4]] == ["not checked"] * 3 + ["recovered"]
    assert "planted no bias" in control_scenario["planted_fairness_gap"].reason
    assert "canary_exposure" not in control_scenario  # no canaries planted: no row
    assert evaluate_self_check(list(probes.values()), PlantedTruth()) is None


def with_self_check(self_check: SelfCheck) -> AuditResults:
    results = build_results(n_rows=3)
    results.self_check = self_check
    return results


def test_report_shows_the_self_check_near_the_top_and_escapes_its_text():
    probes = probes_recovering_everything()
    probes["membership"] = result("membership", interval("max_auc", 0.5, 0.45, 0.55))
    del probes["counterfactual"]
    outcome = check(probes, enforced=True)
    outcome.rows[0] = outcome.rows[0].model_copy(update={"measured": XSS, "expected": XSS})
    html = render_html(with_self_check(outcome))
    section = html[html.index('id="self-check"'):html.index('id="summary"')]
    assert html.index('id="self-check"') < html.index('id="model-card"')
    assert section.count(">yes</span>") == 3 and section.count(">no</span>") == 1
    assert section.count(">not checked</span>") == 1 and "the counterfactual probe did not run" in section
    assert "<script>" not in section and "&lt;script&gt;" in section
    assert "exit with code 3" in section and "not all recovered" in section
    assert overall_status(with_self_check(outcome)) == "fail"
    assert overall_status(with_self_check(outcome.model_copy(update={"enforced": False}))) != "pass"


def test_results_json_round_trips_the_self_check():
    results = with_self_check(check(probes_recovering_everything()))
    again = AuditResults.model_validate(json.loads(results.to_json()))
    assert again.self_check == results.self_check and again.schema_version == "1.3"
    assert AuditResults.model_validate(json.loads(build_results(n_rows=1).to_json())).self_check is None


@pytest.mark.parametrize(("extra", "exit_code", "enforced"), [
    ("fail_on_self_check = true", 3, True),
    ("fail_on_self_check = true\nquick = true", 0, False),  # a smoke test: shown, not enforced
    ("", 0, False),
])
def test_run_exits_3_when_an_enforced_self_check_misses_a_planted_effect(tmp_path, tiny_classifier_dir, extra,
                                                                         exit_code, enforced):
    # The tiny classifier was never trained on its scenario's flipped labels: it cannot show the planted gap.
    config = audit_config(tmp_path, tiny_classifier_dir, ["group_metrics"], extra=extra)
    outcome = invoke("run", config, "--out", tmp_path / "out")
    assert outcome.exit_code == exit_code, outcome.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = {row["effect"]: row for row in results["self_check"]["rows"]}
    assert results["self_check"]["enforced"] is enforced and results["schema_version"] == "1.3"
    jsonschema.validate(results, json.loads(SCHEMA_PATH.read_text()))
    assert rows["planted_fairness_gap"]["status"] == "not recovered", rows["planted_fairness_gap"]
    assert rows["counterfactual_flips"]["reason"] == "the counterfactual probe did not run in this audit"
    assert "canary_exposure" not in rows  # the tiny classifier's folder has no canary manifest
    assert 'id="self-check"' in (tmp_path / "out" / "report.html").read_text()
    assert "self-check Planted fairness gap: not recovered" in outcome.stderr


def test_the_planted_truth_comes_from_the_task_data_and_the_canary_manifest(tmp_path):
    from audit.data.scenarios import make_calibration_scenario
    from audit.runner import ResolvedSubject, planted_truth
    from audit.train.canaries import draw_canaries
    from audit.train.config import CanarySection

    manifest = draw_canaries(CanarySection(count=2, repeats=[1, 4, 16])).save(tmp_path)
    task = make_calibration_scenario(n_examples=60, bias_strength=0.5, seed=0)
    truth = planted_truth(ResolvedSubject(model_dir=tmp_path, mlm_dir=None, pretrained_dir=None, task=task,
                                          canary_manifest=manifest, finetune_record=None))
    assert truth.canary_repeats == (0, 1, 4, 16)
    assert truth.scenario["flip_rate"] == 0.5 and truth.scenario["advantaged_group"] == "male"
    manifest.write_text("{not json")  # the exposure probe reports a broken manifest; the self-check leaves it out
    broken = planted_truth(ResolvedSubject(model_dir=tmp_path, mlm_dir=None, pretrained_dir=None, task=None,
                                           canary_manifest=manifest, finetune_record=None))
    assert broken.empty
