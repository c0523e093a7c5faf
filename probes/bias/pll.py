"""Token-position helpers for pseudo-log-likelihood scoring on top of ``ModelUnderAudit.pll_scores``.

PLL (Salazar et al., ACL 2020, "Masked Language Model Scoring"): the log-probability of a token when only that
token is masked. The subject scores every masked copy of a sentence in one batched forward pass; this module only
decides *which* positions to score: the tokens two sentences share (CrowS-Pairs) or the tokens of a character span
(StereoSet's filled-in words and continuations).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence

import numpy as np


def shared_token_positions(
    first: Sequence[int], second: Sequence[int], *, special_ids: Collection[int]
) -> tuple[list[int], list[int]]:
    """Positions of the tokens the two sequences share, aligned in order (Nangia et al., EMNLP 2020, §3).

    The alignment is difflib's longest-matching-blocks diff on token ids, as in the CrowS-Pairs reference code;
    special tokens ([CLS], [SEP]) are never scored. Returns the positions in ``first`` and in ``second``.
    """
    matcher = difflib.SequenceMatcher(None, list(first), list(second), autojunk=False)
    in_first, in_second = [], []
    for tag, first_start, first_end, second_start, _ in matcher.get_opcodes():
        if tag != "equal":
            continue
        for offset in range(first_end - first_start):
            if first[first_start + offset] in special_ids:
                continue
            in_first.append(first_start + offset)
            in_second.append(second_start + offset)
    return in_first, in_second


def span_token_positions(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """Indices of the tokens whose character offsets overlap ``[start, end)`` (special tokens have empty offsets)."""
    return [
        index
        for index, (token_start, token_end) in enumerate(offsets)
        if token_end > token_start and token_start < end and token_end > start
    ]


def sentence_scores(
    subject, token_ids: list[list[int]], positions: list[list[int]], *, batch_size: int, reduce: str
) -> np.ndarray:
    """One score per sequence: the sum (``reduce="sum"``) or mean (``"mean"``) of its positions' PLL terms."""
    if not token_ids:
        return np.zeros(0)
    return reduce_token_scores(subject.pll_scores(token_ids, positions, batch_size=batch_size), reduce)


def reduce_token_scores(per_token: Sequence[np.ndarray], reduce: str) -> np.ndarray:
    """One score per sequence from its per-token scores: their sum (``"sum"``) or mean (``"mean"``)."""
    if reduce == "sum":
        return np.array([values.sum() for values in per_token], dtype=np.float64)
    if reduce == "mean":
        return np.array([values.mean() for values in per_token], dtype=np.float64)
    raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
