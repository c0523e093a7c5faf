"""HTML reports rendered from the result schema alone (``audit.results``), through Jinja2 templates."""

from reports.render import render_compare_html, render_html, render_leaderboard_html

__all__ = ["render_compare_html", "render_html", "render_leaderboard_html"]
