"""Sweep scaling: four equal cells one after another in this process (``--executor local``) against the same four
cells as Ray tasks on a local Ray of two workers (``--executor ray --workers 2``), one thread per cell.

Each cell audits its own copy of one classifier (the project's tiny transformer, randomly initialised, with the
calibration scenario of ``--examples`` examples as its task data) with group_metrics over every split at
``--resamples`` bootstrap resamples: the same work in every cell. The Ray time includes starting and stopping the
local Ray (what a user waits for); the time without it is printed too. Lower wall time is better; the last line is
``ratio: <sequential time / Ray time>`` (goal ≥ 1.6 on 2 cores; 2.0 is the limit).

Usage: ``python benchmarks/sweep_scaling.py [--examples 2000] [--resamples 2000]``. Needs ray; reads no data.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# the repository first: tests/ holds a folder named `reports` that would otherwise shadow the package
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]
from tiny_models import build_tokenizer, ours_config, save

from audit.data.scenarios import make_calibration_scenario
from audit.model import AuditTransformerForSequenceClassification
from audit.sweep.executors import RayExecutor, run_local
from audit.sweep.run import prepare_sweep, run_sweep
from audit.sweep.spec import sweep_spec_from_dict

N_CELLS = 4


def build_models(root: Path, *, examples: int) -> list[Path]:
    torch.manual_seed(0)
    model = AuditTransformerForSequenceClassification(ours_config(num_labels=2)).eval()
    first = save(model, build_tokenizer(), root / "model-0")
    make_calibration_scenario(n_examples=examples, bias_strength=0.5, seed=0).save(first)
    return [first] + [Path(shutil.copytree(first, root / f"model-{index}")) for index in range(1, N_CELLS)]


def spec_for(models: list[Path], *, resamples: int):
    return sweep_spec_from_dict({
        "seed": 0, "threads": 1, "resources": {"num_cpus": 1},
        "probes": {"run": ["group_metrics"], "settings": {"group_metrics": {
            "split": "train+validation+test", "n_resamples": resamples, "label_base_rates": False}}},
        "subjects": [{"name": f"cell{index}", "model": str(path)} for index, path in enumerate(models)],
    }, source="benchmark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=2000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        spec = spec_for(build_models(root, examples=arguments.examples), resamples=arguments.resamples)
        cells = prepare_sweep(spec, source="benchmark")

        started = time.perf_counter()
        run_sweep(spec, cells, root / "sequential", executor=run_local)
        sequential = time.perf_counter() - started
        print(f"sequential ({N_CELLS} cells, in-process): {sequential:.1f} s")

        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
        ray_started = time.perf_counter()
        run_sweep(spec, cells, root / "ray", executor=RayExecutor(workers=2, address=None,
                                                                   resources=spec.resources).run)
        cells_done = time.perf_counter()
        ray.shutdown()
        parallel = time.perf_counter() - started
        print(f"Ray, 2 workers: {parallel:.1f} s including starting Ray ({ray_started - started:.1f} s) and "
              f"stopping it; cells alone {cells_done - ray_started:.1f} s")
        print(f"ratio: {sequential / parallel:.2f}")


if __name__ == "__main__":
    main()
