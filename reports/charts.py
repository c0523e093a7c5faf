"""Charts for the report: matplotlib figures serialised to inline SVG.

Charts are drawn from ``Figure`` data (never stored as images). Text in the SVG is written by matplotlib's SVG
writer, which escapes XML special characters, and math text ("$...$") is switched off, so group names and labels
cannot become markup of either kind. Output is made
deterministic (fixed hash salt, no date metadata) so the same results render to the same HTML.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless; no GUI backend is ever needed
from matplotlib.figure import Figure as MplFigure

from audit.results import Figure

# Applied while each chart is drawn and saved (not set globally, so nothing else can undo it).
_STYLE = {
    "svg.fonttype": "none",  # keep text as text: smaller files, selectable, escaped by the writer
    # Labels are text, never markup: a group named "$\\frac{1}{0}$" is shown as written, not parsed as math
    # (mathtext would fail on it and take the whole report down).
    "text.parse_math": False,
    "svg.hashsalt": "rai-audit",  # deterministic element ids
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

_PALETTE = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#4a5568"]


def _to_svg(figure: MplFigure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    # drop the XML prolog and DOCTYPE: the SVG is embedded in HTML
    return svg[svg.index("<svg") :]


def _numbers(values: list[Any]) -> list[float]:
    return [math.nan if value is None else float(value) for value in values]


def bar_chart(figure: Figure) -> str:
    data = figure.data
    # long group names would squeeze the axes to nothing; the full names are in the tables
    labels = [str(label) if len(str(label)) <= 36 else str(label)[:35] + "…" for label in data["labels"]]
    values = _numbers(data["values"])
    height = max(1.6, 0.32 * len(labels) + 0.8)
    chart = MplFigure(figsize=(7.2, height), layout="constrained")
    axes = chart.subplots()
    positions = list(range(len(labels)))
    axes.barh(positions, values, color=_PALETTE[0], height=0.6)
    if data.get("ci_low") and data.get("ci_high"):
        low, high = _numbers(data["ci_low"]), _numbers(data["ci_high"])
        # Drawn from its two ends, not as value ± error: a percentile interval need not contain the estimate.
        low = [value if math.isnan(lo) else lo for value, lo in zip(values, low)]
        high = [value if math.isnan(hi) else hi for value, hi in zip(values, high)]
        centres = [(lo + hi) / 2 for lo, hi in zip(low, high)]
        half_widths = [abs(hi - lo) / 2 for lo, hi in zip(low, high)]
        axes.errorbar(centres, positions, xerr=half_widths, fmt="none", ecolor="#1a202c", capsize=3, lw=1)
    if data.get("reference") is not None:
        axes.axvline(float(data["reference"]), color="#c53030", ls="--", lw=1)
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.set_xlabel(figure.x_label)
    return _to_svg(chart)


def line_chart(figure: Figure) -> str:
    data = figure.data
    chart = MplFigure(figsize=(6.4, 3.2), layout="constrained")
    axes = chart.subplots()
    for index, series in enumerate(data["series"]):
        colour = _PALETTE[index % len(_PALETTE)]
        x, y = _numbers(series["x"]), _numbers(series["y"])
        axes.plot(x, y, marker="o" if len(x) < 30 else None, ms=3, color=colour, label=str(series["label"]))
        if series.get("ci_low") and series.get("ci_high"):
            axes.fill_between(x, _numbers(series["ci_low"]), _numbers(series["ci_high"]), color=colour, alpha=0.15)
    if figure.kind == "roc":
        axes.plot([1e-4, 1], [1e-4, 1], ls=":", color="#718096", label="chance")
    if data.get("reference") is not None:
        axes.axhline(float(data["reference"]), color="#c53030", ls="--", lw=1)
    if figure.log_scale:
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlim(1e-4, 1)
        axes.set_ylim(1e-4, 1)
        decades = [1e-4, 1e-3, 1e-2, 1e-1, 1]
        labels = ["0.0001", "0.001", "0.01", "0.1", "1"]  # plain labels: mathtext is the slowest part
        axes.set_xticks(decades, labels)
        axes.set_yticks(decades, labels)
        axes.minorticks_off()  # log-axis minor ticks cost more to lay out than the rest of the chart
    axes.set_xlabel(figure.x_label)
    axes.set_ylabel(figure.y_label)
    if len(data["series"]) > 1 or figure.kind == "roc":
        axes.legend(frameon=False, fontsize=8)
    return _to_svg(chart)


def render_chart(figure: Figure) -> str | None:
    """Inline SVG for a bar/line/roc figure; None for kinds drawn in HTML (token heatmaps)."""
    with matplotlib.rc_context(_STYLE):
        if figure.kind == "bar":
            return bar_chart(figure)
        if figure.kind in ("line", "roc"):
            return line_chart(figure)
    return None
