"""Non-finite training: a NaN/infinite learning rate is refused with the config; a loss that stops being a number
stops training with one line (exit 2 from the CLI) and leaves no model of NaNs behind."""

from __future__ import annotations

import math

import pytest
import torch
from train_helpers import tiny_config
from typer.testing import CliRunner

from audit.cli import app
from audit.train.config import finetune_config_from_dict, pretrain_config_from_dict
from audit.train.errors import NonFiniteLossError, TrainInputError
from audit.train.finetune import run_finetune
from audit.train.pretrain import pretrain, work_dir_for

# Finite but absurd: Adam moves every weight by about the learning rate, so the second forward pass overflows.
DIVERGING_RATE = 1e30


@pytest.mark.parametrize("rate", [math.inf, -math.inf, math.nan])
def test_non_finite_learning_rates_are_config_errors(rate):
    with pytest.raises(TrainInputError, match="learning_rate"):
        pretrain_config_from_dict({"preset": "tiny", "train": {"learning_rate": rate}})
    with pytest.raises(TrainInputError, match="learning_rate"):
        finetune_config_from_dict({"preset": "scenario", "learning_rate": rate})


def test_cli_refuses_an_infinite_learning_rate_before_training(tmp_path):
    config = tmp_path / "pretrain.toml"
    config.write_text('preset = "tiny"\n[train]\nlearning_rate = inf\n', encoding="utf-8")
    outcome = CliRunner().invoke(app, ["pretrain", "--config", str(config), "--out", str(tmp_path / "out")])
    assert outcome.exit_code == 2 and "train.learning_rate" in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_pretraining_stops_on_a_non_finite_loss_and_leaves_nothing(synthetic_corpus, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(NonFiniteLossError) as error:
        pretrain(tiny_config(synthetic_corpus, learning_rate=DIVERGING_RATE, grad_clip=None, precision="fp32"),
                 out)
    message = str(error.value)
    assert message.startswith("pretraining stopped at step ") and "(not finite)" in message and "\n" not in message
    assert "learning_rate (now 1e+30)" in message
    assert not out.exists() and not work_dir_for(out).exists()


def test_fine_tuning_from_nan_weights_stops_with_one_line(tiny_pretrained_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan-pretrained"
    broken.mkdir()
    for path in tiny_pretrained_dir.iterdir():
        if path.is_file():
            (broken / path.name).write_bytes(path.read_bytes())
    weights = load_file(broken / "model.safetensors")
    save_file({name: torch.full_like(tensor, math.nan) if tensor.is_floating_point() else tensor
               for name, tensor in weights.items()}, broken / "model.safetensors", metadata={"format": "pt"})
    config = finetune_config_from_dict({"preset": "scenario", "epochs": 1, "precision": "fp32",
                                        "data": {"scenario": {"n_examples": 60, "seed": 0}}})
    out = tmp_path / "classifier"
    with pytest.raises(NonFiniteLossError, match=r"^fine-tuning stopped at step 1: the loss is nan \(not finite\)"):
        run_finetune(config, broken, out)
    assert not out.exists() and not work_dir_for(out).exists()
