"""Pretraining of our transformer: masked-language modelling of the encoder (Devlin et al., NAACL 2019; RoBERTa's
dynamic masking and full-sentence packing, Liu et al., 2019), or with ``train.objective = "causal"`` next-token
prediction of the decoder (Radford et al., 2019, GPT-2) on the same packed sequences. Lower held-out loss is
better (masked-token or next-token cross-entropy); ln(vocab size) is chance.

``pretrain(config, out_dir)`` loads the corpus, holds out whole documents for the held-out loss, optionally plants
canaries, trains a WordPiece tokenizer, packs sequences and trains with AdamW (warmup, then linear or cosine decay,
gradient clipping, bf16 autocast when the CPU has bf16 units). Training stops at ``max_steps`` or after
``max_minutes``; with a time budget the learning-rate schedule runs on elapsed time, so the decay still ends when
the budget does.

The run is built in ``.<out>.partial`` beside the output directory — metrics.jsonl, tokenizer and checkpoints
land there — and renamed to ``out_dir`` once complete; ``resume=True`` continues from its last checkpoint and gives
the weights of an uninterrupted run. Randomness: weight init and dropout draw from a seeded, forked global torch
RNG (restored afterwards, and saved in checkpoints); masks and batch order come from per-step generators derived
from (seed, step), so nothing depends on how often a run was interrupted.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from audit.model import AuditTransformerConfig, AuditTransformerForCausalLM, AuditTransformerForMaskedLM
from audit.outputs import give_folder_ordinary_modes
from audit.progress import current_reporter
from audit.train.canaries import CanaryManifest, check_tokenizer, draw_canaries, plant_canaries
from audit.train.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint
from audit.train.config import PretrainConfig, PretrainTrainSection
from audit.train.corpus import PackedSequences, load_corpus, pack, split_heldout
from audit.train.errors import CheckpointError, TrainInputError, finite_loss
from audit.train.masking import IGNORE_INDEX, _mix, mask_tokens, step_generator
from audit.train.precision import resolved_precision, use_bf16
from audit.train.tokenizer import train_tokenizer

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
RECIPE_FILE = "pretrain.json"
CONFIG_FILE = "pretrain_config.json"
CHECKPOINT_DIR = "checkpoint"
_STREAM_MASK, _STREAM_SHUFFLE, _STREAM_EVAL, _STREAM_DROPOUT = 1, 2, 3, 4


def work_dir_for(out_dir: str | Path) -> Path:
    """Where an unfinished run lives: ``.<name>.partial`` beside the output directory."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.partial")


def pretrain(
    config: PretrainConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    resume: bool = False,
    stop_after_steps: int | None = None,
) -> Path:
    """Pretrain and write the HF model directory ``out_dir``; returns it.

    ``stop_after_steps`` interrupts the run after that many steps, leaving a checkpoint to ``resume`` from; the
    unfinished directory is then returned instead of ``out_dir``. Progress (step, loss, tokens/s) goes to
    ``audit.progress.current_reporter()``.
    """
    wall_start = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise TrainInputError(f"output directory {out_dir} already exists and is not empty; choose a new --out")
    work = work_dir_for(out_dir)
    if resume and not (work / CHECKPOINT_DIR / STATE_FILE).is_file():
        raise CheckpointError(f"nothing to resume for {out_dir}: no checkpoint in {work}; run without --resume")

    # Everything that can fail on bad input happens before a file is written.
    corpus = load_corpus(config.corpus, data_dir=data_dir)
    training_docs, heldout_docs = split_heldout(
        corpus.documents, config.corpus.heldout_fraction, seed=config.train.seed
    )
    manifest = None
    if config.canaries is not None:
        manifest = draw_canaries(config.canaries)
        training_docs = plant_canaries(training_docs, manifest)

    if not resume:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    try:
        tokenizer = _prepare_tokenizer(config, training_docs, work, resume=resume)
        if manifest is not None:
            manifest = check_tokenizer(manifest, tokenizer)
        max_length = config.corpus.max_length
        train_sequences = pack(training_docs, tokenizer, max_length=max_length)
        heldout_sequences = pack(heldout_docs, tokenizer, max_length=max_length)
        trainer = _Trainer(config, tokenizer, train_sequences, heldout_sequences, work)
        summary = trainer.run(resume=resume, stop_after_steps=stop_after_steps)
    except BaseException:
        if not (work / CHECKPOINT_DIR).exists():  # nothing resumable: leave nothing behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    if summary.interrupted:
        logger.info("stopped after step %d; resume with resume=True (--resume)", summary.step)
        return work

    trainer.model.save_pretrained(work)
    if manifest is not None:
        manifest.save(work)
    recipe = _recipe(config, corpus.provenance, training_docs, heldout_docs, train_sequences, summary, manifest,
                     len(tokenizer))
    recipe["wall_seconds"] = time.perf_counter() - wall_start  # this call: corpus, tokenizer, training, saving
    (work / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(work / CHECKPOINT_DIR, ignore_errors=True)
    (work / CONFIG_FILE).unlink(missing_ok=True)
    give_folder_ordinary_modes(work)
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked above
    work.rename(out_dir)
    logger.info("pretrained model written to %s", out_dir)
    return out_dir


def _prepare_tokenizer(config: PretrainConfig, training_docs: list[str], work: Path, *, resume: bool):
    from transformers import PreTrainedTokenizerFast

    config_json = json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True)
    if resume:
        saved = (work / CONFIG_FILE).read_text(encoding="utf-8") if (work / CONFIG_FILE).is_file() else ""
        if saved.strip() != config_json.strip():
            raise CheckpointError(f"{work}: the config differs from the interrupted run's; resume with the same config")
        return PreTrainedTokenizerFast.from_pretrained(work)
    tokenizer = train_tokenizer(
        training_docs,
        config.tokenizer.vocab_size,
        min_frequency=config.tokenizer.min_frequency,
        model_max_length=config.positions,
        required_characters=_canary_characters(config),
        for_decoder=config.train.objective == "causal",
    )
    tokenizer.save_pretrained(work)
    (work / CONFIG_FILE).write_text(config_json + "\n", encoding="utf-8")
    return tokenizer


