"""Write a run's files atomically: each file goes to a temporary name in the same folder, then is renamed, so a
crash or a bad input never leaves a half-written results.json or report behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from audit.junit import junit_xml
from audit.results import AuditResults

RESULTS_FILE, REPORT_FILE, JUNIT_FILE = "results.json", "report.html", "junit.xml"


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
    """results.json, report.html and junit.xml; everything is rendered before the first file is written."""
    from reports import render_html

    out_dir = Path(out_dir)
    rendered = {
        RESULTS_FILE: results.to_json(),
        REPORT_FILE: render_html(results),
        JUNIT_FILE: junit_xml(results),
    }
    return {name: write_atomic(out_dir / name, text) for name, text in rendered.items()}
