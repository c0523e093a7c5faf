"""`gate` and `report` on bad input: impossible policy bounds, malformed figure data, deep JSON, folders — each a
one-line error and exit 2, never a traceback or a verdict."""

from __future__ import annotations

import json

import pytest
from synthetic_results import build_results
from typer.testing import CliRunner

from audit.cli import app

RULE = '[[rule]]\nname = "gap rule"\nprobe = "crows_pairs"\nmetric = "gap"\n'


def _write_results(tmp_path, text=None):
    path = tmp_path / "results.json"
    path.write_text(text if text is not None else build_results().to_json(), encoding="utf-8")
    return path


def _assert_one_line_exit_2(outcome, expected):
    assert outcome.exit_code == 2, outcome.output
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.exception
    assert expected in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1, outcome.stderr


@pytest.mark.parametrize(
    "bounds, expected",
    [
        ("min = 0.5\nmax = 0.1\n", "min = 0.5 is above max = 0.1"),
        ("max = nan\n", "rule.0.max"),
        ("min = nan\n", "rule.0.min"),
        ("max = inf\n", "rule.0.max"),
        ("min = -inf\nmax = 1\n", "rule.0.min"),
    ],
)
def test_impossible_policy_bounds_are_input_errors(tmp_path, bounds, expected):
    policy = tmp_path / "policy.toml"
    policy.write_text(RULE + bounds, encoding="utf-8")
    outcome = CliRunner().invoke(app, ["gate", str(_write_results(tmp_path)), "--policy", str(policy)])
    _assert_one_line_exit_2(outcome, expected)


def _results_with_figure(figure_index: int, data) -> str:
    """The synthetic results as JSON text, with the first probe's figure ``figure_index`` given ``data``."""
    payload = json.loads(build_results().to_json())
    payload["probes"][0]["figures"][figure_index]["data"] = data
    return json.dumps(payload)


BAR, ROC, TOKENS = 0, 1, 3  # positions of the figure kinds in synthetic_results.build_results


@pytest.mark.parametrize(
    "figure_index, data, expected",
    [
        (BAR, {"values": [0.4, 0.6]}, "data labels must be a list of texts"),
        (BAR, {"labels": ["a", "b"], "values": ["high", "low"]}, "data values must be a list of numbers"),
        (BAR, {"labels": ["a", "b"], "values": [0.4]}, "a list of 2 numbers or nulls"),
        (BAR, {"labels": ["a"], "values": [0.4], "reference": "half"}, "data reference must be a number"),
        (ROC, {"series": [{"label": "x", "x": [0.1, 1]}]}, "data series[0].y must be a list"),
        (ROC, {"series": "LiRA"}, "data series must be a list of objects"),
        (ROC, {}, "data series must be a list of objects"),
        (TOKENS, {}, "data items must be a list of objects"),
        (TOKENS, {"items": [{"title": "t", "tokens": ["a", "b"]}]}, "items[0].scores must be a list"),
        (TOKENS, {"items": [{"tokens": [["a"]], "scores": [1.0]}]}, "items[0].tokens must be a list of texts"),
    ],
)
@pytest.mark.parametrize("command", ["report", "gate"])
def test_malformed_figure_data_is_a_results_error(tmp_path, command, figure_index, data, expected):
    path = _write_results(tmp_path, _results_with_figure(figure_index, data))
    _assert_one_line_exit_2(_invoke(command, path, tmp_path), expected)


def _invoke(command: str, results_path, tmp_path):
    if command == "report":
        arguments = ["report", str(results_path), "--out", str(tmp_path / "report.html")]
    else:
        policy = tmp_path / "policy.toml"
        policy.write_text(RULE + "max = 1\n", encoding="utf-8")
        arguments = ["gate", str(results_path), "--policy", str(policy)]
    outcome = CliRunner().invoke(app, arguments)
    assert not (tmp_path / "report.html").exists()
    return outcome


@pytest.mark.parametrize("command", ["report", "gate"])
def test_bare_nan_in_results_is_not_json(tmp_path, command):
    text = build_results().to_json().replace('"values": [\n', '"values": [\n NaN,\n', 1)
    text = text.replace('"labels": [\n', '"labels": [\n "extra",\n', 1)
    _assert_one_line_exit_2(_invoke(command, _write_results(tmp_path, text), tmp_path), "NaN is not a JSON number")


@pytest.mark.parametrize("command", ["report", "gate"])
def test_deeply_nested_json_is_a_results_error(tmp_path, command):
    deep = '{"schema_version": "1.0", "config": ' + "[" * 100_000 + "]" * 100_000 + "}"
    _assert_one_line_exit_2(_invoke(command, _write_results(tmp_path, deep), tmp_path), "nested too deeply")


@pytest.mark.parametrize("command", ["report", "gate"])
def test_a_folder_as_results_file_is_a_results_error(tmp_path, command):
    folder = tmp_path / "results.json"
    folder.mkdir()
    _assert_one_line_exit_2(_invoke(command, folder, tmp_path), "is a folder; expected a results.json file")