def _canary_characters(config: PretrainConfig) -> list[str]:
    if config.canaries is None:
        return []
    return sorted({char for symbol in config.canaries.alphabet for char in symbol if not char.isspace()})


def learning_rate(progress: float, train: PretrainTrainSection) -> float:
    """Linear warmup over ``warmup_fraction`` of the run, then linear or cosine decay to ``min_lr_ratio``."""
    peak = train.learning_rate
    if train.warmup_fraction > 0 and progress < train.warmup_fraction:
        return peak * progress / train.warmup_fraction
    decay = min(1.0, (progress - train.warmup_fraction) / max(1e-12, 1.0 - train.warmup_fraction))
    factor = 1.0 - decay if train.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * decay))
    return peak * (train.min_lr_ratio + (1.0 - train.min_lr_ratio) * factor)


@dataclass
class TrainSummary:
    step: int
    elapsed_seconds: float
    tokens_seen: int
    interrupted: bool
    heldout_loss: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class _Trainer:
    def __init__(self, config, tokenizer, train_sequences, heldout_sequences, work: Path):
        self.config, self.train = config, config.train
        self.tokenizer = tokenizer
        self.train_sequences: PackedSequences = train_sequences
        self.heldout_sequences: PackedSequences = heldout_sequences
        self.work = work
        self.bf16 = use_bf16(self.train.precision, hidden_size=config.model.hidden_size)
        self.special_ids = list(tokenizer.all_special_ids)
        self._permutations: dict[int, torch.Tensor] = {}
        self.causal = self.train.objective == "causal"
        model_class = AuditTransformerForCausalLM if self.causal else AuditTransformerForMaskedLM
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.train.seed, 0))
            self.model = model_class(self._model_config())
        self.optimizer = self._optimizer()

    def _model_config(self) -> AuditTransformerConfig:
        section = self.config.model
        return AuditTransformerConfig(
            vocab_size=len(self.tokenizer),
            hidden_size=section.hidden_size,
            num_hidden_layers=section.num_hidden_layers,
            num_attention_heads=section.num_attention_heads,
            intermediate_size=section.intermediate_size,
            max_position_embeddings=self.config.positions,
            hidden_dropout_prob=section.hidden_dropout_prob,
            attention_probs_dropout_prob=section.attention_probs_dropout_prob,
            initializer_range=section.initializer_range,
            pad_token_id=self.tokenizer.pad_token_id,
            causal=self.causal,
            bos_token_id=self.tokenizer.bos_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )

    def _optimizer(self) -> torch.optim.AdamW:
        # No weight decay on biases, LayerNorm and embeddings (as in BERT).
        decay, no_decay = [], []
        for name, parameter in self.model.named_parameters():
            (no_decay if parameter.ndim < 2 or "embeddings" in name else decay).append(parameter)
        groups = [
            {"params": decay, "weight_decay": self.train.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            groups, lr=self.train.learning_rate, betas=self.train.adam_betas, eps=self.train.adam_eps
        )

    # ------------------------------------------------------------------------------------------ data
    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        n, size = len(self.train_sequences), self.train.batch_size
        indices = []
        for sample in range(step * size, (step + 1) * size):
            epoch, position = divmod(sample, n)
            if epoch not in self._permutations:
                generator = step_generator(self.train.seed, epoch, stream=_STREAM_SHUFFLE)
                self._permutations = {epoch: torch.randperm(n, generator=generator)}
            indices.append(self._permutations[epoch][position])
        index = torch.stack(indices)
        return self.train_sequences.input_ids[index], self.train_sequences.attention_mask[index]

    def _inputs_and_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """(model inputs, labels): masked copies and the masked tokens for the masked objective; for the causal one
        the sequences themselves, every real token a label (the model shifts them), padding not scored."""
        if self.causal:
            return input_ids, input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        return self._mask(input_ids, generator)

    def _mask(self, input_ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_tokens(
            input_ids,
            special_token_ids=self.special_ids,
            mask_token_id=self.tokenizer.mask_token_id,
            vocab_size=len(self.tokenizer),
            generator=generator,
            mlm_probability=self.train.mlm_probability,
        )

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    # ------------------------------------------------------------------------------------------ loop
    def run(self, *, resume: bool, stop_after_steps: int | None) -> TrainSummary:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.train.seed, _STREAM_DROPOUT))
            return self._loop(resume=resume, stop_after_steps=stop_after_steps)

    def _loop(self, *, resume: bool, stop_after_steps: int | None) -> TrainSummary:
        train = self.train
        step, elapsed_before, tokens_seen = 0, 0.0, 0
        metrics_path = self.work / METRICS_FILE
        if resume:
            state = load_checkpoint(self.work / CHECKPOINT_DIR, self.model, self.optimizer)
            step, elapsed_before, tokens_seen = state["step"], state["elapsed_seconds"], state["tokens_seen"]
            _truncate_metrics(metrics_path, step)
            logger.info("resuming at step %d", step)
        budget = None if train.max_minutes is None else train.max_minutes * 60.0
        history: list[dict[str, Any]] = []
        heldout_loss = None
        self.model.train()
        started = time.perf_counter()
        window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, started
        with (open(metrics_path, "a", encoding="utf-8") as metrics,
              current_reporter().task("pretraining", total=train.max_steps, unit="steps") as shown):
            while True:
                elapsed = elapsed_before + time.perf_counter() - started
                progress = self._progress(step, elapsed, budget)
                if progress >= 1.0:
                    break
                if stop_after_steps is not None and step >= stop_after_steps:
                    self._checkpoint(step, elapsed, tokens_seen)
                    shown.close(failed=True)  # interrupted, to be resumed: not "done"
                    return TrainSummary(step, elapsed, tokens_seen, interrupted=True, history=history)
                lr = learning_rate(self._progress(step + 1, elapsed, budget), train)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                input_ids, attention_mask = self._batch(step)
                inputs, labels = self._inputs_and_labels(input_ids, attention_mask,
                                                         step_generator(train.seed, step, stream=_STREAM_MASK))
                with self._autocast():
                    loss = self.model(inputs, attention_mask=attention_mask, labels=labels).loss
                step_loss = finite_loss(float(loss.detach()), stage="pretraining", step=step + 1,
                                        learning_rate=train.learning_rate)
                loss.backward()
                if train.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                batch_tokens = int(attention_mask.sum())
                tokens_seen += batch_tokens
                window_loss += step_loss
                window_steps += 1
                window_tokens += batch_tokens

                now = time.perf_counter()
                elapsed = elapsed_before + now - started
                if step % train.log_every == 0:
                    rate = window_tokens / max(1e-9, now - window_start)
                    record = {"kind": "train", "step": step, "loss": window_loss / window_steps, "lr": lr,
                              "tokens_per_second": rate, "tokens_seen": tokens_seen, "elapsed_seconds": elapsed}
                    _write(metrics, record)
                    shown.update(info=f"loss {record['loss']:.3f}, {rate:,.0f} tokens/s")
                    window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, now
                shown.update(completed=step, total=self._expected_steps(step, elapsed, budget))
                if step % train.eval_every == 0:
                    heldout_loss = self._eval_record(metrics, history, step, elapsed)
                if step % train.checkpoint_every == 0:
                    self._checkpoint(step, elapsed, tokens_seen)
            elapsed = elapsed_before + time.perf_counter() - started
            if not history or history[-1]["step"] != step:
                heldout_loss = self._eval_record(metrics, history, step, elapsed)
            shown.update(completed=step, total=step)
        return TrainSummary(step, elapsed, tokens_seen, interrupted=False, heldout_loss=heldout_loss, history=history)

    def _progress(self, step: int, elapsed: float, budget: float | None) -> float:
        fractions = []
        if self.train.max_steps is not None:
            fractions.append(step / self.train.max_steps)
        if budget is not None:
            fractions.append(elapsed / budget)
        return max(fractions)

    def _expected_steps(self, step: int, elapsed: float, budget: float | None) -> int | None:
        """The step count the run will end at, as far as the step limit and the time budget tell so far."""
        fraction = self._progress(step, elapsed, budget)
        return max(step, round(step / fraction)) if fraction > 0 else self.train.max_steps

    def _checkpoint(self, step: int, elapsed: float, tokens_seen: int) -> None:
        state = {"step": step, "elapsed_seconds": elapsed, "tokens_seen": tokens_seen}
        save_checkpoint(self.work / CHECKPOINT_DIR, self.model, self.optimizer, state)

    def _eval_record(self, metrics, history, step: int, elapsed: float) -> float:
        loss = self.heldout_loss()
        record = {"kind": "eval", "step": step, "heldout_loss": loss, "heldout_perplexity": math.exp(min(loss, 50.0)),
                  "elapsed_seconds": elapsed}
        history.append(record)
        _write(metrics, record)
        logger.info("step %d held-out %s loss %.4f", step, "next-token" if self.causal else "MLM", loss)
        return loss

    @torch.no_grad()
    def heldout_loss(self) -> float:
        """Mean cross-entropy (nats) over the held-out tokens scored: masked tokens (the same masks at every
        evaluation) for the masked objective, every next token for the causal one."""
        sequences = self.heldout_sequences
        count = min(len(sequences), self.train.eval_sequences)
        generator = step_generator(self.train.seed, 0, stream=_STREAM_EVAL)
        attention_mask = sequences.attention_mask[:count]
        masked, labels = self._inputs_and_labels(sequences.input_ids[:count], attention_mask, generator)
        # the causal loss scores labels[:, 1:] (each token predicted from the ones before it)
        scored_labels = labels[:, 1:] if self.causal else labels
        self.model.eval()
        total, scored = 0.0, 0
        try:
            for start in range(0, count, self.train.batch_size):
                part = slice(start, start + self.train.batch_size)
                n_scored = int((scored_labels[part] != IGNORE_INDEX).sum())
                if n_scored == 0:
                    continue
                with self._autocast():
                    loss = self.model(masked[part], attention_mask=attention_mask[part], labels=labels[part]).loss
                total += float(loss) * n_scored
                scored += n_scored
        finally:
            self.model.train()
        return total / max(1, scored)


