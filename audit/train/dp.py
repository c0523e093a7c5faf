"""Differentially private fine-tuning: DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016)
through opacus (Yousefpour et al., "Opacus: User-Friendly Differential Privacy Library in PyTorch", 2021).

Each step samples a Poisson batch (every training example independently, with rate batch_size / n), clips every
example's gradient to ``max_grad_norm`` and adds Gaussian noise; opacus' accountant picks the noise multiplier for
which the planned steps reach the target (ε, δ), and reports the ε actually spent by the steps taken. Per-example
gradients come from opacus' ``GradSampleModule`` (its grad samplers for Linear, LayerNorm and Embedding, which are
all the trainable layers of our transformer and of BERT-style encoders).

Settings are checked before any training: ε > 0 (the config), δ < 1/n (a δ of 1/n allows publishing one training
example in the clear) and a model whose layers opacus can train (``ModuleValidator``: no BatchNorm and the like).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from audit.train.config import DPSection
from audit.train.errors import TrainInputError

logger = logging.getLogger(__name__)

class DPSettingsError(TrainInputError):
    """A differential-privacy setting cannot give a meaningful guarantee, or opacus cannot train the model."""


def check_dp_settings(dp: DPSection, *, n_train: int) -> None:
    """δ must be below 1/n: with δ ≥ 1/n, a mechanism that publishes a random training example is (0, δ)-DP."""
    if n_train < 1:
        raise DPSettingsError("differentially private fine-tuning needs training examples, got none; expected a "
                              "dataset with a non-empty train split")
    if dp.delta >= 1.0 / n_train:
        raise DPSettingsError(
            f"dp.delta = {dp.delta:g} is not below 1/n = {1.0 / n_train:.3g} for n = {n_train} training examples; "
            f"expected a delta well below 1/n, e.g. {10 ** math.floor(math.log10(0.1 / n_train)):g}"
        )


def check_opacus_can_train(model: torch.nn.Module) -> None:
    """One-line error naming the first layer opacus cannot give per-example gradients for (e.g. BatchNorm)."""
    from opacus.validators import ModuleValidator

    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        first = str(problems[0]).strip().splitlines()[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DPSettingsError(
            f"opacus cannot train {type(model).__name__} with differential privacy: {first}{more}; expected a model "
            "of Linear / LayerNorm / Embedding layers (BERT-style encoders, rai-transformer)"
        )


class _BatchExpandedEmbeddings:
    """Gives every embedding lookup of ``model`` a batch dimension equal to the batch's.

    Position ids are often one (1, T) row broadcast over the batch (ours, BERT, DistilBERT); opacus' embedding
    grad sampler reads the batch size from the ids, so it would sum the batch into one "per-example" gradient.
    A pre-hook on the model reads the batch size from its ``input_ids``; pre-hooks on the embeddings expand
    (1, T) ids to (B, T): the same embeddings, now with one row per example.
    """

    def __init__(self, model: torch.nn.Module):
        self.batch_size = 0
        self.handles = [model.register_forward_pre_hook(self._read_batch_size, with_kwargs=True)]
        self.handles += [module.register_forward_pre_hook(self._expand) for module in model.modules()
                         if isinstance(module, torch.nn.Embedding)]

    def _read_batch_size(self, _module, args, kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        self.batch_size = int(input_ids.shape[0]) if isinstance(input_ids, torch.Tensor) else 0

    def _expand(self, _module, inputs):
        ids = inputs[0]
        if ids.dim() >= 2 and ids.shape[0] == 1 and self.batch_size > 1:
            return (ids.expand(self.batch_size, *ids.shape[1:]),)
        return None

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


# Rényi-DP orders for the RDP accountant (Mironov, CSF 2017). Integer orders have a closed form (milliseconds each);
# opacus' defaults add 90 fractional orders, whose series take about a minute of CPU per noise search. Any set of
# orders gives a valid ε; leaving out the fractional ones makes it at most slightly larger (more conservative).
RDP_ORDERS = [2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96, 128, 256]


def accountant_options(dp: DPSection) -> dict[str, Any]:
    return {"alphas": RDP_ORDERS} if dp.accountant == "rdp" else {}


@dataclass
class PrivateTraining:
    """A model, optimizer and Poisson data loader made private by opacus, and the engine holding the accountant."""

    module: Any  # opacus GradSampleModule wrapping the model
    optimizer: Any  # opacus DPOptimizer wrapping the given optimizer
    loader: Any  # opacus DPDataLoader (Poisson sampling)
    engine: Any  # opacus PrivacyEngine
    embeddings: _BatchExpandedEmbeddings
    dp: DPSection
    n_train: int
    noise_multiplier: float

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of Poisson batches, padding columns no example of the batch uses cut off."""
        for input_ids, attention_mask, labels in self.loader:
            width = max(1, int(attention_mask.sum(dim=1).max())) if len(labels) else 1
            yield input_ids[:, :width], attention_mask[:, :width], labels

    def record(self) -> dict[str, Any]:
        """What finetune.json records: the accountant's ε for the steps taken, δ, noise, steps, sampling rate."""
        steps = sum(count for _, _, count in self.engine.accountant.history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the optimal order at an end of RDP_ORDERS: still valid
            spent = self.engine.accountant.get_epsilon(self.dp.delta, **accountant_options(self.dp)) if steps else 0.0
        return {
            "epsilon": float(spent),
            "target_epsilon": self.dp.epsilon,
            "delta": self.dp.delta,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.dp.max_grad_norm,
            "steps": steps,
            "sample_rate": float(self.loader.sample_rate),
            "expected_batch_size": float(self.loader.sample_rate * self.n_train),
            "accountant": self.dp.accountant,
            "poisson_sampling": True,
            "library": "opacus",
        }

    def close(self) -> None:
        """Remove opacus' hooks and per-example gradients, leaving the plain model."""
        self.embeddings.remove()
        self.module._close()


def make_private(model: torch.nn.Module, optimizer: torch.optim.Optimizer, train_ids: list[list[int]],
                 train_labels: torch.Tensor, *, pad_id: int, dp: DPSection, batch_size: int, epochs: int,
                 seed: int) -> PrivateTraining:
    """Wrap ``model``/``optimizer`` for DP-SGD at (dp.epsilon, dp.delta) over ``epochs`` Poisson epochs.

    The training texts are padded to the longest (Poisson batches are drawn by opacus, not by length); each batch
    is cut back to its own longest text. Sampling and noise draw from generators seeded by ``seed``.
    """
    from opacus import PrivacyEngine
    from opacus.accountants.utils import get_noise_multiplier
    from torch.utils.data import DataLoader, TensorDataset

    from audit.train.finetune import pad_batch

    check_opacus_can_train(model)
    n_train = len(train_ids)
    check_dp_settings(dp, n_train=n_train)
    input_ids, attention_mask = pad_batch(train_ids, pad_id)
    loader = DataLoader(TensorDataset(input_ids, attention_mask, train_labels), batch_size=min(batch_size, n_train),
                        generator=torch.Generator().manual_seed(seed))
    engine = PrivacyEngine(accountant=dp.accountant)
    # What make_private_with_epsilon does, with our accountant orders passed to the noise search.
    with warnings.catch_warnings():  # "optimal order is the largest alpha" for the search's first, tiny noises
        warnings.simplefilter("ignore", UserWarning)
        noise_multiplier = float(get_noise_multiplier(
            target_epsilon=dp.epsilon, target_delta=dp.delta, sample_rate=1 / len(loader), epochs=epochs,
            accountant=dp.accountant, **accountant_options(dp),
        ))
    embeddings = _BatchExpandedEmbeddings(model)
    module, private_optimizer, private_loader = engine.make_private(
        module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=noise_multiplier,
        max_grad_norm=dp.max_grad_norm, poisson_sampling=True,
        noise_generator=torch.Generator().manual_seed(seed + 1),
    )
    logger.info("DP-SGD: noise multiplier %.3f for ε = %g, δ = %g over %d epochs", noise_multiplier, dp.epsilon,
                dp.delta, epochs)
    return PrivateTraining(module, private_optimizer, private_loader, engine, embeddings, dp, n_train,
                           noise_multiplier)
