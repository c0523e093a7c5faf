"""How the bias probes score text with the audited language model: the one place masked and causal LMs differ.

* A **masked** LM scores text by pseudo-log-likelihood (Salazar et al., "Masked Language Model Scoring",
  ACL 2020): each chosen token masked in turn (``probes.bias.pll``, ``ModelUnderAudit.pll_scores``).
* A **causal** LM scores text by its log-likelihood, the sum over tokens of log p(token | the tokens before it),
  every text conditioned on the tokenizer's BOS (else EOS) token exactly as lm-evaluation-harness scores a text
  with an empty context (``ModelUnderAudit.sentence_logprobs`` / ``token_logprobs`` / ``continuation_logprobs``).

Which one runs follows the subject: a masked LM where there is one (the probes' original behaviour), else the
causal LM. A probe's ``scoring`` setting may pin the method, so that runs compared side by side are scored the
same way; a subject without that kind of model skips the probe with the reason. Higher scores = the model finds
the text more likely, for either method; the two scales are not comparable with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from probes.base import ProbeSkipped
from probes.bias.pll import reduce_token_scores
from probes.bias.pll import sentence_scores as pll_sentence_scores

MASKED, CAUSAL = "pseudo-log-likelihood", "log-likelihood"
Scoring = Literal["auto", "pseudo-log-likelihood", "log-likelihood"]
_CAPABILITY = {MASKED: "mlm", CAUSAL: "causal-lm"}


def scoring_method(subject, requested: str = "auto") -> str:
    """``MASKED`` or ``CAUSAL`` for this subject; ProbeSkipped when ``requested`` needs a model it does not have."""
    capabilities = set(subject.capabilities)
    if requested == "auto":
        return MASKED if "mlm" in capabilities else CAUSAL
    if _CAPABILITY[requested] not in capabilities:
        kind = "a causal" if "causal-lm" in capabilities else "a masked" if "mlm" in capabilities else "no"
        raise ProbeSkipped(f"scoring = {requested!r} needs the {_CAPABILITY[requested]} capability, but the model has "
                           f"{kind} language model; set scoring = 'auto' to score it the way its kind allows")
    return requested


def causal_scoring_note(subject, how: str) -> str:
    """One line for the report: how a causal model's texts were scored (``how``) and what they were conditioned on."""
    return f"Scoring: causal language model, {how}; {subject.sentence_logprob_note}."


def causal_sentence_tokens(subject, texts: Sequence[str]) -> list[list[int]]:
    """The token ids a causal LM scores for each text (no special tokens); compare them to find identical texts."""
    if not texts:
        return []
    return [list(ids) for ids in subject.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def causal_fits(subject, token_lists: Sequence[Sequence[int]]) -> np.ndarray:
    """Whether each text's tokens (``causal_sentence_tokens``), after the prefix token, fit the context window
    (nothing is ever truncated)."""
    extra = 1 if subject.prefix_token_id is not None else 0
    # The model reads every token but the last one it scores.
    return np.array([len(ids) + extra - 1 <= subject.max_length for ids in token_lists], dtype=bool)


def causal_pair_fits(subject, contexts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
    """Whether each context + continuation fits the context window, tokenised with the tokenizer's own specials."""
    if not contexts:
        return np.zeros(0, dtype=bool)
    encoded = subject.tokenizer([context + continuation for context, continuation in zip(contexts, continuations)]
                                )["input_ids"]
    return np.array([len(ids) - 1 <= subject.max_length for ids in encoded], dtype=bool)


def causal_sentence_scores(subject, texts: Sequence[str], *, batch_size: int, reduce: str) -> np.ndarray:
    """Log-likelihood of each text under the causal LM: summed over its tokens (``"sum"``) or their mean."""
    if not texts:
        return np.zeros(0)
    return reduce_token_scores(subject.token_logprobs(list(texts), batch_size=batch_size), reduce)


def text_scores(subject, texts: Sequence[str], *, method: str, batch_size: int) -> np.ndarray:
    """The score of each whole text, NaN where it does not fit the model (never truncated): the causal
    log-likelihood (summed over tokens), or the masked LM's PLL of every non-special token (Salazar et al. 2020)."""
    scores = np.full(len(texts), np.nan)
    if method == CAUSAL:
        fits = causal_fits(subject, causal_sentence_tokens(subject, texts))
        kept = [text for text, fit in zip(texts, fits) if fit]
        scores[fits] = causal_sentence_scores(subject, kept, batch_size=batch_size, reduce="sum")
        return scores
    encoded = subject.tokenizer(list(texts), verbose=False)["input_ids"] if texts else []
    special = set(subject.tokenizer.all_special_ids)
    fits = np.array([subject.fits(ids) for ids in encoded], dtype=bool)
    kept = [ids for ids, fit in zip(encoded, fits) if fit]
    positions = [[index for index, token in enumerate(ids) if token not in special] for ids in kept]
    scores[fits] = pll_sentence_scores(subject, kept, positions, batch_size=batch_size, reduce="sum")
    return scores


def causal_continuation_scores(subject, contexts: Sequence[str], continuations: Sequence[str], *, batch_size: int,
                               reduce: str) -> np.ndarray:
    """log p(continuation | context) under the causal LM, summed over the continuation's tokens or their mean."""
    if not contexts:
        return np.zeros(0)
    per_token = subject.continuation_logprobs(list(contexts), list(continuations), batch_size=batch_size,
                                              per_token=True)
    return reduce_token_scores(per_token, reduce)
