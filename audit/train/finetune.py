"""Fine-tuning our pretrained transformer as a text classifier: a new head on [CLS] for an encoder (Devlin et al.,
NAACL 2019, §4), on the last real token for a decoder (Radford et al., 2019, GPT-2); finetune.json records which.

``finetune_classifier`` is pure and in memory — the CLI and the membership probe's shadow models both call it:
it loads the encoder from a pretrained directory with a fresh classification head, trains with AdamW (linear
warmup and decay, optional layer-wise and query/key learning-rate scales, gradient clipping, bf16 autocast when the
CPU supports it) and keeps the weights of the evaluation with the best validation macro-F1 (higher is better),
stopping after ``patience`` evaluations without improvement — or, with ``keep = "last"``, trains every epoch and
keeps the final weights. Seeded: head initialisation, dropout and batch order are reproducible and the caller's
global RNG state is left untouched.

``run_finetune`` is the CLI path: dataset → labelled examples with a stratified split → fine-tune → a model
directory with the split membership (task.json / examples.jsonl), test metrics and predictions (finetune.json).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from audit.data.task import SPLIT_ALIASES, SPLITS, LabelledExample, TaskData, label_key
from audit.model_folder import load_tokenizer
from audit.outputs import give_folder_ordinary_modes
from audit.progress import ProgressTask, current_reporter
from audit.train.audit_canaries import is_canary, with_audit_canaries
from audit.train.checkpoint import verify_model_dir
from audit.train.config import FinetuneConfig, FinetuneDataSection
from audit.train.dp import check_dp_settings
from audit.train.errors import FinetuneDataError, TrainInputError, finite_loss
from audit.train.masking import _mix, step_generator
from audit.train.precision import resolved_precision, use_bf16
from audit.train.pretrain import work_dir_for

logger = logging.getLogger(__name__)

RECIPE_FILE = "finetune.json"
_STREAM_SHUFFLE, _STREAM_INIT = 11, 12


@dataclass
class FinetuneOutcome:
    model: Any  # AutoModelForSequenceClassification, in eval mode, holding the best weights
    tokenizer: Any
    history: list[dict[str, Any]]
    best_epoch: float  # fractional epoch of the kept evaluation
    best_validation_macro_f1: float = float("nan")
    n_truncated: int = 0  # training + validation texts cut to max_length
    max_length: int = 0  # the sequence length used: config.max_length capped by the model's positions
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- training
def finetune_classifier(
    pretrained_dir: str | Path,
    train: list[LabelledExample],
    validation: list[LabelledExample],
    config: FinetuneConfig,
    *,
    seed: int,
    num_labels: int | None = None,
) -> FinetuneOutcome:
    """Fine-tune a fresh classification head plus the encoder of ``pretrained_dir`` on ``train``.

    ``num_labels`` defaults to 1 + the largest label seen. Early stopping watches macro-F1 on ``validation``.
    """
    from transformers import AutoModelForSequenceClassification

    import audit  # noqa: F401  (registers our model with the Auto classes)

    pretrained_dir = verify_model_dir(pretrained_dir)
    if not train or not validation:
        raise FinetuneDataError("fine-tuning needs non-empty train and validation examples")
    labels_seen = sorted({example.label for example in train})
    if len(labels_seen) < 2:
        raise FinetuneDataError(f"the training examples hold a single class ({labels_seen}); need at least two")
    num_labels = num_labels or 1 + max(example.label for example in [*train, *validation])

    tokenizer = load_tokenizer(pretrained_dir)
    max_length = effective_max_length(pretrained_dir, config.max_length)
    train_ids, truncated_train = encode(tokenizer, [e.text for e in train], max_length=max_length)
    validation_ids, truncated_validation = encode(tokenizer, [e.text for e in validation], max_length=max_length)
    n_truncated = truncated_train + truncated_validation
    if n_truncated:
        logger.info("truncated %d of %d texts to max_length=%d tokens", n_truncated,
                    len(train) + len(validation), max_length)
    train_labels = torch.tensor([example.label for example in train])
    validation_labels = np.asarray([example.label for example in validation])

    overrides: dict[str, Any] = {"num_labels": num_labels, "classifier_dropout": config.classifier_dropout}
    if config.hidden_dropout_prob is not None:
        overrides["hidden_dropout_prob"] = config.hidden_dropout_prob
    # opacus' per-example gradients run in fp32: DP-SGD clips and noises exact per-example norms
    bf16 = use_bf16(config.precision, hidden_size=_hidden_size(pretrained_dir)) and config.dp is None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_mix(seed, _STREAM_INIT))
        model = AutoModelForSequenceClassification.from_pretrained(
            pretrained_dir, use_safetensors=True, trust_remote_code=False, **overrides
        )
        with current_reporter().task("fine-tuning", unit="steps") as shown:
            history, best_state, best_epoch, best_f1, dp_record = _train_loop(
                model, tokenizer, train_ids, train_labels, validation_ids, validation_labels, config, seed=seed,
                bf16=bf16, shown=shown,
            )
    model.load_state_dict(best_state)
    model.eval()
    extra = {"dp": dp_record} if dp_record is not None else {}
    return FinetuneOutcome(model, tokenizer, history, best_epoch, best_f1, n_truncated, max_length, extra)


def _hidden_size(model_dir: Path) -> int | None:
    return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")).get("hidden_size")


def effective_max_length(model_dir: Path, requested: int) -> int:
    """``requested`` capped by the model's ``max_position_embeddings`` (a longer input cannot be encoded)."""
    positions = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")).get(
        "max_position_embeddings", requested
    )
    if requested > positions:
        logger.info("max_length %d exceeds the model's %d positions; using %d", requested, positions, positions)
    return min(requested, positions)


