"""results.json is strict JSON: no NaN or infinity anywhere, and a probe whose numbers were not finite says so."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError
from synthetic_results import build_results

from audit.results import Example, Figure, Metric, ProbeResult, RunInfo, Table
from probes.base import Probe, ProbeContext
from reports import render_html

NAN, INF = math.nan, math.inf


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"bare {constant} in results.json")

    return json.loads(text, parse_constant=refuse)


def _probe_with_non_finite_outputs() -> ProbeResult:
    return ProbeResult(
        probe="membership", version="1", family="privacy", citation="c",
        tables=[Table(name="per_group", title="t", columns=["group", "rate"], rows=[["a", NAN], ["b", 0.5]])],
        figures=[Figure(name="bars", title="b", kind="bar", data={"labels": ["a", "b"], "values": [INF, 0.2],
                                                                   "ci_low": [0.1, -INF], "ci_high": [0.3, 0.4]}),
                 Figure(name="tokens", title="t", kind="tokens",
                        data={"items": [{"title": "x", "tokens": ["a", "b"], "scores": [NAN, 0.5]}]})],
        examples=[Example(title="worst", fields={"score": NAN, "text": "a b"})],
        per_example={"example_ids": ["e1", "e2"], "score_loss": [0.1, NAN]},
    )


def test_non_finite_probe_outputs_are_left_empty_with_a_warning():
    result = _probe_with_non_finite_outputs()
    assert result.tables[0].rows[0] == ["a", None]
    assert result.figures[0].data["values"] == [None, 0.2] and result.figures[0].data["ci_low"] == [0.1, None]
    assert result.figures[1].data["items"][0]["scores"] == [None, 0.5]
    assert result.examples[0].fields["score"] is None and result.per_example["score_loss"] == [0.1, None]
    (warning,) = result.warnings
    assert warning.startswith("6 computed value(s) were not finite (NaN or infinity)")
    assert "table 'per_group'[0][1]" in warning and "and 3 more" in warning
    results = build_results()
    results.probes.append(result)
    payload = _strict_json(results.to_json())
    assert payload["probes"][-1]["warnings"] == [warning]
    assert "not finite" in render_html(results)  # the report shows the warning and draws the gaps


@pytest.mark.parametrize("value", [NAN, INF, -1.0])
def test_durations_are_finite_and_not_negative(value):
    with pytest.raises(ValidationError):
        ProbeResult(probe="p", version="1", family="bias", citation="c", duration_s=value)
    with pytest.raises(ValidationError):
        RunInfo(id="r", started="s", duration_s=value, seed=0, threads=1, package_versions={})


def test_non_finite_free_form_records_are_left_empty():
    results = build_results()
    payload = json.loads(results.to_json())
    payload["config"]["probes"] = {"settings": {"x": {"rate": NAN}}}
    payload["subject"]["model_card"] = {"metrics": {"test loss": INF}}
    cleaned = type(results).model_validate(payload)
    _strict_json(cleaned.to_json())
    assert cleaned.config["probes"]["settings"]["x"]["rate"] is None


def test_to_json_refuses_a_nan_set_after_validation():
    results = build_results()
    results.probes[0].duration_s = NAN  # attributes are not re-validated on assignment
    with pytest.raises(ValueError, match="not JSON compliant"):
        results.to_json()


class _NanMetricProbe(Probe):
    name = "nan_metric_test"
    family = "bias"
    citation = "test"
    description = "computes a NaN metric"

    def run(self, ctx):
        return self.new_result(metrics=[Metric(name="gap", value=NAN, ci_low=NAN, ci_high=NAN)])


def test_a_non_finite_metric_is_a_one_line_probe_error():
    result = _NanMetricProbe().execute(ProbeContext(subject=None, seed=0))
    assert result.status == "error"
    assert result.message == ("invalid result: metric 'gap' value is nan (not finite): the computation gave NaN or "
                              "infinity; an undefined metric is value=None with undefined_reason")
