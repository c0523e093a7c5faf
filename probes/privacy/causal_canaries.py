"""Canaries as a causal (next-token) language model sees them: scoring candidate secrets for ``exposure`` and
building decoding prompts for ``extraction``.

A canary sentence is the manifest's format with the secret's symbols in place of ``{}`` ("my pin code is 4 8 1 9 3
7"): the *format prefix* is the text before the secret, the *suffix* the text after it. Carlini et al. (USENIX
Security 2019) rank a secret by its log-perplexity under a generative model; every candidate shares the prefix, so
log p(secret + suffix | prefix) ranks them the same way and leaves out a term that is the same for all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from probes.base import ProbeInputError


def causal_scoring_note(subject) -> str:
    """One line for the report: how a causal model's canary texts were scored and what they were conditioned on."""
    return ("Scoring: causal language model, log-likelihood of each candidate secret given the canary format's "
            f"prefix; {subject.sentence_logprob_note}.")


def format_parts(manifest) -> tuple[str, str]:
    """(text before the secret, text after it) of the manifest's format."""
    if manifest.format.count("{}") != 1:
        raise ProbeInputError(f"canary format {manifest.format!r} must contain exactly one '{{}}'")
    prefix, suffix = manifest.format.split("{}")
    return prefix, suffix


def check_symbols(manifest, tokenizer) -> None:
    """Every alphabet symbol must be known to the tokenizer (no [UNK]): otherwise candidates that differ only in
    unknown symbols would read the same to the model and the ranking would mean nothing."""
    unk = tokenizer.unk_token_id
    seen: dict[tuple[int, ...], str] = {}
    for symbol in manifest.alphabet:
        ids = tuple(tokenizer(symbol, add_special_tokens=False)["input_ids"])
        if not ids or (unk is not None and unk in ids):
            raise ProbeInputError(
                f"canary manifest does not match the model's tokenizer: symbol {symbol!r} is unknown to it "
                "(audit the model the canaries were planted in)"
            )
        if ids in seen:
            raise ProbeInputError(f"canary manifest does not match the model's tokenizer: symbols {seen[ids]!r} "
                                  f"and {symbol!r} encode to the same tokens")
        seen[ids] = symbol


def causal_canary_scorer(subject, manifest, *, batch_size: int) -> Callable[[list[tuple[str, ...]]], np.ndarray]:
    """A function from candidate secrets (symbol tuples) to log p(secret + suffix | format prefix), shape (n,).

    Each sentence is scored whole (``token_logprobs``: no special tokens but the prefix token) and the secret's
    log-likelihood is the sum over its tokens and the suffix's, i.e. after the format prefix's tokens, which must
    encode the same at the start of every sentence (checked)."""
    check_symbols(manifest, subject.tokenizer)
    prefix, _ = format_parts(manifest)
    prefix_ids = _encode(subject.tokenizer, prefix.rstrip())

    def score(sequences: list[tuple[str, ...]]) -> np.ndarray:
        sentences = [manifest.render(sequence) for sequence in sequences]
        token_ids = subject.tokenizer(sentences, add_special_tokens=False)["input_ids"]
        for sentence, ids in zip(sentences, token_ids):
            if list(ids[:len(prefix_ids)]) != prefix_ids or len(ids) == len(prefix_ids):
                raise ProbeInputError(f"the tokenizer does not encode {sentence!r} as the format prefix "
                                      f"{prefix.strip()!r} followed by the secret; expected them to tokenize apart")
        # The first text token is scored only with a prefix token (BOS/EOS); the prefix tokens are dropped anyway.
        skip = len(prefix_ids) - (0 if subject.prefix_token_id is not None else 1)
        if subject.prefix_token_id is None and not prefix_ids:
            raise ProbeInputError("the canary format starts with the secret and the tokenizer has no BOS/EOS token, so "
                                  "the secret's first symbol cannot be scored")
        scores = subject.token_logprobs(sentences, batch_size=batch_size)
        return np.array([float(values[skip:].sum()) for values in scores])

    return score


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


@dataclass(frozen=True)
class DecodingTask:
    """What to decode from and what would count as the secret coming out verbatim."""

    prompt_ids: list[int]  # prefix token (if any) + format prefix + the revealed symbols
    target_ids: list[int]  # the secret's remaining symbols, as the tokenizer writes them after the prompt


def decoding_task(subject, manifest, digits: Sequence[str], *, revealed: int, name: str) -> DecodingTask:
    """The prompt (format prefix and the first ``revealed`` symbols of the secret) and the tokens that must follow.

    Both come from one encoding of the sentence up to the end of the secret, split where the prompt's own encoding
    ends, so the target is exactly what the model would have to write; a tokenizer that merges across that
    boundary is an input error naming the canary."""
    tokenizer = subject.tokenizer
    prefix, _ = format_parts(manifest)
    symbols = list(digits)
    prompt_text = (prefix + manifest.separator.join(symbols[:revealed])).rstrip()
    whole_text = prefix + manifest.separator.join(symbols)
    prompt, whole = _encode(tokenizer, prompt_text), _encode(tokenizer, whole_text)
    if whole[:len(prompt)] != prompt or len(whole) == len(prompt):
        raise ProbeInputError(f"{name}: the tokenizer does not encode {prompt_text!r} as the start of "
                              f"{whole_text!r}; expected the secret's symbols to tokenize apart from the prompt")
    start = [subject.prefix_token_id] if subject.prefix_token_id is not None else []
    if not start and not prompt:
        raise ProbeInputError(f"{name}: nothing to decode from (empty format prefix, no symbol revealed, and the "
                              "tokenizer has no BOS/EOS token); set revealed_symbols")
    return DecodingTask(prompt_ids=start + prompt, target_ids=whole[len(prompt):])