def _train_loop(model, tokenizer, train_ids, train_labels, validation_ids, validation_labels, config, *, seed, bf16,
                shown: ProgressTask):
    pad_id = tokenizer.pad_token_id
    optimizer = _optimizer(model, config)
    private = None
    if config.dp is not None:
        from audit.train.dp import make_private

        model.train()  # opacus validates a model in training mode
        private = make_private(model, optimizer, train_ids, train_labels, pad_id=pad_id, dp=config.dp,
                               batch_size=config.batch_size, epochs=config.epochs, seed=_mix(seed, _STREAM_SHUFFLE))
        optimizer, steps_per_epoch = private.optimizer, private.steps_per_epoch
    else:
        steps_per_epoch = math.ceil(len(train_ids) / config.batch_size)
    try:
        return _steps(model, private, optimizer, train_ids, train_labels, validation_ids, validation_labels, config,
                      steps_per_epoch=steps_per_epoch, pad_id=pad_id, seed=seed, bf16=bf16, shown=shown)
    finally:
        if private is not None:
            private.close()


def _epoch_batches(train_ids, train_labels, config, *, pad_id, seed, epoch):
    """Shuffled, length-bucketed batches of one epoch: (input_ids, attention_mask, labels)."""
    lengths = [len(ids) for ids in train_ids]
    for chosen in _length_bucketed_batches(lengths, config.batch_size,
                                           step_generator(seed, epoch, stream=_STREAM_SHUFFLE)):
        yield (*pad_batch([train_ids[i] for i in chosen], pad_id), train_labels[chosen])


