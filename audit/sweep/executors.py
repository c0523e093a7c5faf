"""Where cells run: one after another in this process, or as Ray tasks (Moritz et al., "Ray: A Distributed
Framework for Emerging AI Applications", OSDI 2018) on a local Ray started for the sweep or on an existing cluster.

Both yield each cell's record as the cell finishes. Only the Ray executor imports ray, and only when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.errors import InputError
from audit.sweep.cells import Cell, run_cell
from audit.sweep.spec import Resources

# Passed on to Ray workers so that a cell sees the data and caches the driver sees.
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


def one_per_pretraining(cells: list[Cell]) -> tuple[list[Cell], dict[str, list[Cell]]]:
    """The cells to start at once — those training nothing, and the first of each pretraining recipe — and the
    cells to start after the first of their pretraining recipe finished: two cells pretraining one recipe at the
    same time would both write its cache folder."""
    first: list[Cell] = []
    followers: dict[str, list[Cell]] = {}
    for cell in cells:
        if cell.pretraining is None or cell.pretraining not in followers:
            first.append(cell)
            if cell.pretraining is not None:
                followers[cell.pretraining] = []
        else:
            followers[cell.pretraining].append(cell)
    return first, followers


class RayExecutor:
    """Ray tasks, ``num_cpus``/``num_gpus`` each. Without ``address`` a local Ray of ``workers`` CPUs is started
    for the sweep and shut down after it; with one, the cluster at that address is joined (its nodes must have
    rai-audit installed)."""

    def __init__(self, *, workers: int, address: str | None, resources: Resources) -> None:
        self.workers, self.address, self.resources = workers, address, resources

    def check(self) -> None:
        """Fail before any work when ray cannot be imported."""
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
            task = ray.remote(num_cpus=self.resources.num_cpus, num_gpus=self.resources.num_gpus,
                              max_retries=0)(run_cell)
            first, followers = one_per_pretraining(cells)
            pending = {task.remote(*_arguments(cell, out_dir)): cell for cell in first}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(done[0])
                yield ray.get(done[0])
                for follower in followers.pop(cell.pretraining, []):
                    pending[task.remote(*_arguments(follower, out_dir))] = follower
        finally:
            if started_here:
                ray.shutdown()

    def _start(self, ray) -> None:
        environment = {name: os.environ[name] for name in FORWARDED_ENVIRONMENT if name in os.environ}
        if self.address is None:
            # Workers import the same audit package as this process (a source checkout comes first on their path).
            package_root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
            try:
                ray.init(num_cpus=self.workers, num_gpus=None, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {**environment, "PYTHONPATH": path}})
            except Exception as error:  # noqa: BLE001  (ray raises a bare Exception when its node times out)
                raise RayUnavailableError(f"could not start a local Ray ({_first_line(error)}); try again on a "
                                          "less loaded machine, or use --executor local") from None
            return
        try:
            ray.init(address=self.address, runtime_env={"env_vars": environment}, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise RayUnavailableError(f"--address {self.address}: cannot join a Ray cluster there "
                                      f"({_first_line(error)}); expected the address of a running cluster "
                                      "(ray start --head)") from None


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__
