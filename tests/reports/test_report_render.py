"""The HTML report: self-contained, escaped, deterministic, fast."""

import re

from audit.results import Figure
from reports import render_html
from reports.charts import render_chart
from reports.render import overall_status


def test_report_has_every_section_and_escapes_untrusted_text(synthetic_results):
    html = render_html(synthetic_results)
    for heading in ["Executive summary", "Model card", "Social bias", "Group fairness", "Privacy leakage",
                    "Explanations (attributions)", "Appendix: provenance and configuration"]:
        assert heading in html
    # the payload appears only escaped: no live script tag or event handler from data
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert "not defined" in html and "one class only in group" in html


def test_report_is_self_contained(synthetic_results):
    html = render_html(synthetic_results)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html
    assert html.count("<svg") == 4 * 3  # bar, roc and line chart per probe; tokens drawn in HTML


def test_report_is_deterministic(synthetic_results):
    assert render_html(synthetic_results) == render_html(synthetic_results)


def test_overall_status_reflects_findings(synthetic_results):
    assert overall_status(synthetic_results) == "warn"
    synthetic_results.probes[0].findings[0].level = "fail"
    assert overall_status(synthetic_results) == "fail"


def test_report_size_stays_small(synthetic_results):
    # render time is measured in benchmarks/render_speed.py (no absolute timings in tests)
    html = render_html(synthetic_results)
    assert len(html.encode()) < 3 * 1024 * 1024


def test_bar_chart_draws_an_interval_that_excludes_its_estimate():
    """A percentile bootstrap interval need not contain the point estimate (found by the fuzz test: the chart
    raised on a value below its ci_low); one open end is drawn as ending at the estimate."""
    figure = Figure(name="bars", title="t", kind="bar",
                    data={"labels": ["below", "open"], "values": [0.0, 0.5], "ci_low": [0.3, None],
                          "ci_high": [0.5, 0.7]})
    assert render_chart(figure).startswith("<svg")