def _steps(model, private, optimizer, train_ids, train_labels, validation_ids, validation_labels, config, *,
           steps_per_epoch, pad_id, seed, bf16, shown: ProgressTask):
    """The epochs of training with evaluations and early stopping; ``private`` (DP-SGD) draws Poisson batches,
    clips per example and adds noise in ``optimizer.step``, so the global gradient clipping is not applied."""
    total_steps = steps_per_epoch * config.epochs
    shown.update(total=total_steps)
    eval_points = {
        min(steps_per_epoch, round(steps_per_epoch * (k + 1) / config.evals_per_epoch))
        for k in range(config.evals_per_epoch)
    }
    forward = private.module if private is not None else model
    history: list[dict[str, Any]] = []
    best_f1, best_epoch, best_state, stale = -1.0, 0.0, None, 0
    step, window_loss, window_steps = 0, 0.0, 0
    model.train()
    for epoch in range(config.epochs):
        batches = private.batches() if private is not None else _epoch_batches(
            train_ids, train_labels, config, pad_id=pad_id, seed=seed, epoch=epoch)
        for batch_index, (input_ids, attention_mask, labels) in enumerate(batches):
            rate = _linear_schedule(step, total_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = rate * group["lr_scale"]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                output = forward(input_ids, attention_mask=attention_mask, labels=labels)
            # An empty Poisson batch still takes a (noise-only) step; its mean loss is undefined.
            loss = output.loss if len(labels) else output.logits.sum()
            step_loss = finite_loss(float(loss.detach()), stage="fine-tuning", step=step + 1,
                                    learning_rate=config.learning_rate) if len(labels) else 0.0
            loss.backward()
            if config.grad_clip is not None and private is None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_loss += step_loss
            window_steps += 1
            shown.update(completed=step, info=_status(epoch, config.epochs, history))
            if batch_index + 1 not in eval_points:
                continue
            predictions = predict_logits(model, validation_ids, pad_id=pad_id, batch_size=config.eval_batch_size,
                                         bf16=bf16).argmax(axis=1)
            model.train()
            macro_f1 = float(f1_score(validation_labels, predictions, average="macro", zero_division=0))
            fractional_epoch = epoch + (batch_index + 1) / steps_per_epoch
            history.append({
                "epoch": round(fractional_epoch, 4), "step": step, "train_loss": window_loss / window_steps,
                "validation_macro_f1": macro_f1,
                "validation_accuracy": float(accuracy_score(validation_labels, predictions)),
            })
            window_loss, window_steps = 0.0, 0
            logger.info("epoch %.2f: validation macro-F1 %.4f", fractional_epoch, macro_f1)
            shown.update(info=_status(epoch, config.epochs, history))
            if config.keep == "last":
                best_f1, best_epoch = macro_f1, fractional_epoch  # no selection: the last evaluation is kept
                continue
            if macro_f1 > best_f1:
                best_f1, best_epoch, stale = macro_f1, fractional_epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= config.patience:
                    return history, best_state, best_epoch, best_f1, _dp_record(private)
    if config.keep == "last":
        best_state = copy.deepcopy(model.state_dict())
    return history, best_state, best_epoch, best_f1, _dp_record(private)


def _dp_record(private) -> dict[str, Any] | None:
    return private.record() if private is not None else None


def _status(epoch: int, epochs: int, history: list[dict[str, Any]]) -> str:
    """E.g. "epoch 2/3, validation macro-F1 0.712" (the latest evaluation) for the progress display."""
    latest = f", validation macro-F1 {history[-1]['validation_macro_f1']:.3f}" if history else ""
    return f"epoch {epoch + 1}/{epochs}{latest}"


def _length_bucketed_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of similar-length examples: shuffle, sort within windows of 50 batches by length, cut
    into batches, shuffle the batch order. Dynamic padding then wastes little compute; every example is used
    once per epoch, and the order depends only on the generator."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def _optimizer(model, config: FinetuneConfig) -> torch.optim.AdamW:
    """AdamW with one parameter group per (depth, weight decay, query/key) combination; each group's ``lr_scale``
    multiplies the scheduled rate (``config.layer_lr_decay`` per depth, ``config.query_key_lr_scale`` for the
    attention query and key projections). Biases, norms and embeddings get no weight decay."""
    named = list(model.named_parameters())
    n_layers = 1 + max((_layer_index(name) for name, _ in named), default=-1)
    groups: dict[tuple[int, bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in named:
        if not parameter.requires_grad:
            continue
        decays = parameter.ndim >= 2 and "embeddings" not in name
        query_or_key = _QUERY_OR_KEY.search(name) is not None
        groups.setdefault((_depth(name, n_layers), decays, query_or_key), []).append(parameter)
    top = n_layers + 1
    optimizer = torch.optim.AdamW(
        [
            {"params": params, "weight_decay": config.weight_decay if decays else 0.0,
             "lr_scale": config.layer_lr_decay ** (top - depth) * (config.query_key_lr_scale if query_or_key else 1.0)}
            for (depth, decays, query_or_key), params in sorted(groups.items())
        ],
        lr=config.learning_rate,
    )
    fused = [parameter for name, parameter in named if parameter.requires_grad and _FUSED_QKV.search(name)]
    if fused and config.query_key_lr_scale != 1.0:
        _FusedQueryKeyRate(optimizer, fused, config.query_key_lr_scale)
    return optimizer


class _FusedQueryKeyRate:
    """``query_key_lr_scale`` for fused [W_q; W_k; W_v] parameters (ours: ``attention.qkv``), whose query and key
    rows share a tensor, and so an optimizer parameter group, with the value rows.

    AdamW's step, weight decay included, is proportional to the learning rate and its moment estimates do not
    depend on it, so scaling the change an optimizer step makes to the query and key rows by s is the step those
    rows would take at s times the rate — what separate parameter groups give for BERT-style separate W_q, W_k.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, parameters: list[torch.nn.Parameter], scale: float):
        self.parameters, self.scale = parameters, scale
        self.before: list[torch.Tensor] = []
        optimizer.register_step_pre_hook(self._remember)
        optimizer.register_step_post_hook(self._scale_change)

    @staticmethod
    def _query_key_rows(parameter: torch.Tensor) -> torch.Tensor:
        return parameter.detach()[: 2 * parameter.shape[0] // 3]

    def _remember(self, *_):
        self.before = [self._query_key_rows(parameter).clone() for parameter in self.parameters]

    def _scale_change(self, *_):
        for parameter, before in zip(self.parameters, self.before, strict=True):
            self._query_key_rows(parameter).lerp_(before, 1.0 - self.scale)  # before + scale · (after - before)
        self.before = []


_LAYER_INDEX = re.compile(r"(?:^|\.)layers?\.(\d+)\.")
_QUERY_OR_KEY = re.compile(r"(?:^|\.)(query|key)\.")  # BERT-style separate projections: attention.self.query
_FUSED_QKV = re.compile(r"(?:^|\.)qkv\.(?:weight|bias)$")  # ours: attention.qkv = [W_q; W_k; W_v]


def _layer_index(name: str) -> int:
    """Index of the encoder layer a parameter belongs to (ours: ``transformer.layers.N``, BERT-style:
    ``encoder.layer.N``), or -1 for parameters outside the layer stack."""
    match = _LAYER_INDEX.search(name)
    return int(match.group(1)) if match else -1


def _depth(name: str, n_layers: int) -> int:
    """0 for the embeddings, N + 1 for encoder layer N, n_layers + 1 for everything above the stack (final norm,
    pooler, classifier head)."""
    if "embeddings" in name:
        return 0
    index = _layer_index(name)
    return index + 1 if index >= 0 else n_layers + 1


def _linear_schedule(step: int, total_steps: int, config: FinetuneConfig) -> float:
    warmup = max(1, round(config.warmup_fraction * total_steps)) if config.warmup_fraction > 0 else 0
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    return config.learning_rate * max(0.0, (total_steps - step) / max(1, total_steps - warmup))


# ----------------------------------------------------------------------------------------------- inference
def encode(tokenizer, texts: list[str], *, max_length: int) -> tuple[list[list[int]], int]:
    """Token ids with [CLS]/[SEP], cut to ``max_length`` (keeping the final [SEP]); also the number cut."""
    encodings = tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=True)
    sep_id = tokenizer.sep_token_id
    ids, truncated = [], 0
    for encoding in encodings:
        tokens = encoding.ids
        if len(tokens) > max_length:
            truncated += 1
            tokens = tokens[: max_length - 1] + [sep_id]
        ids.append(tokens)
    return ids, truncated


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence of the batch (dynamic padding)."""
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask


@torch.no_grad()
def predict_logits(model, sequences: list[list[int]], *, pad_id: int, batch_size: int = 128,
                   bf16: bool = False) -> np.ndarray:
    """Classifier logits (N, C) in input order; batches are formed by length so little padding is computed."""
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out = np.zeros((len(sequences), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        input_ids, attention_mask = pad_batch([sequences[i] for i in chosen], pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids, attention_mask=attention_mask).logits
        out[chosen] = logits.float().numpy()
    return out


# ----------------------------------------------------------------------------------------------- CLI path
def run_finetune(config: FinetuneConfig, from_dir: str | Path, out_dir: str | Path, *, data_dir=None) -> Path:
    """Load the data, split, fine-tune, evaluate on test and write the classifier directory ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise TrainInputError(f"output directory {out_dir} already exists and is not empty; choose a new --out")
    from_dir = verify_model_dir(from_dir)
    task = build_task(config.data, data_dir=data_dir)
    if config.data.audit_canaries is not None:
        task = with_audit_canaries(task, config.data.audit_canaries)
    if config.dp is not None:
        check_dp_settings(config.dp, n_train=len(task.split("train")))
    outcome = finetune_classifier(
        from_dir, task.split("train"), task.split("validation"), config, seed=config.seed,
        num_labels=len(task.label_names),
    )
    test = task.split("test")
    test_ids, truncated_test = encode(outcome.tokenizer, [e.text for e in test], max_length=outcome.max_length)
    logits = predict_logits(outcome.model, test_ids, pad_id=outcome.tokenizer.pad_token_id,
                            batch_size=config.eval_batch_size,
                            bf16=use_bf16(config.precision, hidden_size=outcome.model.config.hidden_size))
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    predictions = probabilities.argmax(axis=1)
    test_labels = np.asarray([example.label for example in test])
    metrics = classification_metrics(test_labels, predictions, task.label_names)
    logger.info("test macro-F1 %.4f, accuracy %.4f", metrics["macro_f1"], metrics["accuracy"])

    model = outcome.model
    model.config.id2label = dict(enumerate(task.label_names))
    model.config.label2id = {name: index for index, name in enumerate(task.label_names)}
    work = work_dir_for(out_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        model.save_pretrained(work)
        outcome.tokenizer.save_pretrained(work)
        task.save(work)
        recipe = {
            "recipe": config.model_dump(mode="json"),
            "pretrained_from": str(from_dir.resolve()),
            # which language model the classifier was built on, named as the subject's capabilities are
            "pretrained_kind": "causal-lm" if getattr(model.config, "causal", False) else "mlm",
            "precision": resolved_precision(config.precision, hidden_size=outcome.model.config.hidden_size),
            "label_names": task.label_names,
            "positive_label": task.positive_label,
            "splits": {name: len(task.split(name)) for name in ("train", "validation", "test")},
            "max_length": outcome.max_length,
            "n_truncated": outcome.n_truncated + truncated_test,
            "best_epoch": outcome.best_epoch,
            "best_validation_macro_f1": outcome.best_validation_macro_f1,
            "history": outcome.history,
            "metrics": {"test": metrics},
            # the accountant's record of a DP-SGD fine-tuning (audit.train.dp); None = not private
            "dp": outcome.extra.get("dp"),
            "audit_canaries": _canary_record(task, config),
            "test_predictions": [
                {"id": example.id, "label": int(example.label), "prediction": int(prediction),
                 "probabilities": [round(float(p), 6) for p in row]}
                for example, prediction, row in zip(test, predictions, probabilities)
            ],
        }
        (work / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
        give_folder_ordinary_modes(work)
        if out_dir.exists():
            out_dir.rmdir()
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir


def _canary_record(task: TaskData, config: FinetuneConfig) -> dict[str, Any] | None:
    section = config.data.audit_canaries
    if section is None:
        return None
    included = sum(1 for example in task.split("train") if is_canary(example))
    return {**section.model_dump(mode="json"), "included": included}


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support (all higher is better)."""
    indices = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=indices, zero_division=0
    )
    return {
        "n": len(labels),
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=indices, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(label_names)
        },
    }


# ----------------------------------------------------------------------------------------------- data
def build_task(section: FinetuneDataSection, *, data_dir=None) -> TaskData:
    """The labelled examples with split membership, from the calibration scenario or a dataset."""
    if section.scenario is not None:
        from audit.data.scenarios import make_calibration_scenario

        scenario = section.scenario
        return make_calibration_scenario(
            n_examples=scenario.n_examples, bias_strength=scenario.bias_strength, seed=scenario.seed,
            test_fraction=section.test_fraction, validation_fraction=section.validation_fraction,
        )
    if section.dataset is None:
        raise FinetuneDataError("fine-tuning config has no data source; set data.dataset or data.scenario")
    from audit.data.catalog import load_dataset
    from audit.data.errors import DatasetError

    columns = [section.text_column, section.label_column, *section.group_columns]
    if section.split_column:
        columns.append(section.split_column)
    try:
        loaded = load_dataset(section.dataset, data_dir=data_dir, require_columns=columns)
    except DatasetError as error:
        raise FinetuneDataError(f"fine-tuning data: {error}") from None
    rows = loaded.dataset.select_columns(list(dict.fromkeys(columns))).to_dict()
    examples, label_names = _labelled_rows(rows, section)
    if section.max_examples is not None and len(examples) > section.max_examples:
        keep = np.sort(np.random.default_rng([section.split_seed, 3]).permutation(len(examples))[: section.max_examples])
        examples = [examples[i] for i in keep]
    if section.split_column:
        splits = _given_splits(rows, examples, section.split_column)
    else:
        splits = stratified_split([label for _, _, label, _ in examples], section.validation_fraction,
                                  section.test_fraction, seed=section.split_seed)
    labelled = [
        LabelledExample(id=row_id, text=text, label=label, split=split, groups=groups)
        for (row_id, text, label, groups), split in zip(examples, splits)
    ]
    positive = 1 if len(label_names) == 2 else 0
    if section.positive_label is not None:
        if section.positive_label not in label_names:
            raise FinetuneDataError(
                f"positive_label {section.positive_label!r} is not a label name ({', '.join(label_names)})"
            )
        positive = label_names.index(section.positive_label)
    return TaskData(
        name=section.name or Path(str(section.dataset)).stem,
        label_names=label_names,
        examples=labelled,
        positive_label=positive,
        group_columns=list(section.group_columns),
        provenance=[loaded.record.model_dump(mode="json")],
    )


def _labelled_rows(rows: dict[str, list], section: FinetuneDataSection):
    texts, raw_labels = rows[section.text_column], rows[section.label_column]
    kept, dropped = [], 0
    for index, (text, raw) in enumerate(zip(texts, raw_labels)):
        if not isinstance(text, str) or not text.strip() or raw is None:
            dropped += 1
            continue
        key = label_key(raw)
        name = section.label_map.get(key) if section.label_map is not None else key
        if name is None:
            dropped += 1
            continue
        groups = {column: label_key(rows[column][index]) for column in section.group_columns}
        kept.append((str(index), text, name, groups))
    if dropped:
        logger.info("dropped %d rows without text or with a label outside label_map", dropped)
    names_seen = sorted({name for _, _, name, _ in kept})
    label_names = list(section.label_names) if section.label_names is not None else names_seen
    unknown = [name for name in names_seen if name not in label_names]
    if unknown:
        raise FinetuneDataError(f"labels {unknown} are not in label_names {label_names}; add them or map them")
    if len(names_seen) < 2:
        raise FinetuneDataError(
            f"column {section.label_column!r} holds a single class ({names_seen}); a classifier needs at least two"
        )
    return [(row_id, text, label_names.index(name), groups) for row_id, text, name, groups in kept], label_names


def stratified_split(labels: list[int], validation_fraction: float, test_fraction: float, *, seed: int) -> list[str]:
    """Seeded per-class split into train / validation / test with the given fractions (rounded per class)."""
    rng = np.random.default_rng([seed, 5])
    splits = ["train"] * len(labels)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    for label in sorted(by_class):
        members = np.asarray(by_class[label])[rng.permutation(len(by_class[label]))]
        n_test = round(test_fraction * len(members))
        n_validation = round(validation_fraction * len(members))
        for index in members[:n_test]:
            splits[index] = "test"
        for index in members[n_test:n_test + n_validation]:
            splits[index] = "validation"
    for name in ("train", "validation", "test"):
        if name not in splits:
            raise FinetuneDataError(f"too few examples ({len(labels)}) for a non-empty {name} split")
    return splits


def _given_splits(rows: dict[str, list], examples, column: str) -> list[str]:
    splits = []
    for row_id, _, _, _ in examples:
        value = str(rows[column][int(row_id)]).strip().lower()
        if value not in SPLIT_ALIASES:
            raise FinetuneDataError(f"split column {column!r} holds {value!r}; expected train, validation or test")
        splits.append(SPLIT_ALIASES[value])
    for name in SPLITS:
        if name not in splits:
            raise FinetuneDataError(f"split column {column!r} has no {name!r} rows")
    return splits
