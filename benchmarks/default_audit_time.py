"""Wall time of the built-in default audit, from an empty model cache, per stage and in total.

Runs ``rai-audit run --out DIR`` (no config: the built-in default, ``audit.config.DEFAULT_AUDIT``) in a child
process exactly as a new user would, with ``RAI_AUDIT_CACHE`` pointed at a fresh temporary folder so that nothing
trained earlier is reused. The time per stage (pretraining, fine-tuning, loading, each probe, rendering) is read
back from ``results.json``'s ``run.stages``; "other" is the rest of the child's wall time (start-up, imports,
writing the outputs).
Lower is better; issue 18 asks for a total of at most 480 s on a 2-core CPU without AVX-512/bf16. Other processes
on the machine slow every stage, so the load average is printed before and after. The last line is
``total: X s`` (the child's wall time).

Usage: ``python benchmarks/default_audit_time.py [--threads N] [--keep DIR]``; needs RAI_AUDIT_DATA_DIR (or the
data folder the default audit finds by itself).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def stage_times(results: dict, total: float) -> list[tuple[str, float]]:
    """(stage, seconds) in the order they ran, from ``run.stages``; "other" is what they leave of the total."""
    stages = []
    for record in results["run"]["stages"]:
        name = f"probe {record['probe']}" if record.get("probe") else record["stage"]
        stages.append((name + (" (reused)" if record.get("reused") else ""), float(record["duration_s"])))
    stages.append(("other (start-up, imports, writing outputs)", total - sum(seconds for _, seconds in stages)))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--keep", type=Path, default=None, help="copy the run's output folder here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rai-audit-default-") as scratch:
        cache_dir, out_dir = Path(scratch) / "cache", Path(scratch) / "out"
        environment = {**os.environ, "RAI_AUDIT_CACHE": str(cache_dir)}
        command = [sys.executable, "-m", "audit", "run", "--out", str(out_dir)]
        if args.threads is not None:
            command += ["--threads", str(args.threads)]
        print(f"command: {' '.join(command[1:])} (RAI_AUDIT_CACHE={cache_dir})")
        print(f"load average before: {load_average()}")
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=REPO_ROOT, env=environment, check=False)
        total = time.perf_counter() - started
        print(f"load average after: {load_average()}")
        results_path = out_dir / "results.json"
        if not results_path.is_file():
            sys.exit(f"the default audit wrote no results.json (exit code {completed.returncode})")
        results = json.loads(results_path.read_text(encoding="utf-8"))
        if args.keep is not None:
            shutil.copytree(out_dir, args.keep, dirs_exist_ok=True)
        hardware = results.get("run", {}).get("hardware", {})
        print(f"machine: {hardware.get('cpu_model')}, {hardware.get('cpus')} CPUs, {hardware.get('vector_isa')}, "
              f"bf16 units {hardware.get('bf16_units')}; threads {results.get('run', {}).get('threads')}; "
              f"exit code {completed.returncode}")
        for name, seconds in stage_times(results, total):
            print(f"{name:<55} {seconds:8.1f} s")
    print(f"total: {total:.1f} s")


if __name__ == "__main__":
    main()
