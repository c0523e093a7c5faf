"""Recompute the digests a results.json records (``rai-audit verify``).

What is checked, in this order, stopping at the first mismatch:
1. the self-digest: ``results_sha256`` against the fingerprint of the file's content (``audit.results.
   content_sha256``) — an edited value anywhere in results.json breaks it;
2. the config as run against ``manifest.config_sha256``;
3. every model folder of the manifest (the subject — or ``--model DIR`` in its place — the masked- or causal-LM
   side model, the pretrained model): each recorded file must be there with the recorded sha256, and no other file may have
   appeared (a new file, e.g. a shard index, changes what loads);
4. every dataset file and the policy file, at their recorded paths;
5. the report (``--report``): the results digest it embeds (``<meta name="rai-audit-results-sha256">``) must be
   this results.json's fingerprint, i.e. it was rendered from these results.

A folder or file that is no longer at its recorded path (another machine, a cleaned cache) is reported as
"not checked" rather than as a mismatch: the digests cannot be recomputed there, and the summary line says so.

Limits: the self-digest detects edits, not forgery — whoever edits results.json can also recompute it. Keep the
fingerprint somewhere else too (the report shows it; CI logs, a signed release note) and compare.

Imports neither torch nor transformers: reading files and JSON needs neither.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from audit.digests import file_sha256, folder_files
from audit.errors import InputError
from audit.results import (
    READABLE_SCHEMA_VERSIONS,
    SELF_DIGEST_FIELD,
    ExternalFileDigest,
    Manifest,
    ModelFolderDigests,
    content_sha256,
    json_sha256,
)

REPORT_DIGEST_META = "rai-audit-results-sha256"
_REPORT_DIGEST = re.compile(rf'<meta name="{REPORT_DIGEST_META}" content="([0-9a-f]{{64}})">')


class VerifyInputError(InputError):
    """``rai-audit verify`` cannot start: a missing or unreadable file, or not a results.json with digests."""


class _Mismatch(Exception):
    """A recomputed digest differs from the recorded one (internal: stops the checks at the first)."""


@dataclass
class Verification:
    """The outcome: ``mismatch`` names the first difference found (None: everything checked matched)."""

    results_path: Path
    fingerprint: str | None
    checked: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    mismatch: str | None = None

    @property
    def ok(self) -> bool:
        return self.mismatch is None

    def summary(self) -> str:
        """One line for the terminal."""
        if self.mismatch is not None:
            return f"MISMATCH {self.results_path}: {self.mismatch}"
        line = f"verified {self.results_path}: fingerprint {self.fingerprint}; matched {', '.join(self.checked)}"
        if self.not_checked:
            line += f"; not checked (not at the recorded path): {', '.join(self.not_checked)}"
        return line


def verify_results(results_path: str | Path, *, model_dir: str | Path | None = None,
                   report_path: str | Path | None = None) -> Verification:
    """Recompute every digest ``results_path`` records; raise VerifyInputError on bad input (see module doc)."""
    results_path = Path(results_path)
    model_dir = Path(model_dir) if model_dir is not None else None
    report_path = Path(report_path) if report_path is not None else None
    if model_dir is not None and not model_dir.is_dir():
        raise VerifyInputError(f"--model {model_dir}: not a folder; expected the audited model's folder")
    report_text = _read_report(report_path) if report_path is not None else None
    document = _read_document(results_path)
    fingerprint = _fingerprint(document, results_path)
    outcome = Verification(results_path=results_path, fingerprint=fingerprint)
    try:
        _check_self_digest(document, fingerprint)
        manifest = _manifest(document, results_path)
        if model_dir is not None and not any("subject" in folder.roles for folder in manifest.models):
            raise VerifyInputError(f"{results_path}: its manifest records no subject folder to compare --model with")
        _check_config(document, manifest, outcome)
        for folder in manifest.models:
            _check_model_folder(folder, model_dir if "subject" in folder.roles else None, outcome)
        for recorded in manifest.dataset_files:
            _check_external_file(recorded, f"dataset file of {recorded.dataset}", outcome)
        if manifest.policy is not None:
            _check_external_file(manifest.policy, "policy", outcome)
        if report_text is not None:
            _check_report(report_text, report_path, fingerprint, outcome)
    except _Mismatch as mismatch:
        outcome.mismatch = str(mismatch)
    return outcome


def _read_document(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise VerifyInputError(f"{path}: no such file; expected a results.json written by `rai-audit run`")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error).splitlines()[0]
        raise VerifyInputError(f"{path}: not a readable JSON file ({reason}); expected a results.json") from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise VerifyInputError(f"{path}: not a results.json (no schema_version at the top level)")
    version = document["schema_version"]
    if version not in READABLE_SCHEMA_VERSIONS:
        raise VerifyInputError(f"{path}: schema_version {version!r} is not one this rai-audit reads "
                               f"({', '.join(READABLE_SCHEMA_VERSIONS)})")
    if not isinstance(document.get(SELF_DIGEST_FIELD), str) or "manifest" not in document:
        raise VerifyInputError(f"{path}: records no digests (no {SELF_DIGEST_FIELD}/manifest; schema {version!r}); "
                               "re-run the audit with this rai-audit to get a verifiable results.json")
    return document


def _fingerprint(document: dict[str, Any], path: Path) -> str | None:
    """The content's sha256; None when it holds NaN/Infinity, which have no canonical form."""
    try:
        return content_sha256(document)
    except ValueError:
        return None
    except RecursionError:
        raise VerifyInputError(f"{path}: nested too deeply to be a results.json") from None


