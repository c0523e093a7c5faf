"""The cells of a sweep, where each keeps its results, and running one.

A cell's key is a digest of its audit config (subject as named — folder path, hub id or seeded recipe — probes,
settings, seed, threads): ``DIR/cells/<subject>[-seed<S>]-<key>/`` holds ``cell.json`` (status, error, time) and,
once the cell finished, its ``results.json``, ``report.html`` and ``junit.xml``. A cell whose record says ``ok``
under the same key is finished and is skipped by a rerun; a failed or interrupted one runs again. A model folder
rewritten in place under the same path keeps its key: a rerun reuses its old results (use a new --out).
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.config import AuditConfig
from audit.results import json_sha256

CELLS_FOLDER = "cells"
CELL_RECORD = "cell.json"


@dataclass(frozen=True)
class Cell:
    """One audit of the grid: a subject (and, for a recipe, one seed) under the sweep's probe configuration."""

    subject: str
    seed: int | None
    config: AuditConfig

    @property
    def key(self) -> str:
        return json_sha256(self.config.model_dump(mode="json"))[:12]

    def pretrained_dir(self) -> Path | None:
        """Where the training cache keeps the cell's pretrained model (None: the cell trains nothing). Cells whose
        recipes pretrain the same thing — however the recipe spells it — share this folder."""
        from audit.runner import default_cache_dir, pretrained_cache_dir

        if self.config.subject.train is None:
            return None
        cache_dir = Path(self.config.cache_dir) if self.config.cache_dir else default_cache_dir()
        return pretrained_cache_dir(self.config.subject.train, cache_dir)

    def pretraining_to_do(self) -> Path | None:
        """The cell's pretrained-model folder while the training cache does not hold that model yet, else None."""
        folder = self.pretrained_dir()
        return None if folder is None or (folder / "model.safetensors").is_file() else folder

    @property
    def label(self) -> str:
        return self.subject if self.seed is None else f"{self.subject}/seed={self.seed}"

    def folder(self, out_dir: Path) -> Path:
        suffix = "" if self.seed is None else f"-seed{self.seed}"
        return Path(out_dir) / CELLS_FOLDER / f"{self.subject}{suffix}-{self.key}"


def read_cell_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / CELL_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_finished(cell: Cell, out_dir: Path) -> bool:
    """The cell's record says ok under this key and its results.json is there."""
    folder = cell.folder(out_dir)
    record = read_cell_record(folder)
    return (record is not None and record.get("status") == "ok" and record.get("key") == cell.key
            and (folder / "results.json").is_file())


def run_cell(config_json: dict[str, Any], folder: str, key: str, label: str) -> dict[str, Any]:
    """Audit one cell and write its outputs and record into ``folder``; the record is returned.

    Runs in a Ray worker or in-process (plain arguments, so that Ray ships them as they are). An exception from
    the audit becomes an error record: one failing cell never stops the others. Interrupts are not caught.
    """
    from audit.config import AuditConfig
    from audit.outputs import write_run_outputs
    from audit.runner import run_audit

    folder_path = Path(folder)
    started = time.perf_counter()
    try:
        results = run_audit(AuditConfig.model_validate(config_json), command=f"rai-audit sweep (cell {label})")
        write_run_outputs(results, folder_path)
        errored = [probe.probe for probe in results.probes if probe.status == "error"]
        outcome = {"status": "ok", "run_id": results.run.id, "probes_in_error": errored}
    except Exception as error:  # noqa: BLE001  (recorded: the sweep goes on with the other cells)
        outcome = error_outcome(error)
    return write_cell_record(folder_path, key, label, outcome, duration_s=time.perf_counter() - started)


def pretrain_for_cells(config_json: dict[str, Any]) -> dict[str, Any] | None:
    """Pretrain (into the training cache) the recipe of a cell's config, once for every cell that shares it:
    cells pretraining one recipe side by side would each spend the time and write the same cache folder. Returns
    None, or the error outcome that the cells waiting for this pretraining are recorded with."""
    from audit.config import AuditConfig
    from audit.runner import default_cache_dir, ensure_pretrained

    config = AuditConfig.model_validate(config_json)
    try:
        ensure_pretrained(config.subject.train, data_dir=Path(config.data_dir) if config.data_dir else None,
                          cache_dir=Path(config.cache_dir) if config.cache_dir else default_cache_dir())
    except Exception as error:  # noqa: BLE001  (recorded on each cell that needed it)
        outcome = error_outcome(error)
        return {**outcome, "error": f"pretraining failed: {outcome['error']}"}
    return None


def error_outcome(error: BaseException) -> dict[str, Any]:
    return {"status": "error", "error": f"{type(error).__name__}: {error}".splitlines()[0],
            "traceback": traceback.format_exc()}


def write_cell_record(folder: Path, key: str, label: str, outcome: dict[str, Any], *,
                      duration_s: float = 0.0) -> dict[str, Any]:
    """Write ``cell.json`` (the cell, its key, ``outcome``'s status and details, its time) and return it."""
    from audit.outputs import write_atomic

    record = {"cell": label, "key": key, **outcome, "duration_s": round(duration_s, 3)}
    write_atomic(Path(folder) / CELL_RECORD, json.dumps(record, indent=2, sort_keys=True))
    return record


def build_cells(spec, *, source: str) -> list[Cell]:
    """Every cell of the grid, in the sweep file's order (a recipe's seeds in the order given)."""
    from audit.sweep.spec import cell_config

    cells = []
    for subject in spec.subjects:
        for seed in subject.seeds or [None]:
            cells.append(Cell(subject=subject.name, seed=seed,
                              config=cell_config(spec, subject, seed, source=source)))
    return cells
