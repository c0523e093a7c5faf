"""Render the audit report (and the comparison report) from results alone.

``render_html(results)`` is a pure function of an ``AuditResults``: the same results.json always renders to the
same HTML, so ``rai-audit report results.json`` reproduces the report written by ``rai-audit run``. Templates are
packaged with the code (PackageLoader), autoescaping is always on and undefined names are errors; the only markup
not produced by a template is matplotlib's SVG, whose writer escapes text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from audit.results import FINDING_SEVERITY, AuditResults, Figure, Metric, ProbeResult
from reports.charts import render_chart

FAMILY_ORDER = ("bias", "fairness", "privacy", "attribution")
FAMILY_TITLES = {
    "bias": "Social bias",
    "fairness": "Group fairness",
    "privacy": "Privacy leakage",
    "attribution": "Explanations (attributions)",
}


@lru_cache(maxsize=1)
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,  # untrusted text (sentences, labels, group names) must never become markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["num"] = format_number
    environment.filters["ci"] = format_interval
    environment.globals["family_titles"] = FAMILY_TITLES
    return environment


def format_number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if "." in f"{value:.{digits}f}" else f"{value}"
    return str(value)


def format_interval(metric: Metric) -> str:
    if metric.ci_low is None or metric.ci_high is None:
        return ""
    return f"[{format_number(metric.ci_low)}, {format_number(metric.ci_high)}]"


def _direction(metric: Metric) -> str:
    if metric.higher_is_better is True:
        return "higher is better"
    if metric.higher_is_better is False:
        return "lower is better"
    if metric.target is not None:
        return f"closer to {format_number(metric.target)} is better"
    return ""


def _token_heatmap(item: dict[str, Any]) -> list[dict[str, Any]]:
    """Token cells with a background colour: blue for evidence for the prediction, red against, by size."""
    scores = [None if score is None else float(score) for score in item["scores"]]
    scale = max((abs(score) for score in scores if score is not None), default=0.0) or 1.0
    cells = []
    for token, score in zip(item["tokens"], scores):
        strength = 0.0 if score is None else min(1.0, abs(score) / scale)  # no score: no colour
        rgb = "43,108,176" if score is None or score >= 0 else "197,48,48"
        cells.append({"text": str(token), "score": score, "style": f"background: rgba({rgb},{strength:.2f})"})
    return cells


def _figure_view(figure: Figure) -> dict[str, Any]:
    view: dict[str, Any] = {"figure": figure, "svg": None, "token_rows": []}
    if figure.kind == "tokens":
        view["token_rows"] = [
            {"title": str(item.get("title", "")), "cells": _token_heatmap(item)} for item in figure.data["items"]
        ]
    else:
        view["svg"] = Markup(_chart_svg(figure.model_dump_json()))  # matplotlib's SVG writer escapes all text
    return view


@lru_cache(maxsize=64)
def _chart_svg(figure_json: str) -> str:
    """A chart, drawn once per distinct figure: a run renders its report twice (once to time the rendering)."""
    return render_chart(Figure.model_validate_json(figure_json))


def _probe_view(result: ProbeResult) -> dict[str, Any]:
    level = max((finding.level for finding in result.findings), key=FINDING_SEVERITY.get, default="info")
    if result.status == "error":
        level = "fail"
    return {
        "result": result,
        "level": level,
        "anchor": f"probe-{result.probe}",
        "metrics": [{"metric": metric, "direction": _direction(metric)} for metric in result.metrics],
        "figures": [_figure_view(figure) for figure in result.figures],
    }


def overall_status(results: AuditResults) -> str:
    """fail if a policy rule or probe failed or an enforced self-check missed a planted effect, warn if anything
    warns or errored, inconclusive if anything could not be decided, else pass."""
    if any(not verdict.passed and verdict.severity == "fail" for verdict in results.verdicts):
        return "fail"
    levels = [finding.level for probe in results.probes for finding in probe.findings]
    if any(probe.status == "error" for probe in results.probes):
        levels.append("warn")
    levels += ["inconclusive" if verdict.inconclusive else "warn" for verdict in results.verdicts if not verdict.passed]
    if results.self_check is not None and not results.self_check.recovered:  # the probes missed a known answer
        levels.append("fail" if results.self_check.enforced else "warn")
    return max(levels, key=FINDING_SEVERITY.get, default="pass") if levels else "pass"


def _summary(results: AuditResults) -> list[dict[str, Any]]:
    rows = []
    for probe in results.probes:
        if probe.status != "ok":
            rows.append({"probe": probe.probe, "family": probe.family, "level": "warn" if probe.status == "error"
                         else "info", "message": f"{probe.probe} {probe.status}: {probe.message}", "metric": None})
            continue
        for finding in probe.findings:
            metric = None
            if finding.metric:
                metric = next((m for m in probe.metrics if m.name == finding.metric and m.group is None), None)
            rows.append({"probe": probe.probe, "family": probe.family, "level": finding.level,
                         "message": finding.message, "metric": metric})
    rows.sort(key=lambda row: -FINDING_SEVERITY[row["level"]])
    return rows


def render_html(results: AuditResults) -> str:
    """The self-contained audit report (inline CSS and SVG, no external requests)."""
    families = []
    for family in FAMILY_ORDER:
        members = [_probe_view(result) for result in results.probes if result.family == family]
        if members:
            families.append({"name": family, "title": FAMILY_TITLES[family], "probes": members})
    template = _environment().get_template("audit.html.j2")
    return template.render(
        results=results,
        status=overall_status(results),
        summary=_summary(results),
        families=families,
        card=results.subject.model_card,
        fingerprint=results.fingerprint(),  # embedded so that a report can be matched with its results
    )


def render_compare_html(comparison: Any) -> str:
    """The comparison report for ``rai-audit compare`` (see audit.compare.Comparison)."""
    template = _environment().get_template("compare.html.j2")
    return template.render(comparison=comparison)


def render_leaderboard_html(leaderboard: Any) -> str:
    """The sweep leaderboard for ``rai-audit sweep`` (see audit.sweep.leaderboard.Leaderboard)."""
    template = _environment().get_template("leaderboard.html.j2")
    return template.render(board=leaderboard)
