"""Reading results needs neither torch nor transformers: importing the reading modules and running `report`,
`gate`, `compare` and `verify` (their error paths included) leaves both out of sys.modules. Also `--version`.

Each case runs in a fresh interpreter, since this test session has long imported torch itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from synthetic_results import build_results

from audit.digests import model_folder_manifest
from audit.results import Manifest, json_sha256

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers")

# Runs the CLI in-process as the console script does, then names (as a JSON line) the heavy modules it loaded.
CLI_DRIVER = f"""
import json, sys
from audit.cli import main
sys.argv = ["rai-audit", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"exit": code, "loaded": sorted(set({HEAVY!r}) & set(sys.modules))}}), file=sys.stderr)
"""


def _python(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True, cwd=REPO, timeout=120,
                          check=False, env={"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "PATH": "", "COLUMNS": "200"})


def _cli(*arguments) -> tuple[int, list[str], str]:
    completed = _python("-c", CLI_DRIVER, *map(str, arguments))
    lines = completed.stderr.strip().splitlines()
    assert lines and lines[-1].startswith('{"exit"'), completed.stderr  # the driver ran to its end
    report = json.loads(lines[-1])
    return report["exit"], report["loaded"], completed.stderr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A sealed results.json whose manifest records a model folder (so that verify hashes files), a second run,
    a results.json without a manifest (verify's input-error path) and a policy."""
    folder = tmp_path_factory.mktemp("reading")
    model = folder / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "rai-transformer"}', encoding="utf-8")
    (model / "model.safetensors").write_bytes(b"not read, only hashed")
    results = build_results(n_rows=3)
    results.subject.path = str(model)
    results.manifest = Manifest(config_sha256=json_sha256(results.config),
                                models=model_folder_manifest([(model, "subject")]))
    paths = {"results": folder / "results.json", "other": folder / "other.json",
             "no_manifest": folder / "no-manifest.json", "policy": folder / "policy.toml", "out": folder}
    paths["results"].write_text(results.to_json(), encoding="utf-8")
    paths["other"].write_text(results.to_json(), encoding="utf-8")
    paths["no_manifest"].write_text(build_results(n_rows=3).to_json(), encoding="utf-8")
    paths["policy"].write_text('[[rule]]\nname = "gap bound"\nprobe = "crows_pairs"\nmetric = "gap"\nmax = 0.5\n',
                               encoding="utf-8")
    return paths


def test_importing_the_reading_modules_loads_neither_torch_nor_transformers():
    code = ("import sys, reports, audit.gate, audit.results, audit.compare, audit.verify, audit.cli, audit.errors\n"
            f"print(sorted(set({HEAVY!r}) & set(sys.modules)))")
    completed = _python("-c", code)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


@pytest.mark.parametrize(("arguments", "expected_code"), [
    (["gate", "{results}", "--policy", "{policy}"], 0),
    (["gate", "{results}", "--policy", "{out}/missing.toml"], 2),
    (["report", "{results}", "--out", "{out}/report.html"], 0),
    (["report", "{out}/missing.json", "--out", "{out}/missing.html"], 2),
    (["compare", "{results}", "{other}", "--out", "{out}/compare.html"], 0),
    (["verify", "{results}"], 0),
    (["verify", "{no_manifest}"], 2),
], ids=["gate", "gate-bad-policy", "report", "report-missing-results", "compare", "verify", "verify-no-manifest"])
def test_reading_commands_load_neither_torch_nor_transformers(inputs, arguments, expected_code):
    code, loaded, stderr = _cli(*(argument.format(**inputs) for argument in arguments))
    assert code == expected_code, stderr
    assert loaded == [], f"{arguments[0]} imported {loaded}"


def test_an_input_error_is_one_line_without_a_traceback(inputs):
    code, loaded, stderr = _cli("verify", inputs["no_manifest"])
    assert code == 2 and loaded == []
    lines = stderr.strip().splitlines()[:-1]  # the driver's own line is last
    assert len(lines) == 1 and lines[0].startswith("error: ") and "manifest" in lines[0], stderr


def test_version_prints_the_installed_distribution_version():
    completed = _python("-m", "audit", "--version")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"rai-audit {metadata.version('rai-audit')}"
