"""sha256 digests of files and model folders: what results.json's manifest records and `rai-audit verify`
recomputes. Standard library and the result schema only — no torch, no transformers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from audit.results import ExternalFileDigest, FileDigest, ModelFolderDigests

_BLOCK = 1 << 20


def file_sha256(path: Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def folder_files(folder: Path) -> list[Path]:
    """The files a model folder's manifest covers: regular files at its top level, hidden ones excepted, by name."""
    return sorted((path for path in Path(folder).iterdir() if path.is_file() and not path.name.startswith(".")),
                  key=lambda path: path.name)


def folder_digests(folder: Path) -> list[FileDigest]:
    digests = []
    for path in folder_files(folder):
        sha256, size = file_sha256(path)
        digests.append(FileDigest(name=path.name, sha256=sha256, bytes=size))
    return digests


def model_folder_manifest(folders: Iterable[tuple[Path, str]]) -> list[ModelFolderDigests]:
    """One entry per distinct folder (resolved path), given (folder, role) pairs; a folder keeps every role."""
    roles: dict[Path, list[str]] = {}
    for folder, role in folders:
        folder_roles = roles.setdefault(Path(folder).resolve(), [])
        if role not in folder_roles:
            folder_roles.append(role)
    return [ModelFolderDigests(roles=folder_roles, path=str(folder), files=folder_digests(folder))
            for folder, folder_roles in roles.items()]


def external_file_digest(path: Path, *, dataset: str | None = None) -> ExternalFileDigest:
    resolved = Path(path).resolve()
    sha256, size = file_sha256(resolved)
    return ExternalFileDigest(path=str(resolved), sha256=sha256, bytes=size, dataset=dataset)
