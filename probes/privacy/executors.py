"""Where reference-model jobs run: in this process (default) or fanned out over a Ray cluster.

An ``Executor`` has one method, ``map(fn, jobs, on_done=None) -> list`` of results in job order (``on_done()`` is
called as each job finishes, for a progress count). ``fn`` must be a module-level
function (Ray ships it to workers by reference, so the workers must be able to import ``audit`` and ``probes``:
install the package, e.g. ``pip install -e .``, on every node). Jobs carry their own seeds, so the same jobs give
the same results on either executor; thread counts are pinned by the job functions themselves.

Ray is an optional extra (``pip install rai-audit[ray]``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class ExecutorError(RuntimeError):
    """The executor cannot be created (unknown name, Ray missing or unreachable)."""


class Executor(Protocol):
    name: str

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, on_done: Callable[[], None] | None = None
            ) -> list[Any]:
        """Apply ``fn`` to every job; results in job order; ``on_done()`` after each job finishes."""


class LocalExecutor:
    """Runs jobs one after another in this process."""

    name = "local"

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, on_done: Callable[[], None] | None = None
            ) -> list[Any]:
        results = []
        for job in jobs:
            results.append(fn(job))
            if on_done is not None:
                on_done()
        return results


class RayExecutor:
    """Runs each job as a Ray task (one CPU each by default).

    With ``address`` None and no Ray running, a local instance is started (``num_cpus`` of them, no dashboard) and
    shut down again after ``map``; an existing connection (``ray.is_initialized()``) is used and left open.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, cpus_per_job: float = 1.0):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorError(
                "executor 'ray' needs the ray package; install the extra: pip install 'rai-audit[ray]'"
            ) from None
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_job = cpus_per_job

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, on_done: Callable[[], None] | None = None
            ) -> list[Any]:
        import ray

        started_here = False
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    num_cpus=None if self.address else self.num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except Exception as error:  # noqa: BLE001  (ray raises ConnectionError, RuntimeError, ...)
                where = self.address or "a local Ray instance"
                raise ExecutorError(f"could not start or reach {where}: {error}") from None
            started_here = True
        try:
            remote = ray.remote(num_cpus=self.cpus_per_job, max_retries=0)(fn)
            submitted = [remote.remote(job) for job in jobs]
            pending = list(submitted)
            while pending:
                _, pending = ray.wait(pending, num_returns=1)
                if on_done is not None:
                    on_done()
            return ray.get(submitted)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(name: str, *, address: str | None = None, num_cpus: int | None = None) -> Executor:
    """The executor named ``name`` ("local" or "ray")."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus)
    raise ExecutorError(f"unknown executor {name!r}; expected 'local' or 'ray'")
