"""Text from results is text in charts too: math-text dollars, backslashes and tags are drawn as written."""

from __future__ import annotations

import html

import pytest
from synthetic_results import build_results

from audit.results import Figure
from reports import render_html
from reports.charts import render_chart

HOSTILE = ["$\\frac{1}{0}$", "$$", "a lone $ sign", "back\\slash \\alpha", "<script>alert(1)</script>", "$x^$"]


def _figures(text: str) -> list[Figure]:
    return [
        Figure(name="bars", title=text, kind="bar", x_label=text, y_label=text,
               data={"labels": [text, f"{text} 2"], "values": [0.2, 0.4], "ci_low": [0.1, 0.3],
                     "ci_high": [0.3, 0.5]}),
        Figure(name="lines", title=text, kind="line", x_label=text, y_label=text,
               data={"series": [{"label": text, "x": [1, 2], "y": [0.1, 0.2]},
                                {"label": f"{text} b", "x": [1, 2], "y": [0.3, 0.1]}]}),
        Figure(name="roc", title=text, kind="roc", log_scale=True, x_label=text,
               data={"series": [{"label": text, "x": [0.001, 1], "y": [0.01, 1]}]}),
    ]


@pytest.mark.parametrize("text", HOSTILE)
def test_chart_labels_are_drawn_as_written(text):
    for figure in _figures(text):
        svg = render_chart(figure)
        assert html.escape(text, quote=False) in svg, figure.kind
        assert "<script>" not in svg


@pytest.mark.parametrize("text", HOSTILE)
def test_report_with_math_like_group_names_renders(text):
    results = build_results(n_rows=2)
    probe = results.probes[0]
    probe.figures = [*_figures(text), Figure(name="tokens", title=text, kind="tokens",
                                              data={"items": [{"title": text, "tokens": [text], "scores": [1.0]}]})]
    page = render_html(results)
    assert html.escape(text, quote=False) in page and "<script>alert(1)</script>" not in page
