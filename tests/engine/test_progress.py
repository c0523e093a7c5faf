"""Progress of `rai-audit run`: bars on a terminal, plain lines in a log, nothing with --quiet; time per stage in
results.json and the report.

A tiny recipe (pretraining + fine-tuning + two probes) is run three times through the CLI in process: with a
console that claims to be a terminal, as in a CI log (CliRunner's stderr is no terminal), and with --quiet.
"""

from __future__ import annotations

import io
import json
import os
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from audit import cli
from audit.progress import current_reporter, reporting_to
from audit.progress_display import PlainProgressReporter, format_duration

CONFIG = """
seed = 5
threads = 1
cache_dir = "{cache}"

[subject.train]
pretrain = {{ preset = "tiny", train = {{ max_steps = 12, log_every = 4, precision = "fp32" }} }}
finetune = {{ preset = "scenario", epochs = 1, precision = "fp32", data = {{ scenario = {{ n_examples = 120, seed = 0 }} }} }}

[probes]
run = ["group_metrics", "counterfactual"]

[probes.settings.group_metrics]
n_resamples = 50
"""
PROBES = ("group_metrics", "counterfactual")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def write_config(folder, cache):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "audit.toml"
    path.write_text(CONFIG.format(cache=cache))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs of one recipe: on a (fake) terminal, into a log, and --quiet (reusing the terminal run's
    models); each gives (what it printed on stderr, its output folder)."""
    if not os.environ.get("RAI_AUDIT_DATA_DIR"):
        pytest.skip("RAI_AUDIT_DATA_DIR is not set (the tiny preset pretrains on wiki_passages)")
    root = tmp_path_factory.mktemp("progress")
    printed = {}
    terminal = io.StringIO()
    original = cli.console
    cli.console = Console(file=terminal, force_terminal=True, width=140)
    try:
        outcome = CliRunner().invoke(cli.app, ["run", str(write_config(root / "terminal", root / "cache-a")),
                                               "--out", str(root / "terminal" / "out")])
    finally:
        cli.console = original
    assert outcome.exit_code == 0, outcome.output
    printed["terminal"] = terminal.getvalue()
    for name, cache, options in (("log", "cache-b", []), ("quiet", "cache-a", ["--quiet"])):
        outcome = CliRunner().invoke(cli.app, ["run", str(write_config(root / name, root / cache)),
                                               "--out", str(root / name / "out"), *options])
        assert outcome.exit_code == 0, outcome.output
        printed[name] = outcome.stderr
    return {name: (text, root / name / "out") for name, text in printed.items()}


def test_a_terminal_shows_bars_for_training_and_each_probe(runs):
    text, _ = runs["terminal"]
    assert "\x1b[" in text  # drawn live, with cursor movement and colour
    plain = ANSI.sub("", text)
    assert re.search(r"pretraining\s.*━.*\d+/12 steps", plain)  # a bar with the step count
    assert re.search(r"fine-tuning\s.*━.*\d+/\d+ steps", plain)
    for number, probe in enumerate(PROBES, start=1):
        assert f"probe {number}/{len(PROBES)} {probe}" in plain
        assert f"✓ probe {number}/{len(PROBES)} {probe}" in plain  # each finished stage leaves a line
    assert re.search(r"✓ pretraining \(12/12 steps, loss \d+\.\d+, [\d,]+ tokens/s\) in \d+s", plain)
    assert re.search(r"✓ fine-tuning \(\d+/\d+ steps, epoch 1/1, validation macro-F1 \d\.\d{3}\)", plain)
    summary = plain[plain.index("rai-audit summary"):]
    for probe in PROBES:
        assert probe in summary
    assert plain.rstrip().endswith("report.html")


def test_a_log_gets_plain_lines(runs):
    text, _ = runs["log"]
    progress = text[:text.index("rai-audit summary")]
    assert "\x1b" not in text and "━" not in progress  # no bars, no control sequences in a CI log
    lines = text.splitlines()
    assert "pretraining: started (0/12 steps)" in lines
    assert any(re.fullmatch(r"pretraining: done in \d+s \(12/12 steps, loss .*tokens/s\)", line) for line in lines)
    assert any(re.fullmatch(r"fine-tuning: done in \d+s \(\d+/\d+ steps, epoch 1/1, validation macro-F1 "
                            r"\d\.\d{3}\)", line) for line in lines)
    for number, probe in enumerate(PROBES, start=1):
        assert f"probe {number}/{len(PROBES)} {probe}: started" in lines
        assert any(line.startswith(f"probe {number}/{len(PROBES)} {probe}: done in ") for line in lines)
    assert lines[-1].startswith("report: ") and lines[-1].endswith("report.html")


def test_quiet_prints_no_progress(runs):
    text, out = runs["quiet"]
    assert "started" not in text and "done in" not in text and "reusing" not in text
    assert "rai-audit summary" in text and (out / "report.html").is_file()  # the closing summary stays


def test_time_per_stage_is_recorded_and_reported(runs):
    for name in ("terminal", "quiet"):  # the quiet run reused the terminal run's models
        out = runs[name][1]
        stages = json.loads((out / "results.json").read_text())["run"]["stages"]
        assert [(stage["stage"], stage["probe"]) for stage in stages] == [
            ("pretraining", None), ("fine-tuning", None), ("loading", None),
            *[("probe", probe) for probe in PROBES], ("rendering", None)]
        assert all(stage["duration_s"] >= 0 for stage in stages)
        reused = {stage["stage"]: stage["reused"] for stage in stages if stage["stage"] != "probe"}
        assert reused["pretraining"] is reused["fine-tuning"] is (name == "quiet")
        if name == "terminal":  # trained here: measurable time
            assert stages[0]["duration_s"] > 0 and stages[1]["duration_s"] > 0
        report = (out / "report.html").read_text()
        section = report[report.index("Time per stage"):report.index("Manifest")]
        for stage in stages:
            label = stage["stage"] + (f" {stage['probe']}" if stage["probe"] else "")
            assert f"<td>{label}</td><td class=\"num\">{stage['duration_s']:.1f}</td>" in section
        if name == "quiet":
            assert section.count("cached model reused") == 2


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_plain_lines_come_at_a_modest_rate():
    """One line per task at most every 10 s however often it advances; start and finish lines for the run and
    its stages; a sub-task shorter than 5 s leaves no line at all."""
    stream, clock = io.StringIO(), FakeClock()
    reporter = PlainProgressReporter(stream, interval=10.0, clock=clock)
    with reporter.task("audit", total=1, unit="stages", eta=False) as whole:
        with reporter.task("pretraining", total=350, unit="steps") as task:
            for step in range(1, 351):  # 35 s at 10 steps a second
                clock.now = step / 10
                task.advance(info="loss 2.000")
            with reporter.task("quick sub-step", total=3) as quick:
                quick.advance(3)
        whole.advance()
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["audit: started (0/1 stages)", "pretraining: started (0/350 steps)"]
    assert lines[2] == "pretraining: 100/350 steps (29%), loss 2.000, 10s elapsed, about 25s left"
    assert [line.split(": ")[1].split()[0] for line in lines[2:5]] == ["100/350", "200/350", "300/350"]
    assert lines[5:] == ["pretraining: done in 35s (350/350 steps, loss 2.000)", "audit: done in 35s (1/1 stages)"]


def test_reporting_to_sets_the_reporter_for_nested_code_only_inside_the_block():
    reporter = PlainProgressReporter(io.StringIO())
    before = current_reporter()
    with reporting_to(reporter):
        assert current_reporter() is reporter
    assert current_reporter() is before


def test_durations_read_naturally():
    assert [format_duration(s) for s in (0.4, 7, 65, 3725)] == ["0s", "7s", "1:05", "1:02:05"]
