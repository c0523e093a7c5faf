"""A long audit survives a crash: finished probes' results are stored beside the output and reused on the next run.

The acceptance test kills a real `python -m audit run` subprocess (SIGKILL) while a probe blocks, reruns it, and
checks that the finished probes were not recomputed and that results.json equals an uninterrupted run's (the rerun
and the uninterrupted run go through the CLI in the test process, which starts faster). The test probes reach the
subprocess as a probe plug-in: a dist-info folder with an entry point in the group
``rai_audit.probes`` on its PYTHONPATH, the same way a third-party probe package registers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import resume_probes
from resume_probes import ALL_PROBES, LOG_ENV, PLUGIN_PROBES, RUNS
from safetensors.torch import load_file, save_file
from test_engine_runner import strip_timing
from typer.testing import CliRunner

from audit.cli import app
from audit.config import config_from_dict
from audit.probe_store import STORE_DIR
from audit.progress import ProgressReporter
from audit.runner import run_audit
from probes import base

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def resume_test_probes():
    base.available_probes()  # built-ins first, so that ours are additions
    for probe in ALL_PROBES:
        base.register(probe)
    RUNS.clear()
    yield
    for probe in ALL_PROBES:
        base._REGISTRY.pop(probe.name, None)


def audit_config(model_dir: Path, probes: list[str], *, seed: int = 3, settings: dict | None = None):
    return config_from_dict({"seed": seed, "threads": 1, "subject": {"model": str(model_dir)},
                             "probes": {"run": probes, "settings": settings or {}}})


class Progress(ProgressReporter, list):
    """The notes of a run, as lines."""

    def note(self, message: str) -> None:
        self.append(message)

    def reused(self) -> list[str]:
        return [line.split()[1].rstrip(":") for line in self if "reused the result stored" in line]


def interrupted_run(config, out: Path, **options) -> Progress:
    """run_audit with a store but without writing outputs: what a killed run leaves behind."""
    progress = Progress()
    run_audit(config, progress=progress, resume_from=out, **options)
    return progress


# --- the acceptance test: SIGKILL a real `run`, rerun it -------------------------------------------------------


def write_plugin(folder: Path) -> None:
    """A dist-info whose entry points name the test probes: how `run` in another process finds them."""
    dist_info = folder / "resume_test_probes-0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: resume-test-probes\nVersion: 0\n")
    lines = [f"{probe.name} = resume_probes:{probe.__name__}" for probe in PLUGIN_PROBES]
    (dist_info / "entry_points.txt").write_text("[rai_audit.probes]\n" + "\n".join(lines) + "\n")


def start_run(config: Path, out: Path, plugin_dir: Path, log: Path) -> subprocess.Popen:
    python_path = os.pathsep.join([str(REPO), str(Path(resume_probes.__file__).parent), str(plugin_dir)])
    # The same working folder as this process: a relative RAI_AUDIT_DATA_DIR (as CI sets it) must name the same
    # data directory in both runs, or the stored results are rightly not reused.
    environment = {**os.environ, "PYTHONPATH": python_path, LOG_ENV: str(log)}
    return subprocess.Popen([sys.executable, "-m", "audit", "run", str(config), "--out", str(out)],
                            cwd=Path.cwd(), env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_for(condition, *, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"run ended early ({process.returncode}): {process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.05)


def logged_runs(log: Path) -> list[str]:
    return log.read_text().split() if log.is_file() else []


def test_a_killed_run_resumes_with_the_finished_probes_reused_and_identical_results(
        tmp_path, tiny_classifier_dir, resume_test_probes):
    go = tmp_path / "go"
    config = tmp_path / "audit.toml"
    config.write_text(
        f'seed = 5\nthreads = 1\n[subject]\nmodel = "{tiny_classifier_dir}"\n'
        '[probes]\nrun = ["resume_first", "resume_second", "resume_blocker", "resume_last"]\n'
        f'[probes.settings.resume_blocker]\nwait_for = "{go}"\n'
    )
    plugin_dir, log, out = tmp_path / "plugin", tmp_path / "runs.log", tmp_path / "resumed"
    write_plugin(plugin_dir)

    killed = start_run(config, out, plugin_dir, log)
    wait_for(lambda: "resume_blocker" in logged_runs(log), process=killed)  # first two finished and stored
    killed.kill()
    killed.wait(timeout=30)
    killed.stdout.close()
    assert killed.returncode == -9
    assert logged_runs(log) == ["resume_first", "resume_second", "resume_blocker"]
    assert len(list((out / STORE_DIR).glob("*.json"))) == 2
    assert not (out / "results.json").exists()

    go.touch()
    rerun = CliRunner().invoke(app, ["run", str(config), "--out", str(out)])  # in this process: quicker to start
    assert rerun.exit_code == 0, rerun.output
    assert RUNS == {"resume_blocker": 1, "resume_last": 1}, "the finished probes ran again"
    assert "probe resume_first: reused" in rerun.output and "probe resume_second: reused" in rerun.output
    assert "probe resume_blocker: reused" not in rerun.output and "probe resume_last: reused" not in rerun.output
    assert not (out / STORE_DIR).exists(), "a complete run leaves nothing to resume"

    uninterrupted = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "uninterrupted")])
    assert uninterrupted.exit_code == 0, uninterrupted.output
    assert RUNS == {"resume_first": 1, "resume_second": 1, "resume_blocker": 2, "resume_last": 2}
    resumed, reference = (json.loads((folder / "results.json").read_text())
                          for folder in (out, tmp_path / "uninterrupted"))
    assert strip_timing(resumed) == strip_timing(reference)


# --- what invalidates a stored result ---------------------------------------------------------------------------


def test_a_stored_result_is_reused_only_under_the_same_settings_and_seed(tmp_path, tiny_classifier_dir,
                                                                         resume_test_probes):
    probes = ["resume_first", "resume_second"]
    config = audit_config(tiny_classifier_dir, probes)
    first = run_audit(config, resume_from=tmp_path)
    progress = Progress()
    again = run_audit(config, progress=progress, resume_from=tmp_path)
    assert progress.reused() == probes
    assert RUNS == {"resume_first": 1, "resume_second": 1}
    assert strip_timing(again.model_dump(mode="json")) == strip_timing(first.model_dump(mode="json"))

    other_setting = audit_config(tiny_classifier_dir, probes, settings={"resume_first": {"scale": 2.0}})
    assert interrupted_run(other_setting, tmp_path).reused() == ["resume_second"]
    assert interrupted_run(audit_config(tiny_classifier_dir, probes, seed=4), tmp_path).reused() == []
    assert RUNS == {"resume_first": 3, "resume_second": 2}


def test_changed_weights_invalidate_the_stored_results(tmp_path, tiny_classifier_dir, resume_test_probes):
    model_dir = shutil.copytree(tiny_classifier_dir, tmp_path / "model")
    config = audit_config(model_dir, ["resume_first"])
    interrupted_run(config, tmp_path / "out")
    weights = load_file(model_dir / "model.safetensors")
    name = min(weights)
    weights[name] = weights[name] + 1e-3
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    assert interrupted_run(config, tmp_path / "out").reused() == []
    assert RUNS["resume_first"] == 2


def test_a_changed_dataset_file_invalidates_the_stored_result(tmp_path, resume_test_probes, tiny_classifier_dir):
    data = tmp_path / "rows.csv"
    data.write_text("text\na\nb\n")
    config = audit_config(tiny_classifier_dir, ["resume_dataset"], settings={"resume_dataset": {"dataset": str(data)}})
    interrupted_run(config, tmp_path / "out")
    assert interrupted_run(config, tmp_path / "out").reused() == ["resume_dataset"]
    data.write_text("text\na\nb\nc\n")
    progress = interrupted_run(config, tmp_path / "out")
    assert progress.reused() == []
    assert any("a dataset file changed" in line for line in progress)
    assert RUNS["resume_dataset"] == 2


@pytest.mark.parametrize("damage", [
    lambda path: path.write_text("{not json"),
    lambda path: path.write_bytes(path.read_bytes()[:40]),
    lambda path: path.write_bytes(b""),
    lambda path: path.write_bytes(b"\xff\xfe\x00garbage"),
    lambda path: path.write_text("[1, 2]"),
    lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "result": {"probe": 3}})),
    lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "key": "0" * 64})),
    lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "dataset_files": None})),
], ids=["not-json", "truncated", "empty", "binary", "not-an-object", "bad-result", "other-key", "bad-files"])
def test_a_corrupt_stored_file_is_run_again_not_a_crash(tmp_path, tiny_classifier_dir, resume_test_probes, damage):
    config = audit_config(tiny_classifier_dir, ["resume_first"])
    interrupted_run(config, tmp_path)
    (stored,) = (tmp_path / STORE_DIR).glob("*.json")
    damage(stored)
    progress = interrupted_run(config, tmp_path)
    assert progress.reused() == []
    assert RUNS["resume_first"] == 2
    assert interrupted_run(config, tmp_path).reused() == ["resume_first"], "the re-run stored a sound result"


def test_errors_are_not_stored_and_fresh_ignores_the_store(tmp_path, tiny_classifier_dir, resume_test_probes):
    config = audit_config(tiny_classifier_dir, ["resume_first", "resume_failing"])
    interrupted_run(config, tmp_path)
    assert interrupted_run(config, tmp_path).reused() == ["resume_first"]
    assert RUNS["resume_failing"] == 2
    assert interrupted_run(config, tmp_path, fresh=True).reused() == []
    assert RUNS["resume_first"] == 2


def test_a_complete_cli_run_removes_the_store_and_fresh_runs_everything(tmp_path, tiny_classifier_dir,
                                                                        resume_test_probes):
    config = audit_config(tiny_classifier_dir, ["resume_first"])
    interrupted_run(config, tmp_path / "out")
    path = tmp_path / "audit.toml"
    path.write_text(f'seed = 3\nthreads = 1\n[subject]\nmodel = "{tiny_classifier_dir}"\n'
                    '[probes]\nrun = ["resume_first"]\n')
    outcome = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--fresh"])
    assert outcome.exit_code == 0, outcome.output
    assert "reused" not in outcome.output
    assert RUNS["resume_first"] == 2
    assert not (tmp_path / "out" / STORE_DIR).exists()
    assert (tmp_path / "out" / "results.json").is_file()