def _check_self_digest(document: dict[str, Any], fingerprint: str | None) -> None:
    recorded = document[SELF_DIGEST_FIELD]
    if fingerprint is None:
        raise _Mismatch("results.json was changed after it was written: it holds NaN or Infinity, which "
                        "rai-audit never writes")
    if fingerprint != recorded:
        raise _Mismatch(f"results.json was changed after it was written: its content's sha256 is {fingerprint}, "
                        f"the recorded {SELF_DIGEST_FIELD} is {recorded}")


def _manifest(document: dict[str, Any], path: Path) -> Manifest:
    try:
        return Manifest.model_validate(document["manifest"])
    except ValidationError as error:
        raise VerifyInputError(f"{path}: its manifest does not match the results schema "
                               f"({str(error).splitlines()[0]})") from None


def _check_config(document: dict[str, Any], manifest: Manifest, outcome: Verification) -> None:
    if json_sha256(document.get("config")) != manifest.config_sha256:
        raise _Mismatch("the config in results.json is not the one the manifest recorded (config_sha256 differs)")
    outcome.checked.append("config")


def _check_model_folder(recorded: ModelFolderDigests, replacement: Path | None, outcome: Verification) -> None:
    folder = replacement if replacement is not None else Path(recorded.path)
    what = "/".join(recorded.roles) + " model"
    if not folder.is_dir():
        outcome.not_checked.append(f"{what} folder {folder}")
        return
    present = {path.name: path for path in folder_files(folder)}
    for entry in recorded.files:
        if entry.name not in present:
            raise _Mismatch(f"{what} file {folder / entry.name} is missing (recorded sha256 {entry.sha256})")
        sha256, _ = file_sha256(present[entry.name])
        if sha256 != entry.sha256:
            raise _Mismatch(f"{what} file {folder / entry.name} changed: sha256 {sha256}, recorded {entry.sha256}")
    extra = sorted(set(present) - {entry.name for entry in recorded.files})
    if extra:
        raise _Mismatch(f"{what} folder {folder} holds {', '.join(extra)}, which the audit did not see")
    outcome.checked.append(f"{len(recorded.files)} {what} files")


def _check_external_file(recorded: ExternalFileDigest, what: str, outcome: Verification) -> None:
    path = Path(recorded.path)
    if not path.is_file():
        outcome.not_checked.append(f"{what} {path}")
        return
    sha256, _ = file_sha256(path)
    if sha256 != recorded.sha256:
        raise _Mismatch(f"{what} {path} changed: sha256 {sha256}, recorded {recorded.sha256}")
    outcome.checked.append(what)


def _read_report(path: Path) -> str:
    if not path.is_file():
        raise VerifyInputError(f"--report {path}: no such file; expected a report.html written by rai-audit")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise VerifyInputError(f"--report {path}: cannot be read as UTF-8 HTML ({error})") from None
    if _REPORT_DIGEST.search(text) is None:
        raise VerifyInputError(f"--report {path}: carries no {REPORT_DIGEST_META} meta tag; expected a report "
                               "rendered by this rai-audit (`rai-audit report results.json --out report.html`)")
    return text


def _check_report(text: str, path: Path, fingerprint: str | None, outcome: Verification) -> None:
    embedded = _REPORT_DIGEST.search(text).group(1)
    if embedded != fingerprint:
        raise _Mismatch(f"report {path} was rendered from other results (results sha256 {embedded}, "
                        f"this results.json's is {fingerprint})")
    outcome.checked.append("report")
