"""Models from the Hugging Face hub: telling a hub id from a folder, and fetching a pinned snapshot of it.

**Folder or hub id.** ``subject.model`` (or ``--model``) is read as follows:

1. a file-system entry of that name exists (after ``~`` expansion) → the local folder, exactly as before;
2. otherwise, text of the form ``org/name`` or ``org/name@revision`` (one ``/``, no leading ``/``, ``.`` or ``~``)
   that huggingface_hub accepts as a repo id → a model repository on the hub, at ``revision`` (a branch, tag or
   commit hash; default: the repository's default branch). The revision may instead be given as
   ``subject.revision`` in the config, never both;
3. anything else → the local folder, whose absence the model-folder checks report as today.

So an existing folder always wins over a hub id of the same spelling; ``./org/name`` forces a folder.

**Fetching.** ``huggingface_hub.snapshot_download`` fetches only the files an audit reads — safetensors weights,
JSON configs and indexes, tokenizer vocabularies (``*.txt``, sentencepiece ``*.model``), rai-audit task data
(``*.jsonl``) — at the top of the
repository (sub-folders are never read). Everything else about the hub is left to huggingface_hub: the cache
(``HF_HOME`` / ``HF_HUB_CACHE``), offline mode (``HF_HUB_OFFLINE``), tokens (``HF_TOKEN`` or a saved login) and
the endpoint. A repository without safetensors weights is refused: pickled weights (``pytorch_model.bin``) are
never fetched nor read. The snapshot then goes through the same folder checks as a local folder
(``audit.model_folder``), its files' links into the cache's ``blobs/`` allowed; ``trust_remote_code`` is never
enabled.

Only the audited model may be a hub id. A classifier's masked LM (``subject.mlm``, ``lm_path``, a
``finetune.json``'s ``pretrained_from``) and the membership probe's reference models stay local folders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from audit.errors import InputError
from audit.model_folder import PICKLE_PATTERNS, SINGLE_WEIGHTS, WEIGHTS_INDEX
from audit.results import HubSource

logger = logging.getLogger(__name__)

# What an audit reads from a model folder: weights, configs, tokenizer vocabularies, and the task data a model
# fine-tuned by rai-audit carries (task.json + examples.jsonl); `*/*` keeps sub-folders (ONNX exports, checkpoints
# …) out.
FETCHED_PATTERNS = ("*.safetensors", "*.json", "*.jsonl", "*.txt", "*.model")
SKIPPED_PATTERNS = ("*/*",)
_PATH_STARTS = ("/", ".", "~")


class HubModelError(InputError):
    """A hub model that cannot be fetched or audited; the message names the repository and what is expected."""


@dataclass(frozen=True)
class HubRequest:
    """A hub model as named: the repository id and the requested revision (None: the default branch)."""

    repo_id: str
    revision: str | None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


@dataclass(frozen=True)
class HubSnapshot:
    """A fetched hub model: where it came from (``source``), its snapshot folder in the cache and the cache folder
    of its repository (``models--org--name``), inside which the snapshot's links to ``blobs/`` stay."""

    source: HubSource
    folder: Path
    repository_folder: Path


def hub_model(model: str, *, revision: str | None = None) -> HubRequest | None:
    """The hub repository and requested revision ``model`` names, or None when it names a local folder (see the
    module docstring for the rule). ``revision`` is the config's ``subject.revision``."""
    if Path(model).expanduser().exists() or model.startswith(_PATH_STARTS):
        if revision is not None:
            raise HubModelError(f"subject.revision = {revision!r} applies to a hub model id (org/name), but "
                                f"{model} names a local folder; remove the revision")
        return None
    repo_id, _, inline_revision = model.partition("@")
    if repo_id.count("/") != 1 or not _valid_repo_id(repo_id):
        if revision is not None:
            raise HubModelError(f"subject.revision = {revision!r} needs subject.model to be a hub model id "
                                f"(org/name); {model!r} is neither that nor an existing folder")
        return None
    if "@" in model and not inline_revision:
        raise HubModelError(f"{model!r} ends with '@' but names no revision; expected org/name@REVISION (a branch, "
                            "tag or commit hash)")
    if inline_revision and revision is not None:
        raise HubModelError(f"{model!r} names revision {inline_revision!r} and subject.revision names {revision!r}; "
                            "give the revision once")
    return HubRequest(repo_id=repo_id, revision=inline_revision or revision)