def _recipe(config, provenance, training_docs, heldout_docs, train_sequences, summary: TrainSummary,
            manifest: CanaryManifest | None, vocab_size: int) -> dict[str, Any]:
    import transformers

    loss = summary.heldout_loss
    return {
        "config": config.model_dump(mode="json"),
        "corpus": provenance,
        "documents": {"training": len(training_docs), "heldout": len(heldout_docs)},
        "training_sequences": len(train_sequences),
        "final": {
            "step": summary.step,
            "heldout_loss": loss,
            "heldout_perplexity": None if loss is None else math.exp(min(loss, 50.0)),
            # Chance level: a uniform guess over the vocabulary scores ln(vocab) nats.
            "ln_vocab": math.log(vocab_size),
            "nats_below_uniform": None if loss is None else math.log(vocab_size) - loss,
            "vocab_size": vocab_size,
            "elapsed_seconds": summary.elapsed_seconds,
            "tokens_seen": summary.tokens_seen,
            "tokens_per_second": summary.tokens_seen / max(1e-9, summary.elapsed_seconds),
        },
        "precision": resolved_precision(config.train.precision, hidden_size=config.model.hidden_size),
        "threads": torch.get_num_threads(),
        "canaries": manifest is not None,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def _write(handle, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, sort_keys=True) + "\n")
    handle.flush()


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from, so the log reads as one run."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

