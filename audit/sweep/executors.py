"""Where cells run: one after another in this process, or as Ray tasks (Moritz et al., "Ray: A Distributed
Framework for Emerging AI Applications", OSDI 2018) on a local Ray started for the sweep or on an existing cluster.

Both yield each cell's record as the cell finishes. Only the Ray executor imports ray, and only when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audit.errors import InputError
from audit.sweep.cells import Cell, pretrain_for_cells, run_cell, write_cell_record
from audit.sweep.spec import Resources

# Passed on to the workers of a joined cluster so that a cell sees the data and caches the driver sees (a local
# Ray's workers inherit this process' environment).
FORWARDED_ENVIRONMENT = ("RAI_AUDIT_DATA_DIR", "RAI_AUDIT_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "OMP_NUM_THREADS",
                         "RAI_AUDIT_CHECK_DECLARATIONS")


class RayUnavailableError(InputError):
    """--executor ray without ray installed, or a cluster address that cannot be joined."""


def _arguments(cell: Cell, out_dir: Path) -> tuple[dict[str, Any], str, str, str]:
    return cell.config.model_dump(mode="json"), str(cell.folder(out_dir)), cell.key, cell.label


def run_local(cells: list[Cell], out_dir: Path) -> Iterator[dict[str, Any]]:
    """In this process, in order."""
    for cell in cells:
        yield run_cell(*_arguments(cell, out_dir))


def by_pretraining_to_do(cells: list[Cell]) -> tuple[list[Cell], dict[Path, list[Cell]]]:
    """The cells that can start at once — those training nothing and those whose pretrained model is cached —
    and, per pretraining recipe still to run, the cells that start once it is in the cache."""
    ready: list[Cell] = []
    waiting: dict[Path, list[Cell]] = {}
    for cell in cells:
        to_do = cell.pretraining_to_do()
        if to_do is None:
            ready.append(cell)
        else:
            waiting.setdefault(to_do, []).append(cell)
    return ready, waiting


class RayExecutor:
    """Ray tasks, ``num_cpus``/``num_gpus`` each. Without ``address`` a local Ray of ``workers`` CPUs is started
    for the sweep and shut down after it; with one, the cluster at that address is joined (its nodes must have
    rai-audit installed)."""

    def __init__(self, *, workers: int, address: str | None, resources: Resources) -> None:
        self.workers, self.address, self.resources = workers, address, resources

    def check(self) -> None:
        """Fail before any work when a cell asks a local Ray for more CPUs than it has (Ray would wait for them
        forever) or ray cannot be imported."""
        if self.address is None and self.resources.num_cpus > self.workers:
            raise RayUnavailableError(
                f"[resources] num_cpus = {self.resources.num_cpus:g} per cell, but the local Ray gets --workers "
                f"{self.workers} CPUs, so no cell could ever start; expected num_cpus <= --workers")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise RayUnavailableError("--executor ray needs ray (pip install 'rai-audit[ray]'); or use "
                                      "--executor local") from None

    def run(self, cells: list[Cell], out_dir: Path) -> Iterator[dict[str, Any]]:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            self._start(ray)
        try:
            options = {"num_cpus": self.resources.num_cpus, "num_gpus": self.resources.num_gpus, "max_retries": 0}
            audit_cell, pretrain = ray.remote(**options)(run_cell), ray.remote(**options)(pretrain_for_cells)
            ready, waiting = by_pretraining_to_do(cells)
            pending = {audit_cell.remote(*_arguments(cell, out_dir)): cell for cell in ready}
            pretraining = {pretrain.remote(_arguments(group[0], out_dir)[0]): recipe
                           for recipe, group in waiting.items()}
            while pending or pretraining:
                done = ray.wait([*pending, *pretraining], num_returns=1)[0][0]
                if done in pending:
                    pending.pop(done)
                    yield ray.get(done)
                    continue
                failure = ray.get(done)
                for cell in waiting.pop(pretraining.pop(done)):
                    if failure is None:
                        pending[audit_cell.remote(*_arguments(cell, out_dir))] = cell
                    else:
                        yield write_cell_record(cell.folder(out_dir), cell.key, cell.label, failure)
        finally:
            if started_here:
                ray.shutdown()

    def _start(self, ray) -> None:
        if self.address is None:
            # Workers import the same audit package as this process (a source checkout comes first on their path).
            package_root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
            # A local Ray's processes inherit this environment, so its workers need no runtime_env: one with
            # env_vars makes Ray start a separate pool of workers for it, which costs a second per sweep.
            try:
                with _environment(PYTHONPATH=path):
                    ray.init(num_cpus=self.workers, num_gpus=None, include_dashboard=False, log_to_driver=False)
            except Exception as error:  # noqa: BLE001  (ray raises a bare Exception when its node times out)
                raise RayUnavailableError(f"could not start a local Ray ({_first_line(error)}); try again on a "
                                          "less loaded machine, or use --executor local") from None
            return
        environment = {name: os.environ[name] for name in FORWARDED_ENVIRONMENT if name in os.environ}
        try:
            ray.init(address=self.address, runtime_env={"env_vars": environment}, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise RayUnavailableError(f"--address {self.address}: cannot join a Ray cluster there "
                                      f"({_first_line(error)}); expected the address of a running cluster "
                                      "(ray start --head)") from None


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__
