"""`rai-audit sweep` on tiny model folders: bad sweep files refused before any work, an interrupted sweep finishes
only the missing cells, a failing cell is recorded without stopping the others, `--executor local` works
without ray, and the Ray path runs cells on a local Ray of two workers."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from test_cli_validation import assert_one_line_error, invoke

from audit.sweep import executors
from audit.sweep.run import LEADERBOARD_CSV, LEADERBOARD_HTML, prepare_sweep, run_sweep
from audit.sweep.spec import load_sweep_spec

# group_metrics at a smoke-test budget: a real probe (Ray workers and subprocesses only know the built-in ones)
PROBES = ('[probes]\nrun = ["group_metrics"]\n[probes.settings.group_metrics]\nn_resamples = 50\n'
          'intersections = false\nlabel_base_rates = false\nsplit = "train+validation+test"\n')


def write_sweep(tmp_path: Path, folders: dict[str, Path], extra: str = "") -> Path:
    subjects = "".join(f'[[subjects]]\nname = "{name}"\nmodel = "{folder}"\n' for name, folder in folders.items())
    path = tmp_path / "sweep.toml"
    path.write_text(f"seed = 1\n{extra}{PROBES}{subjects}")
    return path


@pytest.fixture
def four_models(tmp_path, tiny_classifier_dir) -> dict[str, Path]:
    """Four copies of the tiny classifier: four subjects with four keys."""
    return {name: Path(shutil.copytree(tiny_classifier_dir, tmp_path / "models" / name))
            for name in ("a", "b", "c", "d")}


@pytest.mark.parametrize(("text", "expected"), [
    ("[[subjects]]\nname = 'x'\n", "give exactly one of model"),
    ("[[subjects]]\nname = 'x'\nmodel = 'm'\nseeds = [1, 2]\n", "seeds need train"),
    ("colour = 1\n[[subjects]]\nname = 'x'\nmodel = 'm'\n", "unknown key 'colour'"),
    ("[leaderboard]\nbaseline = 'y'\n[[subjects]]\nname = 'x'\nmodel = 'm'\n", "'y' is not a subject"),
    ("[[subjects]]\nname = 'x'\nmodel = 'm'\n[[subjects]]\nname = 'x'\nmodel = 'n'\n", "x repeats"),
    ("[[subjects]]\nname = 'x'\ntrain = {finetune = {epochs = 0}}\nseeds = [1]\n", "epochs"),
    ("[probes]\nrun = ['no_such_probe']\n[[subjects]]\nname = 'x'\nmodel = 'm'\n", "no_such_probe"),
    # a missing folder path is no hub id: refused up front, not left to fail as a cell after the others' work
    ("[[subjects]]\nname = 'x'\nmodel = 'runs/missing/model'\n", "subject x"),
    # leaderboard metrics the probes cannot write would be dropped from the leaderboard after all the work
    (f"{PROBES}[leaderboard]\nmetrics = ['group_metrics.selection_gap']\n[[subjects]]\nname = 'x'\nmodel = 'm'\n",
     ("sweep.toml", "'group_metrics.selection_gap'", "selection_rate_gap")),
    (f"{PROBES}[leaderboard]\nmetrics = ['membership.auc']\n[[subjects]]\nname = 'x'\nmodel = 'm'\n",
     ("sweep.toml", "'membership.auc'", "group_metrics")),
])
def test_bad_sweep_files_fail_in_one_line_before_any_work(tmp_path, no_work, text, expected):
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(text)
    outcome = invoke("sweep", sweep_file, "--out", tmp_path / "out", "--executor", "local")
    assert_one_line_error(outcome, *((expected,) if isinstance(expected, str) else expected))
    assert not (tmp_path / "out").exists()


def test_an_interrupted_sweep_runs_only_the_missing_cells(tmp_path, four_models, monkeypatch):
    spec = load_sweep_spec(write_sweep(tmp_path, four_models))
    cells = prepare_sweep(spec, source="sweep.toml")
    out = tmp_path / "out"
    calls = []
    run_cell = executors.run_cell

    def interrupted_after_two(*arguments):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as Ctrl-C during the third cell
        calls.append(arguments[3])
        return run_cell(*arguments)

    monkeypatch.setattr(executors, "run_cell", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, cells, out, executor=executors.run_local)
    assert calls == ["a", "b"]

    calls.clear()
    monkeypatch.setattr(executors, "run_cell", lambda *arguments: calls.append(arguments[3]) or run_cell(*arguments))
    outcome = run_sweep(spec, cells, out, executor=executors.run_local)
    assert calls == ["c", "d"] and outcome.skipped == ["a", "b"] and not outcome.failed
    rows = (out / LEADERBOARD_CSV).read_text().splitlines()
    assert {row.split(",")[3] for row in rows[1:]} == {"a", "b", "c", "d"}
    assert (out / LEADERBOARD_HTML).is_file()

    calls.clear()
    assert run_sweep(spec, cells, out, executor=executors.run_local).ran == [] and calls == []

    # a finished cell's results.json truncated afterwards: the leaderboard is still written and lists it
    results_file = cells[1].folder(out) / "results.json"
    results_file.write_text(results_file.read_text()[:100])
    run_sweep(spec, cells, out, executor=executors.run_local)
    rows = (out / LEADERBOARD_CSV).read_text().splitlines()
    assert {row.split(",")[3] for row in rows[1:]} == {"a", "c", "d"}
    assert "results.json" in (out / LEADERBOARD_HTML).read_text()


def test_cells_asking_more_cpus_than_the_local_ray_has_are_refused_before_any_work(tmp_path, four_models, no_work):
    sweep_file = write_sweep(tmp_path, {"a": four_models["a"]}, extra="[resources]\nnum_cpus = 2\n")
    outcome = invoke("sweep", sweep_file, "--out", tmp_path / "out", "--workers", "1")
    assert_one_line_error(outcome, "num_cpus = 2", "--workers 1")
    assert not (tmp_path / "out").exists()


def test_local_executor_records_a_failing_cell_and_needs_no_ray(tmp_path, four_models, monkeypatch):
    from audit import runner

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    run_audit = runner.run_audit

    def failing_for_c(config, **options):
        if Path(config.subject.model).name == "c":
            raise RuntimeError("deliberate <b>failure</b> of cell c")
        return run_audit(config, **options)

    monkeypatch.setattr(runner, "run_audit", failing_for_c)
    sweep_file = write_sweep(tmp_path, {name: four_models[name] for name in ("a", "c")})
    out = tmp_path / "out"
    outcome = invoke("sweep", sweep_file, "--out", out, "--executor", "local", "-q")
    assert outcome.exit_code == 1, outcome.output  # 1: a cell failed; the sweep itself ran to the end
    assert "2 cells run, 0 finished before, 1 failed" in outcome.stderr
    records = {json.loads(path.read_text())["cell"]: json.loads(path.read_text())
               for path in (out / "cells").glob("*/cell.json")}
    assert records["a"]["status"] == "ok"
    assert records["c"]["status"] == "error"
    assert records["c"]["error"] == "RuntimeError: deliberate <b>failure</b> of cell c"
    page = (out / LEADERBOARD_HTML).read_text()
    assert "deliberate &lt;b&gt;failure&lt;/b&gt; of cell c" in page and "<b>failure" not in page  # escaped


@pytest.mark.slow  # starting Ray and importing torch in two fresh workers: > 20 s of CPU
def test_ray_executor_runs_cells_on_a_local_ray_with_two_workers(tmp_path, four_models):
    pytest.importorskip("ray")
    sweep_file = write_sweep(tmp_path, {name: four_models[name] for name in ("a", "b")},
                             extra="[resources]\nnum_cpus = 1\n")
    out = tmp_path / "out"
    outcome = invoke("sweep", sweep_file, "--out", out, "--workers", "2", "-q")
    assert outcome.exit_code == 0, outcome.output
    records = [json.loads(path.read_text()) for path in (out / "cells").glob("*/cell.json")]
    assert sorted(record["cell"] for record in records) == ["a", "b"]
    assert all(record["status"] == "ok" for record in records)
    assert len((out / LEADERBOARD_CSV).read_text().splitlines()) > 2
