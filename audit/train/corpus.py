"""The pretraining corpus: documents from the data catalog, a held-out split, and packing into sequences.

Packing follows RoBERTa's FULL-SENTENCES scheme (Liu et al., 2019): documents are tokenised, joined into one
stream with [SEP] between documents, and cut into chunks of ``max_length - 2`` tokens, each wrapped as
``[CLS] chunk [SEP]``, so no compute is spent on padding (only the very last chunk is padded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from audit.train.config import CorpusSection
from audit.train.errors import CorpusError


@dataclass
class Corpus:
    documents: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class PackedSequences:
    input_ids: torch.Tensor  # (N, T) int64
    attention_mask: torch.Tensor  # (N, T) int64, 0 only in the last sequence's padding

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def load_corpus(section: CorpusSection, *, data_dir=None) -> Corpus:
    """Documents (non-blank texts) of ``section.dataset``; one-line ``CorpusError`` when missing/empty/not UTF-8."""
    from audit.data.catalog import load_dataset
    from audit.data.errors import DatasetError

    try:
        loaded = load_dataset(section.dataset, data_dir=data_dir, text_column=section.text_column)
    except DatasetError as error:
        raise CorpusError(f"pretraining corpus: {error}") from None
    dataset = loaded.dataset
    column = section.text_column
    if column not in dataset.column_names:
        raise CorpusError(
            f"pretraining corpus {section.dataset!r} has no column {column!r} (columns: "
            f"{', '.join(dataset.column_names)}); set corpus.text_column"
        )
    return Corpus(documents=corpus_documents(dataset[column], section), provenance=loaded.record.model_dump())


def corpus_documents(texts, section: CorpusSection) -> list[str]:
    """The documents pretraining reads from a text column: non-blank texts, stripped, the first ``max_documents``."""
    documents = [text.strip() for text in texts if isinstance(text, str) and text.strip()]
    if section.max_documents is not None:
        documents = documents[: section.max_documents]
    if not documents:
        raise CorpusError(f"pretraining corpus {section.dataset!r} is empty; expected text documents, one per row/line")
    return documents


def split_heldout(documents: list[str], fraction: float, *, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of whole documents into (training, held-out); at least one document on each side."""
    if len(documents) < 2:
        raise CorpusError("pretraining corpus needs at least 2 documents (one is held out to measure the held-out loss)")
    order = np.random.default_rng([seed, 7]).permutation(len(documents))
    n_heldout = min(max(1, round(fraction * len(documents))), len(documents) - 1)
    heldout_ids = set(order[:n_heldout].tolist())
    training = [doc for i, doc in enumerate(documents) if i not in heldout_ids]
    heldout = [doc for i, doc in enumerate(documents) if i in heldout_ids]
    return training, heldout


def pack(documents: list[str], tokenizer, *, max_length: int) -> PackedSequences:
    """Tokenise and pack documents into (N, max_length) sequences; see the module docstring."""
    backend = tokenizer.backend_tokenizer
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    encodings = backend.encode_batch(documents, add_special_tokens=False)
    pieces = []
    for encoding in encodings:
        pieces.append(np.asarray(encoding.ids, dtype=np.int64))
        pieces.append(np.asarray([sep_id], dtype=np.int64))
    stream = np.concatenate(pieces[:-1]) if len(pieces) > 1 else np.zeros(0, dtype=np.int64)
    content = max_length - 2
    n_sequences = max(1, -(-len(stream) // content))
    padded = np.full(n_sequences * content, pad_id, dtype=np.int64)
    padded[: len(stream)] = stream
    body = padded.reshape(n_sequences, content)
    ids = np.concatenate(
        [np.full((n_sequences, 1), cls_id), body, np.full((n_sequences, 1), pad_id)], axis=1
    ).astype(np.int64)
    # [SEP] goes right after each sequence's last real token (only the last sequence can be short).
    lengths = np.minimum(content, np.maximum(0, len(stream) - np.arange(n_sequences) * content))
    ids[np.arange(n_sequences), lengths + 1] = sep_id
    mask = (np.arange(max_length)[None, :] <= (lengths + 1)[:, None]).astype(np.int64)
    return PackedSequences(torch.from_numpy(ids), torch.from_numpy(mask))
