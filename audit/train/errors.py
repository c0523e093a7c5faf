"""Named errors of the training pipeline; every message is one line saying what is wrong and what is expected.

They derive from ``audit.errors.InputError``, which the CLI catches: it prints the message with exit code 2.
"""

from __future__ import annotations

import math

from audit.errors import InputError


class TrainInputError(InputError):
    """Bad input to pretraining or fine-tuning (a config, a corpus, a dataset or a model directory)."""


class ConfigError(TrainInputError):
    """A TOML config is unreadable, names an unknown key or holds a value of the wrong kind."""


class CorpusError(TrainInputError):
    """The pretraining corpus is missing, empty or not UTF-8 text."""


class CheckpointError(TrainInputError):
    """A model or checkpoint directory is not one of ours, holds a pickle or cannot be resumed."""


class FinetuneDataError(TrainInputError):
    """The fine-tuning dataset lacks a column, has a single class or cannot be split."""


class NonFiniteLossError(TrainInputError):
    """The training loss became NaN or infinite: the weights are lost (a learning rate far too large, or data or
    starting weights that are not finite). Training stops rather than save a model of NaNs."""


def finite_loss(loss: float, *, stage: str, step: int, learning_rate: float) -> float:
    """``loss`` when it is finite; NonFiniteLossError naming the step and the learning rate otherwise."""
    if not math.isfinite(loss):
        raise NonFiniteLossError(
            f"{stage} stopped at step {step}: the loss is {loss} (not finite), so the weights are no longer numbers; "
            f"expected a smaller learning_rate (now {learning_rate:g}) or finite input data and starting weights"
        )
    return loss
