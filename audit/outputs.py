"""Write a run's files atomically: each file goes to a temporary name in the same folder, then is renamed, so a
crash or a bad input never leaves a half-written results.json or report behind. The ``check_output_*``
functions say before any work whether an output path can be written at all."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from audit.errors import InputError
from audit.junit import junit_xml
from audit.progress import current_reporter
from audit.results import AuditResults, StageTiming

RESULTS_FILE, REPORT_FILE, JUNIT_FILE = "results.json", "report.html", "junit.xml"


class OutputPathError(InputError):
    """An output path that cannot be written: not a folder, a folder where a file goes, or not writable."""


def check_output_folder(path: str | Path, *, option: str = "--out", staged_beside: bool = False) -> None:
    """Fail fast when ``path`` cannot be (or become) a folder to write into.

    ``staged_beside``: the folder is built under a temporary name beside it and renamed (training), so its
    parent must take new entries too.
    """
    path = Path(path)
    if _exists(path) and not path.is_dir():
        raise OutputPathError(f"{option} {path}: exists and is not a folder; expected an output folder")
    _check_writable(path, path, option)
    if staged_beside:
        _check_writable(path.absolute().parent, path, option)


def check_output_file(path: str | Path, *, option: str = "--out") -> None:
    """Fail fast when a file cannot be written at ``path``: a folder is there, or its folder is read-only."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a folder; expected the path of a file to write")
    _check_writable(path.parent, path, option)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. no permission to look inside a parent: taken as absent; the write test decides
        return False


def _check_writable(folder: Path, given: Path, option: str) -> None:
    """The nearest existing folder at or above ``folder`` must take a new file (tried with a temp file)."""
    existing = folder.absolute()
    while not _exists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{option} {given}: {existing} is not a folder; "
                              "expected a path in a writable folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise OutputPathError(f"{option} {given}: cannot write in {existing} ({error.strerror or error}); "
                              "expected a path in a writable folder") from None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def give_ordinary_mode(path: str | Path) -> None:
    """Read/write for the owner, readable by others as the umask allows (0644 under the usual 022), like any file
    the user writes; temporary-file writers (``mkstemp``, safetensors via transformers) leave 0600."""
    os.chmod(path, 0o666 & ~_umask())


def give_folder_ordinary_modes(folder: str | Path) -> None:
    """``give_ordinary_mode`` for every plain file directly in ``folder`` (a saved model directory)."""
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink():
            give_ordinary_mode(path)


def write_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        give_ordinary_mode(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_run_outputs(results: AuditResults, out_dir: str | Path) -> dict[str, Path]:
    """results.json, report.html and junit.xml; everything is rendered before the first file is written.

    The wall time of rendering is recorded first, as the stage "rendering" of ``results.run.stages`` (``results``
    is updated), so that results.json and the report both show it: the report is rendered once to time it and again
    with that time in it; charts, the slow part, are drawn only the first time (``reports.render``'s chart cache).
    """
    from reports import render_html

    out_dir = Path(out_dir)
    started = time.perf_counter()
    with current_reporter().task("rendering the report"):
        render_html(results)
        junit_xml(results)
        timing = StageTiming(stage="rendering", duration_s=round(time.perf_counter() - started, 3))
        results.run.stages = [stage for stage in results.run.stages if stage.stage != "rendering"] + [timing]
        rendered = {
            RESULTS_FILE: results.to_json(),
            REPORT_FILE: render_html(results),
            JUNIT_FILE: junit_xml(results),
        }
    return {name: write_atomic(out_dir / name, text) for name, text in rendered.items()}
