"""Members and non-members for membership inference on a language model's pretraining documents.

For a model pretrained by ``audit.train.pretrain`` the recipe beside it (``pretrain.json``) records the corpus
settings, the seed and the document counts: the corpus is reloaded through the data catalog, its digest checked
against the one recorded, and the seeded split recreated with the same function pretraining used
(``audit.train.corpus.split_heldout``). Members are the training documents as they were before canaries were
planted in them (the canaries are the exposure and extraction probes' business); non-members are the held-out
documents of the same corpus, never trained on. For any other model a JSONL file of ``{"text": ..., "member":
true|false}`` rows says which is which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probes.base import ProbeContext, ProbeInputError, ProbeSkipped

RECIPE_FILE = "pretrain.json"  # written by audit.train.pretrain beside the model


@dataclass(frozen=True)
class MembershipDocuments:
    texts: list[str]
    members: np.ndarray  # (N,) bool
    source: str  # where the membership came from, for the report


def load_membership_documents(ctx: ProbeContext, documents_file: Path | None) -> MembershipDocuments:
    """From ``documents_file`` when given, else from the pretraining recipe beside the causal LM."""
    if documents_file is not None:
        return documents_from_jsonl(ctx, documents_file)
    model_dir = getattr(ctx.subject, "causal_lm_path", None)
    recipe_path = Path(model_dir) / RECIPE_FILE if model_dir is not None else None
    if recipe_path is None or not recipe_path.is_file():
        raise ProbeSkipped(f"no pretraining recipe ({RECIPE_FILE}) beside the model tells which documents it was "
                           "trained on; set documents to a JSONL file of {\"text\", \"member\"} rows")
    return documents_from_recipe(ctx, recipe_path)


def documents_from_jsonl(ctx: ProbeContext, path: Path) -> MembershipDocuments:
    """Rows of {"text": str, "member": bool}; both classes must be present."""
    from audit.data.errors import DatasetError

    try:
        loaded = ctx.load_dataset(str(path), require_columns=["text", "member"])
    except DatasetError as error:
        raise ProbeInputError(f"membership documents: {error}") from None
    texts, members = [], []
    for row, (text, member) in enumerate(zip(loaded.dataset["text"], loaded.dataset["member"])):
        if not isinstance(text, str) or not text.strip():
            raise ProbeInputError(f"{path}: row {row + 1} has no text; expected a non-empty \"text\" string")
        if not isinstance(member, bool):
            raise ProbeInputError(f"{path}: row {row + 1} has member={member!r}; expected true or false")
        texts.append(text.strip())
        members.append(member)
    return _checked(MembershipDocuments(texts, np.array(members, dtype=bool), f"the documents listed in {path}"))


def documents_from_recipe(ctx: ProbeContext, recipe_path: Path) -> MembershipDocuments:
    """Recreate the pretraining split the recipe records, refusing a corpus whose digest or counts differ."""
    from audit.data.errors import DatasetError
    from audit.train.config import CorpusSection
    from audit.train.corpus import corpus_documents, split_heldout
    from audit.train.errors import CorpusError

    try:
        recipe = json.loads(recipe_path.read_text(encoding="utf-8"))
        section = CorpusSection.model_validate(recipe["config"]["corpus"])
        seed = int(recipe["config"]["train"]["seed"])
        recorded_digest = recipe["corpus"]["sha256"]
        counts = recipe["documents"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ProbeInputError(f"{recipe_path}: not a readable pretraining recipe ({error}); expected the "
                              "pretrain.json that audit.train.pretrain writes") from None
    try:
        loaded = ctx.load_dataset(section.dataset, text_column=section.text_column)
    except DatasetError as error:
        raise ProbeInputError(f"the pretraining corpus could not be loaded: {error}") from None
    if loaded.record.sha256 != recorded_digest:
        raise ProbeInputError(
            f"the pretraining corpus {section.dataset!r} found here has sha256 {loaded.record.sha256[:16]}… but the "
            f"model was pretrained on {recorded_digest[:16]}…; point the data directory at the same corpus or set "
            "documents to a JSONL file of {\"text\", \"member\"} rows"
        )
    if section.text_column not in loaded.dataset.column_names:
        raise ProbeInputError(f"the pretraining corpus has no column {section.text_column!r}")
    try:
        training, heldout = split_heldout(corpus_documents(loaded.dataset[section.text_column], section),
                                          section.heldout_fraction, seed=seed)
    except CorpusError as error:
        raise ProbeInputError(str(error)) from None
    if (len(training), len(heldout)) != (counts.get("training"), counts.get("heldout")):
        raise ProbeInputError(
            f"recreating the pretraining split gave {len(training)} training and {len(heldout)} held-out documents, "
            f"but {recipe_path} records {counts.get('training')} and {counts.get('heldout')}"
        )
    return _checked(MembershipDocuments(
        training + heldout, np.array([True] * len(training) + [False] * len(heldout)),
        f"pretraining documents of {section.dataset!r} (members) and its held-out documents (non-members), "
        f"recreated from {RECIPE_FILE}",
    ))


def balanced_sample(documents: MembershipDocuments, per_side: int, rng: np.random.Generator) -> MembershipDocuments:
    """At most ``per_side`` members and as many non-members, drawn without replacement, in their original order."""
    chosen = []
    for side in (True, False):
        indices = np.flatnonzero(documents.members == side)
        if len(indices) > per_side:
            indices = np.sort(rng.choice(indices, size=per_side, replace=False))
        chosen.append(indices)
    order = np.sort(np.concatenate(chosen))
    return MembershipDocuments([documents.texts[i] for i in order], documents.members[order], documents.source)


def _checked(documents: MembershipDocuments) -> MembershipDocuments:
    n_members = int(documents.members.sum())
    if n_members == 0 or n_members == len(documents.members):
        raise ProbeInputError(f"{documents.source}: {n_members} members and {len(documents.members) - n_members} "
                              "non-members; expected both")
    return documents
