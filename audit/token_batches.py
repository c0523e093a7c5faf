"""Grouping token sequences into padded batches, and the input checks the subject's operations share.

Every batched operation of ``ModelUnderAudit`` (masked-LM, classifier, embeddings, causal LM) sorts its inputs by
length and pads only within a batch, so padding stays small; results are always returned in input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class SequenceTooLongError(ValueError):
    """A token sequence is longer than the model accepts; nothing is truncated silently (check ``fits`` first)."""


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted by length, then index), so padding is small."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], index))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    """``texts`` as a list, refusing a bare string or a non-string item with a message naming it."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, got a single string")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{index}] must be a string, got {type(text).__name__}")
    return texts


def pad_token_lists(sequences: Sequence[Sequence[int]], pad_id: int, *, side: str = "right",
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) token ids and attention mask (1 = real token) with the real tokens at the ``side``'s opposite end.

    ``pad_id`` may be any valid id (a tokenizer without a pad token pads with EOS or 0): the mask hides it."""
    if side not in {"left", "right"}:
        raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        span = slice(width - len(sequence), width) if side == "left" else slice(0, len(sequence))
        input_ids[row, span] = torch.tensor(list(sequence), dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids.to(device), attention_mask.to(device)
