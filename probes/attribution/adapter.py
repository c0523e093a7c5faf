"""One view of a classifier for the attribution probes: tokenise, run forward, reach the embedding layer.

The probes explain the logits of a sequence classifier with respect to its input token embeddings. They need
(1) a differentiable ``forward(input_ids, attention_mask) -> logits``, (2) the token-embedding layer that captum
hooks, (3) the tokenizer (special tokens, [PAD]/[MASK]) and, for attention rollout and the sanity check, (4) the
``torch.nn.Module`` itself (attention weights; a deep copy to randomise). ``AttributionModel`` bundles these, built
either from the model under audit (``from_subject``) or from any Hugging Face ``…ForSequenceClassification``
(``from_model``: tests, and the randomised copies of the sanity check).

Decoder classifiers (ours with ``causal=True``, GPT-2, Llama, …) read the last real token instead of [CLS]
(``read_position``); their logits come from ``audit.pooling.classifier_logits``, which finds that token from the
attention mask, so a baseline or a removal made of [PAD] ids never moves the token the classifier reads.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from audit.pooling import ReadPosition, classifier_logits, finds_last_token_by_pad_id, read_position
from probes.base import ProbeInputError

BaselineToken = Literal["pad", "mask"]
WordAlignment = list[tuple[str, list[int]]]


class EmptyTextError(ProbeInputError):
    """A text has no token to explain (empty, or only special tokens)."""


class AttentionUnavailableError(RuntimeError):
    """The model did not return attention weights (e.g. a fused attention kernel); rollout cannot run."""


@dataclass
class EncodedBatch:
    """A padded batch. ``special`` marks [CLS]/[SEP]/… and padding: positions that are never attributed."""

    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long, 1 = real token
    special: torch.Tensor  # (B, T) bool
    lengths: list[int]  # real length of each row (with its special tokens)


class AttributionModel:
    """A classifier seen as: token ids → logits, with a hookable token-embedding layer.

    forward:          differentiable (input_ids, attention_mask) -> logits (B, C).
    embedding_layer:  the module whose output is the token embedding (captum's layer).
    tokenizer:        a fast Hugging Face tokenizer with [CLS]/[SEP]-style special tokens.
    module:           the underlying nn.Module (attention rollout, sanity-check copies) or None if unknown.
    max_length:       truncation length in tokens.
    word_alignment:   text -> [(word, [token indices])]; defaults to the tokenizer's word ids.
    read_position:    "first" ([CLS], encoders) or "last" (the last real token, decoders): the token whose
                      hidden state the classifier reads (attention rollout starts there).
    """

    def __init__(
        self,
        *,
        forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        embedding_layer: nn.Module,
        tokenizer,
        module: nn.Module | None = None,
        max_length: int = 512,
        word_alignment: Callable[[str], WordAlignment] | None = None,
        read_position: ReadPosition = "first",
    ) -> None:
        self.forward = forward
        self.embedding_layer = embedding_layer
        self.tokenizer = tokenizer
        self.module = module
        self.max_length = int(max_length)
        self._word_alignment = word_alignment
        self.read_position = read_position
        self._eager_copy: nn.Module | None = None
        self._special_ids = frozenset(int(i) for i in tokenizer.all_special_ids)

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: nn.Module, tokenizer, *, max_length: int | None = None) -> AttributionModel:
        """Any Hugging Face sequence classifier (ours, BERT, GPT-2, …); the model should be in eval mode."""

        def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return classifier_logits(model, input_ids, attention_mask)

        limit = max_length or getattr(model.config, "max_position_embeddings", None) or 512
        limit = min(int(limit), int(getattr(tokenizer, "model_max_length", limit) or limit))
        return cls(
            forward=forward, embedding_layer=model.get_input_embeddings(), tokenizer=tokenizer, module=model,
            max_length=limit, read_position=read_position(model),
        )

    @classmethod
    def from_subject(cls, subject) -> AttributionModel:
        """The model under audit (audit.subject.ModelUnderAudit), through its documented attribution hooks."""
        module = classifier_module(subject)
        return cls(
            forward=subject.classifier_forward,
            embedding_layer=subject.input_embeddings(),
            tokenizer=subject.tokenizer,
            module=module,
            max_length=int(getattr(subject, "max_length", None) or 512),
            word_alignment=getattr(subject, "word_alignment", None),
            read_position=read_position(module) if module is not None else "first",
        )

    # -- properties --------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        weight = getattr(self.embedding_layer, "weight", None)
        return weight.device if weight is not None else torch.device("cpu")

    def baseline_token_id(self, which: BaselineToken) -> int:
        """[PAD] or [MASK]. A decoder's tokenizer often has no pad token: then "pad" is the model's configured
        pad id, else the end-of-text token (GPT-2's conventional padding); the logits never depend on it."""
        if which == "pad":
            token_id = pad_baseline_id(self.tokenizer, getattr(self.module, "config", None))
        else:
            token_id = self.tokenizer.mask_token_id
        if token_id is None:
            raise ProbeInputError(
                f"the tokenizer has no [{which.upper()}] token; choose baseline_token "
                f"{'mask' if which == 'pad' else 'pad'!r} instead"
            )
        return int(token_id)

    # -- tokenisation ------------------------------------------------------------------------------------------
    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated; raises EmptyTextError naming the first text with no content."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False)
        ids = [list(map(int, row)) for row in encoded["input_ids"]]
        for index, row in enumerate(ids):
            if not any(token not in self._special_ids for token in row):
                raise EmptyTextError(
                    f"text {index} ({texts[index][:40]!r}) has no token to explain after tokenisation; "
                    "expected at least one word that is not a special token"
                )
        return ids

    def has_content(self, text: str) -> bool:
        """Whether the text has at least one non-special token (empty strings and '[CLS] [SEP]' do not)."""
        row = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
        return any(int(token) not in self._special_ids for token in row)

    def pad(self, rows: list[list[int]]) -> EncodedBatch:
        """Right-pad token-id rows into one batch; padding and special tokens are marked ``special``."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        special = np.ones((len(rows), width), dtype=bool)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = row
            mask[index, : len(row)] = 1
            special[index, : len(row)] = [token in self._special_ids for token in row]
        device = self.device
        return EncodedBatch(
            input_ids=torch.from_numpy(ids).to(device),
            attention_mask=torch.from_numpy(mask).to(device),
            special=torch.from_numpy(special).to(device),
            lengths=[len(row) for row in rows],
        )

    def tokens(self, ids: list[int]) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens(list(ids)))

    def word_alignment(self, text: str) -> WordAlignment:
        """[(word, [token indices into the encoded sequence])] for display; special tokens belong to no word."""
        if self._word_alignment is not None:
            return list(self._word_alignment(text))
        encoded = self.tokenizer(text, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        words: dict[int, list[int]] = {}
        spans: dict[int, tuple[int, int]] = {}
        for position, word_id in enumerate(encoded.word_ids()):
            if word_id is None:
                continue
            words.setdefault(word_id, []).append(position)
            start, end = encoded["offset_mapping"][position]
            low, high = spans.get(word_id, (start, end))
            spans[word_id] = (min(low, start), max(high, end))
        return [(text[spans[w][0] : spans[w][1]], words[w]) for w in sorted(words)]

    # -- forward passes ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, batch: EncodedBatch) -> torch.Tensor:
        return self.forward(batch.input_ids, batch.attention_mask)

    @torch.no_grad()
    def attentions(self, batch: EncodedBatch) -> list[torch.Tensor]:
        """Attention weights per layer, each (B, heads, T, T); AttentionUnavailableError if the model gives none.

        Fused (SDPA) attention returns no weights; then an eager-attention deep copy is used, so the audited
        model itself is never reconfigured.
        """
        if self.module is None:
            raise AttentionUnavailableError("the model module is not reachable, so its attention weights are not")
        attentions = _attention_weights(self.module, batch)
        if attentions is None and hasattr(self.module, "set_attn_implementation"):
            if self._eager_copy is None:
                self._eager_copy = copy.deepcopy(self.module)
                self._eager_copy.set_attn_implementation("eager")
            attentions = _attention_weights(self._eager_copy, batch)
        if attentions is None:
            raise AttentionUnavailableError(
                "the model returned no attention weights (load it with attn_implementation='eager')"
            )
        return attentions


def pad_baseline_id(tokenizer, config=None) -> int | None:
    """The "pad" baseline token: the tokenizer's [PAD], else the model's configured pad id, else end-of-text."""
    candidates = (tokenizer.pad_token_id, getattr(config, "pad_token_id", None), tokenizer.eos_token_id)
    return next((int(candidate) for candidate in candidates if candidate is not None), None)


def _attention_weights(module: nn.Module, batch: EncodedBatch) -> list[torch.Tensor] | None:
    if finds_last_token_by_pad_id(module):  # its head would refuse a batch without a pad id; the body holds them
        module = module.base_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        output = module(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_attentions=True)
    attentions = getattr(output, "attentions", None)
    if not attentions or any(layer is None for layer in attentions):
        return None
    return list(attentions)


def classifier_module(subject) -> nn.Module | None:
    """The classifier nn.Module behind a ModelUnderAudit, if it exposes one (needed for rollout and sanity)."""
    for attribute in ("classifier", "classifier_model", "model"):
        candidate = getattr(subject, attribute, None)
        if isinstance(candidate, nn.Module) and hasattr(candidate, "get_input_embeddings"):
            return candidate
    return None
