"""The console side of progress reporting (``audit.progress``): bars on a terminal, plain lines in a log.

``reporter_for(console, quiet=...)`` picks one: nothing with ``--quiet``; rich progress bars when the console is a
terminal (running tasks only, each with its bar, count, elapsed time, ETA and status; a finished stage leaves one
"✓" line above them); plain lines otherwise (CI logs), which a log can hold: a start and a finish line per stage
and at most one line per task every ``PLAIN_INTERVAL_S`` seconds. Sub-tasks (a probe's scoring pass, a reference
model's fine-tuning) are mentioned only once they have run for ``SUBTASK_MENTION_S`` seconds, so quick ones leave
no trace. Text from configs and plug-ins (probe names, messages) is shown through ``audit.terminal.printable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from audit.progress import SILENT, ProgressReporter, ProgressTask
from audit.terminal import printable

PLAIN_INTERVAL_S = 10.0  # a log line per task at most this often
SUBTASK_MENTION_S = 5.0  # sub-tasks shorter than this stay out of the log and leave no "done" line


def reporter_for(console: Console, *, quiet: bool = False) -> ProgressReporter:
    """The reporter for a CLI command writing to ``console`` (stderr)."""
    if quiet:
        return SILENT
    if console.is_terminal:
        return RichProgressReporter(console)
    return PlainProgressReporter(console.file)


def format_duration(seconds: float) -> str:
    """1:02:03, 4:05 or 7s."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}" if minutes else f"{secs}s"


