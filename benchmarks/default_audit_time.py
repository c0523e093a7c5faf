"""Wall time of the built-in default audit, from an empty model cache, per stage and in total.

Runs ``rai-audit run --out DIR`` (no config: the built-in default, ``audit.config.DEFAULT_AUDIT``) in a child
process exactly as a new user would, with ``RAI_AUDIT_CACHE`` pointed at a fresh temporary folder so that nothing
trained earlier is reused. The stages are read back from what the run leaves behind:

- pretraining: ``wall_seconds`` of the pretrained model's ``pretrain.json`` (corpus, tokenizer, training, saving);
- fine-tuning: from the end of pretraining (``pretrain.json`` written) to the end of fine-tuning (``finetune.json``
  written), by file modification time;
- each probe: its ``duration_s`` in ``results.json``;
- other: the rest of the child's wall time (start-up and imports, loading and hashing the model, writing
  results.json, report.html and junit.xml).

When ``results.json`` records the time per stage itself (``run.stages``), those figures are printed instead.
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


def stage_times(results: dict, cache_dir: Path, total: float) -> list[tuple[str, float]]:
    """(stage, seconds) in the order they ran; "other" is what the named stages leave of the total."""
    recorded = results.get("run", {}).get("stages")
    if isinstance(recorded, dict) and recorded:
        return [(str(name), float(seconds)) for name, seconds in recorded.items()]
    stages: list[tuple[str, float]] = []
    pretrain_records = sorted((cache_dir / "models").glob("pretrained-*/pretrain.json"))
    finetune_records = sorted((cache_dir / "models").glob("classifier-*/finetune.json"))
    if pretrain_records:
        record = json.loads(pretrain_records[0].read_text(encoding="utf-8"))
        stages.append(("pretraining", float(record["wall_seconds"])))
        if finetune_records:
            finetuned = finetune_records[0].stat().st_mtime - pretrain_records[0].stat().st_mtime
            stages.append(("fine-tuning", finetuned))
    for probe in results.get("probes", []):
        stages.append((f"probe {probe['probe']}", float(probe.get("duration_s", 0.0))))
    stages.append(("other (start-up, loading, hashing, writing outputs)", total - sum(s for _, s in stages)))
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
        for name, seconds in stage_times(results, cache_dir, total):
            print(f"{name:<55} {seconds:8.1f} s")
    print(f"total: {total:.1f} s")


if __name__ == "__main__":
    main()
