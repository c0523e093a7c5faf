"""Training refuses absurd model sizes and damaged or hostile `--from` folders with one line (exit 2, nothing
written), and the model folders it writes hold ordinary files (0644 under the usual umask), weights included."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
import torch
from safetensors.torch import load, save_file
from tiny_models import build_tokenizer, ours_config, save
from train_helpers import tiny_config
from typer.testing import CliRunner

from audit.cli import app
from audit.data.task import LabelledExample
from audit.model import AuditTransformerForMaskedLM
from audit.model_folder import SubjectLoadError
from audit.model_size import MAX_PARAMETERS, MAX_TENSOR_ELEMENTS
from audit.train.config import finetune_config_from_dict, pretrain_config_from_dict
from audit.train.errors import ConfigError
from audit.train.finetune import finetune_classifier, run_finetune
from audit.train.pretrain import pretrain, work_dir_for


def _invoke(*arguments):
    return CliRunner().invoke(app, [str(argument) for argument in arguments])


def _assert_one_line_exit_2(outcome, expected):
    assert outcome.exit_code == 2, outcome.output
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], outcome.stderr


# ------------------------------------------------------------------------------------------- absurd sizes
@pytest.mark.parametrize("model, expected", [
    ({"hidden_size": 2**31, "num_attention_heads": 1}, f"above the limit of {MAX_TENSOR_ELEMENTS:.3g}"),
    ({"num_hidden_layers": 10**9}, f"parameters, above the limit of {MAX_PARAMETERS:.3g}"),
])
def test_pretrain_refuses_an_absurd_model_size_before_any_work(synthetic_corpus, tmp_path, model, expected):
    settings = "\n".join(f"{key} = {value}" for key, value in model.items())
    config = tmp_path / "huge.toml"
    config.write_text(f'preset = "tiny"\n[corpus]\ndataset = "{synthetic_corpus}"\n[model]\n{settings}\n')
    out = tmp_path / "out"
    _assert_one_line_exit_2(_invoke("pretrain", "--config", config, "--out", out), expected)
    assert not out.exists() and not work_dir_for(out).exists()


def test_pretrain_config_with_an_absurd_vocabulary_is_a_config_error(synthetic_corpus):
    settings = tiny_config(synthetic_corpus).model_dump()
    settings["tokenizer"]["vocab_size"] = 10**12
    with pytest.raises(ConfigError, match="the model is refused: its largest weight matrix") as caught:
        pretrain_config_from_dict(settings, source="test")
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------- finetune --from
@pytest.fixture(scope="module")
def ours_mlm_dir(tmp_path_factory):
    torch.manual_seed(0)
    return save(AuditTransformerForMaskedLM(ours_config()).eval(), build_tokenizer(),
                tmp_path_factory.mktemp("from") / "ours_mlm")


def _weights(directory):
    return load((directory / "model.safetensors").read_bytes())


def _truncated(directory, tmp_path):
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _pickled(directory, tmp_path):
    torch.save(_weights(directory), directory / "model.safetensors")


def _linked_outside(directory, tmp_path):
    shutil.move(directory / "model.safetensors", tmp_path / "elsewhere.safetensors")
    os.symlink(tmp_path / "elsewhere.safetensors", directory / "model.safetensors")


def _wrong_shape(directory, tmp_path):
    tensors = _weights(directory)
    name = next(name for name, tensor in tensors.items() if tensor.ndim == 2)
    tensors[name] = torch.zeros(3, 3)
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def _absurd_config(directory, tmp_path):
    config = json.loads((directory / "config.json").read_text())
    config.update(hidden_size=2**31, num_attention_heads=1)
    (directory / "config.json").write_text(json.dumps(config))


def _corrupt_tokenizer(directory, tmp_path):
    (directory / "tokenizer.json").write_text("{garbage")


FROM_CASES = {
    "truncated weights": (_truncated, "not an intact safetensors file"),
    "pickle bytes named model.safetensors": (_pickled, "not an intact safetensors file"),
    "weights linked outside the folder": (_linked_outside, "outside the model folder"),
    "a tensor of the wrong shape": (_wrong_shape, "in the weights but config.json implies"),
    "an absurd hidden size": (_absurd_config, "describes a model that is refused"),
}


@pytest.mark.parametrize("case", sorted(FROM_CASES))
def test_finetune_from_a_bad_folder_exits_2_with_one_line(ours_mlm_dir, tmp_path, monkeypatch, case):
    damage, expected = FROM_CASES[case]
    source = tmp_path / "source"
    shutil.copytree(ours_mlm_dir, source)
    damage(source, tmp_path)
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load was called"))
    out = tmp_path / "out"
    _assert_one_line_exit_2(_invoke("finetune", "--config", "scenario", "--from", source, "--out", out), expected)
    assert not out.exists() and not work_dir_for(out).exists()


def test_reference_models_refuse_a_bad_pretrained_folder(ours_mlm_dir, tmp_path):
    """finetune_classifier (the membership probe's shadow models) runs the same checks, tokenizer included."""
    source = tmp_path / "source"
    shutil.copytree(ours_mlm_dir, source)
    _corrupt_tokenizer(source, tmp_path)
    examples = [LabelledExample(id=str(i), text="a cat sat", label=i % 2, split="train") for i in range(4)]
    with pytest.raises(SubjectLoadError, match="cannot load the tokenizer") as caught:
        finetune_classifier(source, examples, examples, finetune_config_from_dict({}), seed=0)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------- file modes
def _ordinary_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_trained_model_folders_hold_ordinary_files(synthetic_corpus, tmp_path):
    pretrained = pretrain(tiny_config(synthetic_corpus, max_steps=2), tmp_path / "pretrained")
    config = finetune_config_from_dict({"preset": "scenario", "epochs": 1, "precision": "fp32",
                                        "data": {"scenario": {"n_examples": 120, "seed": 0}}})
    classifier = run_finetune(config, pretrained, tmp_path / "classifier")
    for folder in (pretrained, classifier):
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir() if path.is_file()}
        assert "model.safetensors" in modes
        assert modes == dict.fromkeys(modes, _ordinary_mode()), folder