def _amount(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


@dataclass
class _Task:
    """The state both renderers keep per open task."""

    description: str
    total: float | None
    unit: str
    depth: int
    path: str  # the task with its ancestors below the root, for log lines
    started: float
    completed: float = 0.0
    info: str = ""
    last_line: float = 0.0
    lines: int = 0
    show_eta: bool = True

    def count(self) -> str:
        if self.total is None:
            return f"{_amount(self.completed)} {self.unit}".strip() if self.completed else ""
        return f"{_amount(self.completed)}/{_amount(self.total)} {self.unit}".strip()

    def eta(self, now: float) -> float | None:
        if not self.show_eta or not self.total or self.completed <= 0 or self.completed >= self.total:
            return None
        return (now - self.started) * (self.total - self.completed) / self.completed

    def major(self) -> bool:
        """The run, its stages and whole commands: always mentioned; deeper tasks only when long."""
        return self.depth <= 1


class _Handle(ProgressTask):
    def __init__(self, reporter: _TreeReporter, task: _Task):
        self._reporter, self._task = reporter, task

    def advance(self, amount: float = 1, *, info: str | None = None) -> None:
        self.update(completed=self._task.completed + amount, info=info)

    def update(self, *, completed: float | None = None, total: float | None = None, info: str | None = None
               ) -> None:
        task = self._task
        if completed is not None:
            task.completed = completed
        if total is not None:
            task.total = total
        if info is not None:
            task.info = printable(info)
        self._reporter._updated(task)

    def close(self, *, failed: bool = False) -> None:
        self._reporter._closed(self._task, failed=failed)


class _TreeReporter(ProgressReporter):
    """Keeps the stack of open tasks (a task opened while another runs is its sub-task)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._open: list[_Task] = []

    def task(self, description: str, *, total: float | None = None, unit: str = "", eta: bool = True
             ) -> ProgressTask:
        description = printable(description)
        parent = self._open[-1] if self._open else None
        depth = parent.depth + 1 if parent else 0
        path = f"{parent.path} › {description}" if parent and parent.depth >= 1 else description
        now = self._clock()
        task = _Task(description, total, unit, depth, path, started=now, last_line=now, show_eta=eta)
        self._open.append(task)
        self._opened(task)
        return _Handle(self, task)

    def _closed(self, task: _Task, *, failed: bool) -> None:
        if task in self._open:
            self._open.remove(task)
            self._finished(task, failed=failed, elapsed=self._clock() - task.started)

    def _summary(self, task: _Task) -> str:
        return ", ".join(part for part in (task.count(), task.info) if part)

    def _opened(self, task: _Task) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _updated(self, task: _Task) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _finished(self, task: _Task, *, failed: bool, elapsed: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class PlainProgressReporter(_TreeReporter):
    """Plain lines for logs: start and finish of each stage, a status line per task at most every ``interval`` s."""

    def __init__(self, stream: TextIO, *, interval: float = PLAIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(clock=clock)
        self._stream, self._interval = stream, interval
        # A stage's start line waits for the next line written: a run refused in its first instant (a damaged
        # model folder) then prints only its one-line error, not the start and stop of the stages it was in.
        self._unannounced: dict[int, tuple[_Task, str]] = {}

    def _write(self, line: str) -> None:
        for task, start_line in self._unannounced.values():
            self._emit(start_line)
            task.lines += 1
        self._unannounced.clear()
        self._emit(line)

    def _emit(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    @staticmethod
    def _start_line(task: _Task) -> str:
        return f"{task.path}: started" + (f" ({task.count()})" if task.total else "")

    def note(self, message: str) -> None:
        self._write(f"· {printable(message)}")

    def _opened(self, task: _Task) -> None:
        if task.major():
            self._unannounced[id(task)] = (task, self._start_line(task))

    def _updated(self, task: _Task) -> None:
        now = self._clock()
        if now - task.last_line < max(self._interval, 0 if task.major() else SUBTASK_MENTION_S):
            return
        if task.total and task.completed >= task.total:
            return  # the "done" line will say it
        task.last_line = now
        task.lines += 1
        parts = [task.count()]
        if task.total:
            parts[0] += f" ({100 * task.completed / task.total:.0f}%)"
        parts += [task.info, f"{format_duration(now - task.started)} elapsed"]
        eta = task.eta(now)
        if eta is not None:
            parts.append(f"about {format_duration(eta)} left")
        self._write(f"{task.path}: " + ", ".join(part for part in parts if part))

    def _finished(self, task: _Task, *, failed: bool, elapsed: float) -> None:
        if failed and self._unannounced.pop(id(task), None) is not None:
            return  # stopped before any line was written under it: the error line says it all
        if not (task.major() or task.lines or elapsed >= SUBTASK_MENTION_S):
            return
        outcome = f"stopped after {format_duration(elapsed)}" if failed else f"done in {format_duration(elapsed)}"
        summary = self._summary(task)
        self._write(f"{task.path}: {outcome}" + (f" ({summary})" if summary else ""))


class _CountColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(task.fields["state"].count(), style="progress.download")


class _EtaColumn(ProgressColumn):
    def render(self, task) -> Text:
        remaining = task.fields["state"].eta(time.monotonic())
        return Text("" if remaining is None else f"ETA {format_duration(remaining)}", style="progress.remaining")


class RichProgressReporter(_TreeReporter):
    """Live progress bars of the running tasks; a finished stage (or a long sub-task) leaves a "✓" line."""

    def __init__(self, console: Console):
        super().__init__(clock=time.monotonic)  # the ETA column reads the same clock
        self._console = console
        self._progress = Progress(
            TextColumn("{task.fields[indent]}{task.description}", markup=False),
            BarColumn(bar_width=24),
            _CountColumn(),
            TimeElapsedColumn(),
            _EtaColumn(),
            TextColumn("{task.fields[state].info}", markup=False),
            console=console, transient=True, refresh_per_second=4,
        )
        self._ids: dict[int, int] = {}
        self._live = False

    def note(self, message: str) -> None:
        indent = "  " * len(self._open)
        self._console.print(f"{indent}[dim]·[/dim] {escape(printable(message))}", highlight=False)

    def _opened(self, task: _Task) -> None:
        if not self._live:
            self._progress.start()
            self._live = True
        self._ids[id(task)] = self._progress.add_task(
            task.description, total=task.total, completed=task.completed, indent="  " * task.depth, state=task)
        self._progress.refresh()  # shown at once, not at the next tick: a task that starts is news

    def _updated(self, task: _Task) -> None:
        self._progress.update(self._ids[id(task)], completed=task.completed, total=task.total)

    def _finished(self, task: _Task, *, failed: bool, elapsed: float) -> None:
        self._progress.remove_task(self._ids.pop(id(task)))
        if task.major() or elapsed >= SUBTASK_MENTION_S:
            mark = "[red]✗[/red]" if failed else "[green]✓[/green]"
            outcome = "stopped after" if failed else "in"
            summary = self._summary(task)
            detail = f" ({escape(summary)})" if summary else ""
            self._console.print(f"{'  ' * task.depth}{mark} {escape(task.description)}{detail} {outcome} "
                                f"{format_duration(elapsed)}", highlight=False)
        if not self._open:
            self._progress.stop()
            self._live = False
