"""Finished probes' results kept beside a run's outputs, so that a run killed midway resumes where it stopped.

Layout: ``OUT/.probe-results/<key>.json``, one file per finished probe, each written atomically (temporary file,
then rename), so a kill leaves whole files or none. The key is the sha256 of the canonical JSON of everything the
probe's result depends on:

- the probe: name, version, settings (as validated) and its derived seed;
- the subject: the sha256 of its weights (and of the masked-LM's), the digests of the other files in the model
  folders (config, tokenizer, ``task.json`` and its examples, ``finetune.json``), of the pretrained checkpoint the
  classifier came from (shadow models start from it) and of the canary manifest;
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

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.data.loaders import file_sha256
from audit.outputs import write_atomic
from audit.results import DatasetRecord, ProbeResult

if TYPE_CHECKING:
    from audit.subject import ModelUnderAudit
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


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, so equal settings give equal keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def _digest_or_reason(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError as error:  # an unreadable file still keys something: its absence of content
        return f"unreadable: {type(error).__name__}"


def folder_digests(folder: Path, *, include_weights: bool) -> dict[str, str]:
    """sha256 of each file directly inside ``folder`` (not sub-folders such as training checkpoints).

    Weight files are left out when the subject's weights digest already covers them.
    """
    digests = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or (not include_weights and path.name.endswith(".safetensors")):
            continue
        digests[path.name] = _digest_or_reason(path)
    return digests


def subject_fingerprint(subject: ModelUnderAudit, *, pretrained_dir: Path | None,
                        canary_manifest: Path | None) -> dict[str, Any]:
    """What identifies the subject for a probe: weights, model folders, pretrained checkpoint, canaries."""
    info = subject.info()  # cached by the subject: the weights are hashed once per run
    mlm_card = info.model_card.get("mlm")
    folders: dict[str, dict[str, str]] = {"model": folder_digests(subject.path, include_weights=False)}
    if subject.mlm_path is not None:
        folders["mlm"] = folder_digests(subject.mlm_path, include_weights=False)
    if pretrained_dir is not None and pretrained_dir.is_dir() and pretrained_dir.resolve() not in (
            subject.path, subject.mlm_path):
        folders["pretrained"] = folder_digests(pretrained_dir.resolve(), include_weights=True)
    return {
        "weights": info.sha256,
        "mlm_weights": mlm_card.get("sha256") if isinstance(mlm_card, dict) else None,
        "folders": folders,
        "canary_manifest": _digest_or_reason(canary_manifest) if canary_manifest is not None else None,
    }


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
        return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()

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
        changed = [name for name, digest in files.items() if _digest_or_reason(Path(name)) != digest]
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
            "dataset_files": {str(path): _digest_or_reason(Path(path)) for path in dataset_files},
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