def _valid_repo_id(repo_id: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def fetch_snapshot(requested: HubRequest) -> HubSnapshot:
    """Download (or find in the cache) the audited files of ``requested`` and pin the commit they came from.

    Raises ``HubModelError`` in one line for an unknown or inaccessible repository or revision, a model not in
    the cache while offline, and a repository whose weights are not safetensors."""
    from huggingface_hub import snapshot_download

    from audit import __version__

    named = str(requested)
    logger.info("fetching %s from the Hugging Face hub (or its cache)", named)
    try:
        folder = Path(snapshot_download(
            requested.repo_id, revision=requested.revision, allow_patterns=list(FETCHED_PATTERNS),
            ignore_patterns=list(SKIPPED_PATTERNS), library_name="rai-audit", library_version=__version__))
    except Exception as error:  # huggingface_hub raises HTTP, OS and validation errors of many kinds
        raise HubModelError(_fetch_failure(named, error)) from error
    # The snapshot folder of huggingface_hub's cache is named by the commit the revision resolved to.
    source = HubSource(repo_id=requested.repo_id, revision=requested.revision, commit=folder.name)
    snapshot = HubSnapshot(source=source, folder=folder, repository_folder=folder.parent.parent)
    _refuse_without_safetensors(snapshot, named)
    return snapshot


def _fetch_failure(named: str, error: Exception) -> str:
    """One line for why ``named`` could not be fetched: the huggingface_hub error, by kind, and what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, IncompleteSnapshotError):
        return (f"the cached copy of hub model {named} is incomplete and the hub cannot be reached; expected a "
                "complete download (run once with network access)")
    if isinstance(error, LocalEntryNotFoundError):
        if constants.is_offline_mode():
            return (f"{named} is neither a model folder nor a hub model in the local Hugging Face cache "
                    f"({constants.HF_HUB_CACHE}), and HF_HUB_OFFLINE is set, so it cannot be downloaded; expected an "
                    "existing folder, a cached hub model, or HF_HUB_OFFLINE unset")
        return (f"{named} is neither a model folder nor a hub model in the local Hugging Face cache, and the hub "
                f"cannot be reached ({_cause(error)}); expected an existing folder, network access or a cached model")
    if isinstance(error, GatedRepoError):
        return (f"hub model {named} is gated; accept its terms on the hub and give a token (HF_TOKEN or "
                "`hf auth login`)")
    if isinstance(error, RevisionNotFoundError):
        return f"hub model {named}: the repository has no such revision; expected a branch, tag or commit hash"
    if isinstance(error, RepositoryNotFoundError):
        return (f"hub model {named} was not found: no such repository, or it is private and no valid token was "
                "given (HF_TOKEN or `hf auth login`); a local folder of that name does not exist either")
    return f"cannot fetch hub model {named}: {_cause(error)}"


def _cause(error: BaseException) -> str:
    """The deepest cause's text on one line (huggingface_hub wraps the connection error)."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def _refuse_without_safetensors(snapshot: HubSnapshot, named: str) -> None:
    names = {path.name for path in snapshot.folder.iterdir()}
    if SINGLE_WEIGHTS in names or WEIGHTS_INDEX in names:
        return
    # Never fetched here, but a cached snapshot can hold pickles another tool (transformers) downloaded into the
    # shared cache, and offline or unreachable, huggingface_hub returns that snapshot folder as it is.
    pickled = sorted(path.name for pattern in PICKLE_PATTERNS for path in snapshot.folder.glob(pattern))
    held = f"only pickled weights ({', '.join(pickled)})" if pickled else "no safetensors weights"
    raise HubModelError(
        f"hub model {named} (commit {snapshot.source.commit}) has {held}; rai-audit reads "
        f"{SINGLE_WEIGHTS} (or a {WEIGHTS_INDEX} of shards) only and never unpickles — choose a revision or "
        "repository with safetensors weights")


def locate_model(model: str | Path | HubSnapshot, *, revision: str | None = None
                 ) -> tuple[Path, HubSnapshot | None]:
    """(folder to load, the hub snapshot it is or None) for a model named as ``subject.model`` names it.

    A ``Path`` is always a local folder; a ``str`` follows the rule of the module docstring (a hub id is fetched
    here, at ``revision``: the config's ``subject.revision``); a ``HubSnapshot`` is already fetched. A local folder
    comes back as given, ``~`` expanded."""
    if isinstance(model, HubSnapshot):
        return model.folder, model
    if isinstance(model, Path):
        return model.expanduser(), None
    requested = hub_model(model, revision=revision)
    if requested is None:
        return Path(model).expanduser(), None
    snapshot = fetch_snapshot(requested)
    return snapshot.folder, snapshot
