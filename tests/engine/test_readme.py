"""The README stays true: its Python API example runs as written, its probe table lists the registered probes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from probes.base import available_probes

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_readme_probe_table_lists_every_built_in_probe_and_nothing_else():
    section = README.read_text().split("## Probes", 1)[1].split("\n## ", 1)[0]
    in_table = set(re.findall(r"^\| \w+ \| `(\w+)` \|", section, flags=re.MULTILINE))
    assert in_table == set(available_probes())


def test_readme_python_example_runs_and_writes_the_results_and_report(tmp_path, monkeypatch, tiny_classifier_dir):
    blocks = python_blocks(README.read_text())
    assert len(blocks) == 1, "the README has one Python example; update this test when that changes"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "classifier").symlink_to(tiny_classifier_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)

    # Running the documented example is the point of this test; its text is ours, in the repository.
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102

    results = json.loads((tmp_path / "results.json").read_text())
    assert {probe["probe"]: probe["status"] for probe in results["probes"]} == {
        "group_metrics": "ok", "counterfactual": "ok"}
    assert "counterfactual" in (tmp_path / "report.html").read_text()
