"""How far long work has got, reported without printing: the CLI owns the console.

Library code (training, the runner, probes, the subject's batched scoring) reports through a ``ProgressReporter``:
``task(description, total=..., unit=...)`` opens a task — a context manager whose ``advance`` and ``update`` say
how far it is and ``info`` what it is seeing (a loss, a validation score) — and ``note(message)`` says what happens
next. Tasks opened while another is open are its sub-tasks. The base reporter does nothing, so library calls are
silent unless someone asked: the CLI passes a reporter that draws progress bars on a terminal or writes plain lines
to a log (``audit.progress_display``).

Code deep in a call chain — fine-tuning inside the membership probe's reference models, the subject's scoring
loops — finds the reporter of the run in progress with ``current_reporter()``; ``reporting_to(reporter)`` sets it
for a block (the runner and the CLI's training commands do).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self


class ProgressTask:
    """A handle on one task of a ``ProgressReporter``; this base ignores everything (the silent reporter's)."""

    def advance(self, amount: float = 1, *, info: str | None = None) -> None:
        """``amount`` more units done; ``info`` replaces the task's short status text (None keeps it)."""

    def update(self, *, completed: float | None = None, total: float | None = None, info: str | None = None
               ) -> None:
        """Set how much is done, the total (when it becomes known) or the status text."""

    def close(self, *, failed: bool = False) -> None:
        """The task ended (``failed``: by an exception); called by ``__exit__``."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(failed=exc_type is not None)


class ProgressReporter:
    """Receives progress from library code. This base is the silent default; the CLI's subclasses render it."""

    def task(self, description: str, *, total: float | None = None, unit: str = "", eta: bool = True
             ) -> ProgressTask:
        """Open a task of ``total`` units (None: unknown); use it as a context manager so that it closes.

        ``eta=False`` when units take very different times (the stages of a run), so that no estimate is shown.
        """
        return ProgressTask()

    def note(self, message: str) -> None:
        """One line saying what happens next (e.g. "reusing the cached pretrained model")."""

    def __call__(self, message: str) -> None:
        """Calling the reporter is ``note``: probes call ``ctx.progress("…")``."""
        self.note(message)


SILENT = ProgressReporter()
_current: ContextVar[ProgressReporter] = ContextVar("rai_audit_progress_reporter", default=SILENT)


def current_reporter() -> ProgressReporter:
    """The reporter set by the innermost ``reporting_to`` around this call, else the silent one."""
    return _current.get()


@contextmanager
def reporting_to(reporter: ProgressReporter) -> Iterator[ProgressReporter]:
    """Make ``reporter`` the ``current_reporter()`` inside the block."""
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)
