"""Text from results and policies reaches the terminal with its control codes made visible, never obeyed."""

from __future__ import annotations

import pytest
from synthetic_results import build_results
from typer.testing import CliRunner

from audit import cli
from audit.cli import app
from audit.terminal import printable

HYPERLINK = "\x1b]8;;http://evil\x07click\x1b]8;;\x07"
CLEAR = "\x1b[2J"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


def _toml_string(text: str) -> str:
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 32 or c == "\x9b" else c for c in text) + '"'


def _column(table_text: str, index: int) -> str:
    """One column of a rich table's body, its wrapped lines joined without spaces."""
    cells = [line.split("│")[index + 1] for line in table_text.splitlines() if line.startswith("│")]
    return "".join(cell.replace(" ", "") for cell in cells)


def _assert_no_raw_controls(text: str) -> None:
    for control in RAW_CONTROLS:
        assert control not in text, repr(text)


def test_printable_escapes_c0_c1_del_and_bidi_controls():
    assert printable(f"a{CLEAR}b") == "a\\x1b[2Jb"
    assert printable("x\x9b31m\x7f\u202eevil\ttab\nline") == "x\\x9b31m\\x7f\\u202eevil\\x09tab\\x0aline"
    assert printable("naïve — ok $x$ <b>") == "naïve — ok $x$ <b>"


def test_gate_prints_control_codes_from_results_and_policy_as_text(tmp_path):
    results = build_results()
    results.probes[0].metrics[1].group = f"grp{HYPERLINK}{CLEAR}"
    results.probes[-1].message = f"msg{HYPERLINK}{CLEAR}"
    results_path = tmp_path / "results.json"
    results_path.write_text(results.to_json(), encoding="utf-8")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[rule]]\nname = {_toml_string("rule" + HYPERLINK + CLEAR)}\nprobe = "crows_pairs"\nmetric = "gap"\n'
        f'group = {_toml_string("grp" + HYPERLINK + CLEAR)}\nmax = 0.1\n'
        '[[rule]]\nname = "exposure rule"\nprobe = "exposure"\nmetric = "x"\nmax = 1\n', encoding="utf-8")
    outcome = CliRunner().invoke(app, ["gate", str(results_path), "--policy", str(policy)])
    assert outcome.exit_code == 1, outcome.output
    _assert_no_raw_controls(outcome.output)
    assert "rule\\x1b]8;;http://evil\\x07click" in _column(outcome.output, 0)  # rich may cut the rest
    assert "grp\\x1b]8;;http://evil\\x07click" in _column(outcome.output, 2)
    assert "msg\\x1b]8;;http://evil\\x07click" in _column(outcome.output, 5)


def test_error_lines_print_control_codes_as_text(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\nname = "r"\nprobe = "crows_pairs"\nmetric = "gap"\nmax = 1\n', encoding="utf-8")
    missing = tmp_path / f"results{CLEAR}.json"
    outcome = CliRunner().invoke(app, ["gate", str(missing), "--policy", str(policy)])
    assert outcome.exit_code == 2
    _assert_no_raw_controls(outcome.stderr)
    assert "results\\x1b[2J.json: file not found" in outcome.stderr


def test_run_summary_prints_control_codes_as_text(capsys):
    results = build_results()
    results.probes[0].probe = f"probe{HYPERLINK}{CLEAR}[bold]"
    cli._print_summary(results, {})
    printed = capsys.readouterr().err
    _assert_no_raw_controls(printed)
    assert "probe\\x1b]8;;http://evil" in _column(printed, 0)  # rich may cut the rest


@pytest.mark.parametrize("command", ["report", "compare"])
def test_other_commands_print_no_raw_controls(tmp_path, command):
    results = build_results()
    results.probes[0].message = f"msg{HYPERLINK}{CLEAR}"
    paths = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "results.json")
        paths[-1].write_text(results.to_json(), encoding="utf-8")
    arguments = [command, *(map(str, paths if command == "compare" else paths[:1])),
                 "--out", str(tmp_path / f"out{CLEAR}.html")]
    outcome = CliRunner().invoke(app, arguments)
    assert outcome.exit_code == 0, outcome.output
    _assert_no_raw_controls(outcome.output)
