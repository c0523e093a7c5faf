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


def write_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs are ordinary files
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
