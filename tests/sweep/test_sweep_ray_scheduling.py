"""The Ray executor's order of work, on a stand-in for ray that runs each task when it is submitted: cells with
nothing to pretrain start at once, each recipe missing from the training cache is pretrained once, its cells start
after that, and a failed pretraining is recorded on each of its cells without running them."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

from audit.sweep import executors
from audit.sweep.cells import build_cells
from audit.sweep.spec import Resources, sweep_spec_from_dict


class _EagerRay(SimpleNamespace):
    """ray.remote / wait / get for tasks that finish as they are submitted (in submission order)."""

    def __init__(self):
        super().__init__(results={}, submitted=[])

    def is_initialized(self):
        return True  # the executor neither starts nor stops it

    def remote(self, **_options):
        def wrap(function):
            def submit(*arguments):
                reference = object()
                self.results[reference] = function(*arguments)
                self.submitted.append(reference)
                return reference
            return SimpleNamespace(remote=submit)
        return wrap

    def wait(self, references, num_returns):
        ordered = sorted(references, key=self.submitted.index)
        return ordered[:num_returns], ordered[num_returns:]

    def get(self, reference):
        return self.results[reference]


def test_each_missing_pretraining_runs_once_before_its_cells_and_a_failed_one_fails_its_cells(
        tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_AUDIT_CACHE", str(tmp_path / "cache"))
    good, bad = {"preset": "tiny"}, {"preset": "tiny", "train": {"seed": 9}}
    spec = sweep_spec_from_dict({"probes": {"run": ["group_metrics"]}, "subjects": [
        {"name": "good", "train": {"pretrain": good}, "seeds": [1, 2]},
        {"name": "bad", "train": {"pretrain": bad}, "seeds": [1, 2]},
        {"name": "folder", "model": "models/x"},
    ]})
    cells = build_cells(spec, source="sweep.toml")
    work: list[str] = []

    def pretrain(config_json):
        pretraining = config_json["subject"]["train"]["pretrain"]
        work.append(f"pretrain {pretraining}")
        return {"status": "error", "error": "pretraining failed: ValueError: no corpus"} if pretraining == bad \
            else None

    def audit(config_json, folder, key, label):
        work.append(f"audit {label}")
        return {"cell": label, "status": "ok"}

    monkeypatch.setitem(sys.modules, "ray", _EagerRay())
    monkeypatch.setattr(executors, "pretrain_for_cells", pretrain)
    monkeypatch.setattr(executors, "run_cell", audit)
    records = list(executors.RayExecutor(workers=2, address=None, resources=Resources()).run(cells, tmp_path))

    assert work == ["audit folder", f"pretrain {good}", f"pretrain {bad}", "audit good/seed=1", "audit good/seed=2"]
    assert sorted(record["cell"] for record in records) == sorted(cell.label for cell in cells)
    for cell in cells[2:4]:
        written = json.loads((cell.folder(tmp_path) / "cell.json").read_text())
        assert written["status"] == "error" and written["error"] == "pretraining failed: ValueError: no corpus"
        assert written["key"] == cell.key
