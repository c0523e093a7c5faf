"""Reference ("shadow") models for membership inference, trained by our own fine-tuning pipeline.

Following Carlini et al. (S&P 2022), K reference models are fine-tuned from the same pretrained checkpoint with the
target's recipe, each on a random half of a population pool (the target's training and held-out examples). The
in/out assignment is balanced: every example is IN for exactly floor(K/2) models, so each example has both IN and
OUT reference statistics (needed by online LiRA). Each job returns only the reference model's logits on the whole
pool, so jobs are cheap to ship between processes (Ray) and the models themselves are never kept.

Determinism: a job's result depends only on its fields (examples, mask, recipe, seed, thread count): the
training seed is part of the job and torch runs with a pinned number of threads inside the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.data.task import LabelledExample
from probes.base import derive_seed
from probes.privacy.attacks import balanced_in_out_masks
from probes.privacy.executors import Executor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowJob:
    """Everything one reference model needs; plain data so that it pickles for Ray."""

    index: int
    pretrained_dir: str
    pool: tuple[LabelledExample, ...]
    in_mask: tuple[bool, ...]
    recipe: dict[str, Any]
    seed: int
    max_length: int
    n_validation: int
    num_labels: int
    threads: int = 1
    eval_batch_size: int = 64


@dataclass(frozen=True)
class ShadowOutcome:
    index: int
    logits: np.ndarray  # (N_pool, C) float32, aligned with the pool
    n_train: int
    best_epoch: int | None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ShadowSet:
    """The outcome of training K reference models on one pool."""

    in_mask: np.ndarray  # (K, N) bool
    logits: np.ndarray  # (K, N, C)
    outcomes: list[ShadowOutcome]


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Run torch with ``threads`` intra-op threads and restore the previous setting afterwards.

    Reductions split over a different number of threads can round differently; pinning the count makes a job
    bit-identical in this process and in a Ray worker.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_shadow_jobs(
    pool: Sequence[LabelledExample],
    *,
    n_models: int,
    pretrained_dir: str,
    recipe: dict[str, Any],
    seed: int,
    max_length: int,
    n_validation: int,
    num_labels: int,
    threads: int = 1,
) -> tuple[np.ndarray, list[ShadowJob]]:
    """The balanced (K, N) in/out mask and one job per reference model, all derived from ``seed``."""
    rng = np.random.default_rng(derive_seed(seed, "shadow-masks"))
    in_mask = balanced_in_out_masks(n_models, len(pool), rng)
    pool = tuple(pool)
    jobs = [
        ShadowJob(
            index=k,
            pretrained_dir=str(pretrained_dir),
            pool=pool,
            in_mask=tuple(bool(v) for v in in_mask[k]),
            recipe=dict(recipe),
            seed=derive_seed(seed, "shadow", str(k)),
            max_length=max_length,
            n_validation=n_validation,
            num_labels=num_labels,
            threads=threads,
        )
        for k in range(n_models)
    ]
    return in_mask, jobs


def train_shadow(job: ShadowJob) -> ShadowOutcome:
    """Fine-tune one reference model on its IN half and return its logits on the whole pool.

    The validation set (for the recipe's early stopping) is drawn from the model's OUT half, as the target's was
    drawn from its held-out data. Module-level so that Ray can ship it by reference.
    """
    from audit.train.config import finetune_config_from_dict
    from audit.train.finetune import finetune_classifier

    mask = np.asarray(job.in_mask, dtype=bool)
    train = [example for example, keep in zip(job.pool, mask) if keep]
    out_positions = np.flatnonzero(~mask)
    rng = np.random.default_rng(derive_seed(job.seed, "validation"))
    chosen = np.sort(rng.permutation(out_positions)[: max(1, job.n_validation)])
    validation = [job.pool[i] for i in chosen]
    config = finetune_config_from_dict(job.recipe, source="membership probe: fine-tuning recipe")
    with pinned_threads(job.threads):
        outcome = finetune_classifier(
            job.pretrained_dir, train, validation, config, seed=job.seed, num_labels=job.num_labels
        )
        logits = classifier_logits(
            outcome.model,
            outcome.tokenizer,
            [example.text for example in job.pool],
            max_length=job.max_length,
            batch_size=job.eval_batch_size,
        )
    history = [dict(entry) for entry in (getattr(outcome, "history", None) or [])]
    return ShadowOutcome(
        index=job.index,
        logits=logits,
        n_train=len(train),
        best_epoch=getattr(outcome, "best_epoch", None),
        history=history,
    )


def classifier_logits(model, tokenizer, texts: Sequence[str], *, max_length: int, batch_size: int = 64) -> np.ndarray:
    """Logits (N, C) of an in-memory classifier, in eval mode, texts truncated to ``max_length`` like the
    audited subject's ``logits`` (length-sorted batches so padding is minimal)."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    output = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
            attention = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
            for row, i in enumerate(batch):
                input_ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                attention[row, : len(encoded[i])] = 1
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
            output[batch] = logits.float().cpu().numpy()
    return output


def train_shadow_models(jobs: Sequence[ShadowJob], in_mask: np.ndarray, executor: Executor, *,
                        on_done: Callable[[], None] | None = None) -> ShadowSet:
    """Run the jobs on ``executor`` and stack their logits (K, N, C) in job order; ``on_done()`` per model."""
    outcomes = sorted(executor.map(train_shadow, list(jobs), on_done=on_done), key=lambda outcome: outcome.index)
    logits = np.stack([outcome.logits for outcome in outcomes])
    return ShadowSet(in_mask=np.asarray(in_mask, dtype=bool), logits=logits, outcomes=outcomes)
