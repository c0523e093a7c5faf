"""``rai-audit sweep``: check everything, run the cells not finished yet, then write the leaderboard.

Output folder: ``cells/`` (one folder per cell, see ``audit.sweep.cells``), ``leaderboard.html``,
``leaderboard.csv`` (a row per metric and cell) and ``seed_variance.csv`` (recipe pairs tested against seed noise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import InputError
from audit.progress import SILENT, ProgressReporter
from audit.sweep.cells import Cell, build_cells, is_finished, read_cell_record
from audit.sweep.spec import SweepSpec, SweepSpecError, check_leaderboard_metrics

logger = logging.getLogger(__name__)

LEADERBOARD_HTML, LEADERBOARD_CSV, SEED_CSV = "leaderboard.html", "leaderboard.csv", "seed_variance.csv"
Executor = Callable[[list[Cell], Path], Iterator[dict[str, Any]]]


@dataclass
class SweepOutcome:
    cells: list[Cell]
    ran: list[str]  # labels of the cells run this time
    skipped: list[str]  # finished before
    failed: list[dict]  # records of cells in error
    written: dict[str, Path]


def prepare_sweep(spec: SweepSpec, *, source: str) -> list[Cell]:
    """Every cell's config built and its probes and subject checked: bad input fails here, before any work."""
    from audit.hub import hub_model
    from audit.runner import check_subject, select_probes

    cells = build_cells(spec, source=source)
    probes = select_probes(cells[0].config)  # every cell shares the probe configuration
    check_leaderboard_metrics(spec, probes, source=source)
    for cell in cells:
        model = cell.config.subject.model
        if model is None or hub_model(model) is None:  # a hub id is resolved when its cell runs
            try:
                check_subject(cell.config)
            except InputError as error:
                raise SweepSpecError(f"{source}: subject {cell.label}: {error}") from None
    return cells


def run_sweep(spec: SweepSpec, cells: list[Cell], out_dir: Path, *, executor: Executor,
              progress: ProgressReporter = SILENT) -> SweepOutcome:
    """Run the unfinished cells with ``executor``, then write the leaderboard from every finished cell."""
    out_dir = Path(out_dir)
    pending = [cell for cell in cells if not is_finished(cell, out_dir)]
    skipped = [cell.label for cell in cells if cell not in pending]
    ran = []
    with progress.task("sweep", total=len(cells), unit="cells", eta=False) as shown:
        shown.update(completed=len(skipped), info=f"{len(skipped)} finished before" if skipped else None)
        for record in executor(pending, out_dir):
            ran.append(record["cell"])
            outcome = "done" if record["status"] == "ok" else f"failed: {record.get('error', '')}"
            progress(f"cell {record['cell']}: {outcome}")
            shown.advance(info=f"{record['cell']} {record['status']}")
    written = write_leaderboard(spec, cells, out_dir)
    failed = [record for record in (read_cell_record(cell.folder(out_dir)) for cell in cells)
              if record is not None and record.get("status") != "ok"]
    return SweepOutcome(cells=cells, ran=ran, skipped=skipped, failed=failed, written=written)


def write_leaderboard(spec: SweepSpec, cells: list[Cell], out_dir: Path) -> dict[str, Path]:
    from audit.outputs import write_atomic
    from audit.results import ResultsFileError, load_results
    from audit.sweep.leaderboard import FinishedCell, build_leaderboard, leaderboard_csv, seed_variance_csv
    from reports import render_leaderboard_html

    finished, failed = [], []
    for cell in cells:
        if is_finished(cell, out_dir):
            try:
                results = load_results(cell.folder(out_dir) / "results.json")
            except ResultsFileError as error:  # edited or truncated since the cell ran: listed, not fatal
                failed.append({"cell": cell.label, "error": str(error)})
                continue
            finished.append(FinishedCell(label=cell.label, subject=cell.subject, seed=cell.seed, results=results))
        else:
            record = read_cell_record(cell.folder(out_dir)) or {"cell": cell.label, "error": "did not run"}
            failed.append({"cell": cell.label, "error": record.get("error", "did not finish")})
    recipes = {subject.name: subject.seeds for subject in spec.subjects if subject.seeds and len(subject.seeds) > 1}
    board = build_leaderboard(finished, baseline=spec.baseline, failed=failed, n_cells=len(cells),
                              metrics=spec.leaderboard.metrics, recipes=recipes,
                              n_bootstrap=spec.leaderboard.n_bootstrap)
    texts = {LEADERBOARD_HTML: render_leaderboard_html(board), LEADERBOARD_CSV: leaderboard_csv(board),
             SEED_CSV: seed_variance_csv(board)}
    return {name: write_atomic(out_dir / name, text) for name, text in texts.items()}
