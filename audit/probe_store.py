"""Finished probes' results kept beside a run's outputs, so that a run killed midway resumes where it stopped.

Layout: ``OUT/.probe-results/<key>.json``, one file per finished probe, each written atomically (temporary file,
then rename), so a kill leaves whole files or none. The key is the sha256 of the canonical JSON of everything the
probe's result depends on:

- the probe: name, version, settings (as validated) and its derived seed;
- the subject: the digests of every file in the model folders it came from (subject, masked-LM, the pretrained
  checkpoint shadow models start from), as results.json's manifest records them, and of the canary manifest;
- the run: the data directory in effect, torch's thread count, the device, the package versions and git commit.

A stored file also lists the dataset files the probe read, with their sha256; it is reused only when each still
has that digest. Any mismatch, or an unreadable or corrupt file, means the probe runs again — a stored result is
never trusted beyond its key.

Lifecycle (``rai-audit run``): a probe's result is stored when it finishes with status ok or skipped (an error
runs again next time, in case it was transient); the next run into the same ``--out`` reuses what matches; once a
run's outputs are written the store is removed, so running again after a complete run starts afresh;
``run --fresh`` clears it before the probes start.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.digests import file_sha256
from audit.outputs import write_atomic
from audit.results import DatasetRecord, ProbeResult, json_sha256

if TYPE_CHECKING:
    from probes.base import Probe

logger = logging.getLogger(__name__)

STORE_DIR = ".probe-results"
STORE_FORMAT = 1
REUSABLE_STATUSES = ("ok", "skipped")


@dataclass(frozen=True)
class StoredProbe:
    """A probe's result from an earlier, interrupted run, with the datasets it read (for results.json)."""

    result: ProbeResult
    datasets: list[DatasetRecord]
    dataset_files: dict[Path, str]  # path -> dataset name, for results.json's manifest


def file_digest_or_reason(path: Path) -> str:
    try:
        return file_sha256(path)[0]
    except OSError as error:  # an unreadable file still keys something: its absence of content
        return f"unreadable: {type(error).__name__}"


class ProbeResultStore:
    """Stored probe results of one output folder under keys of (run identity, probe, settings, seed)."""

    def __init__(self, out_dir: str | Path, *, identity: dict[str, Any]) -> None:
        self.folder = Path(out_dir) / STORE_DIR
        self.identity = identity

    def key(self, probe: Probe, seed: int) -> str:
        parts = {
            "format": STORE_FORMAT,
            "run": self.identity,
            "probe": {"name": probe.name, "version": probe.version, "config": probe.config.model_dump(mode="json"),
                      "seed": seed},
        }
        return json_sha256(parts)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, probe: Probe, seed: int) -> tuple[StoredProbe | None, str]:
        """The stored result for this probe and seed, or None with why it cannot be reused ("" if none stored)."""
        key = self.key(probe, seed)
        path = self._path(key)
        if not path.is_file():
            return None, ""
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(stored, dict) or stored.get("format") != STORE_FORMAT or stored.get("key") != key:
                return None, "stored under another key"
            result = ProbeResult.model_validate(stored["result"])
            datasets = [DatasetRecord.model_validate(record) for record in stored["datasets"]]
            files, names = stored["dataset_files"], stored["dataset_names"]
            if (result.probe != probe.name or result.status not in REUSABLE_STATUSES or not isinstance(files, dict)
                    or not isinstance(names, dict) or set(names) != set(files)):
                return None, "not a finished result of this probe"
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring corrupt stored probe result %s: %s", path, error)
            return None, "the stored file is corrupt"
        changed = [name for name, digest in files.items() if file_digest_or_reason(Path(name)) != digest]
        if changed:
            return None, f"a dataset file changed since ({changed[0]})"
        return StoredProbe(result=result, datasets=datasets,
                           dataset_files={Path(path): str(name) for path, name in names.items()}), ""

    def save(self, probe: Probe, seed: int, result: ProbeResult, *, datasets: Sequence[DatasetRecord],
             dataset_files: dict[Path, str]) -> None:
        """Keep a finished result (ok or skipped); a failure to store is logged, never fatal to the audit."""
        if result.status not in REUSABLE_STATUSES:
            return
        key = self.key(probe, seed)
        payload = {
            "format": STORE_FORMAT,
            "key": key,
            "probe": probe.name,
            "result": result.model_dump(mode="json"),
            "datasets": [record.model_dump(mode="json") for record in datasets],
            "dataset_files": {str(path): file_digest_or_reason(Path(path)) for path in dataset_files},
            "dataset_names": {str(path): name for path, name in dataset_files.items()},
        }
        try:
            write_atomic(self._path(key), json.dumps(payload, ensure_ascii=False) + "\n")
        except OSError as error:
            logger.warning("could not store the result of probe %s for resuming: %s", probe.name, error)

    def clear(self) -> None:
        remove_store(self.folder.parent)


def remove_store(out_dir: str | Path) -> None:
    """Drop the stored results of ``out_dir`` (after its run completed, or for ``run --fresh``)."""
    shutil.rmtree(Path(out_dir) / STORE_DIR, ignore_errors=True)
