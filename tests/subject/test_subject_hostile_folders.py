"""Hostile and damaged model folders: only intact safetensors files inside the folder are read, and every damage is
one SubjectLoadError line (exit 2 through the CLI, nothing written) — never a traceback, never a pickle load."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load, save_file
from typer.testing import CliRunner

from audit.cli import app
from audit.model_size import MAX_TENSOR_ELEMENTS
from audit.subject import ModelUnderAudit, SubjectLoadError

INDEX = "model.safetensors.index.json"


def _copy(model_dirs, name, tmp_path):
    target = tmp_path / name
    shutil.copytree(model_dirs[name], target)
    return target


def _as_index(directory, weight_map):
    """Replace model.safetensors (if still there) by an index naming ``weight_map``'s shards."""
    (directory / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (directory / "model.safetensors").unlink(missing_ok=True)


def _weights(directory):
    """The tensors of model.safetensors, read into memory (an mmap would break when the file is rewritten)."""
    return load((directory / "model.safetensors").read_bytes())


def _tensor_names(directory):
    return list(_weights(directory))


# ------------------------------------------------------------------------------------------- hostile folders
def _pickled_shard(directory, tmp_path):
    """The README's promise: a torch.save pickle must never be loaded, whatever name the index gives it."""
    names = _tensor_names(directory)
    torch.save(_weights(directory), directory / "weights.data")
    _as_index(directory, dict.fromkeys(names, "weights.data"))


def _shard_outside_by_path(directory, tmp_path):
    _as_index(directory, dict.fromkeys(_tensor_names(directory), "../../../../etc/hostname"))


def _safetensors_shard_outside(directory, tmp_path):
    """Even an intact safetensors file is refused when it lies outside the folder."""
    outside = tmp_path / "elsewhere.safetensors"
    shutil.copy(directory / "model.safetensors", outside)
    _as_index(directory, dict.fromkeys(_tensor_names(directory), "../elsewhere.safetensors"))


def _weights_link_outside(directory, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(directory / "model.safetensors", outside)
    os.symlink(outside, directory / "model.safetensors")


def _tokenizer_link_outside(directory, tmp_path):
    (tmp_path / "secret.txt").write_text("not a vocabulary")
    os.symlink(tmp_path / "secret.txt", directory / "vocab.txt")


def _shard_link_outside(directory, tmp_path):
    names = _tensor_names(directory)
    outside = tmp_path / "elsewhere.safetensors"
    shutil.copy(directory / "model.safetensors", outside)
    os.symlink(outside, directory / "model-00001-of-00001.safetensors")
    _as_index(directory, dict.fromkeys(names, "model-00001-of-00001.safetensors"))


HOSTILE = {
    "index naming a torch.save pickle": (_pickled_shard, "names the shard 'weights.data'; only .safetensors"),
    "index naming a path out of the folder": (_shard_outside_by_path, "names the shard '../../../../etc/hostname'"),
    "index naming a safetensors file outside": (_safetensors_shard_outside, "only .safetensors files directly"),
    "weights linked outside": (_weights_link_outside, "outside the model folder"),
    "tokenizer file linked outside": (_tokenizer_link_outside, "vocab.txt is a symbolic link to "),
    "shard linked outside": (_shard_link_outside, "outside the model folder"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_folders_are_refused_before_anything_is_loaded(model_dirs, tmp_path, monkeypatch, case):
    damage, expected = HOSTILE[case]
    directory = _copy(model_dirs, "bert_mlm", tmp_path)
    damage(directory, tmp_path)

    def no_pickles(*args, **kwargs):
        raise AssertionError("torch.load was called on a model folder")

    monkeypatch.setattr(torch, "load", no_pickles)
    with pytest.raises(SubjectLoadError) as caught:
        ModelUnderAudit.from_pretrained(directory, device="cpu")
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_links_and_sharding_inside_the_folder_still_load(model_dirs, tmp_path):
    """The refusals are not over-broad: a shard linked within the folder, named by an index, loads."""
    directory = _copy(model_dirs, "bert_mlm", tmp_path)
    names = _tensor_names(directory)
    (directory / "store").mkdir()
    shutil.move(directory / "model.safetensors", directory / "store" / "real.safetensors")
    os.symlink(directory / "store" / "real.safetensors", directory / "model-00001-of-00001.safetensors")
    _as_index(directory, dict.fromkeys(names, "model-00001-of-00001.safetensors"))
    loaded = ModelUnderAudit.from_pretrained(directory, device="cpu").model.state_dict()
    reference = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cpu").model.state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in reference.items())


# ------------------------------------------------------------------------------------------- damaged folders
def _write_weights(data: bytes):
    return lambda directory: (directory / "model.safetensors").write_bytes(data)


def _truncated(directory):
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _pickle_named_safetensors(directory):
    torch.save(_weights(directory), directory / "model.safetensors")


def _wrong_tensor_shape(directory):
    tensors = _weights(directory)
    tensors["bert.embeddings.word_embeddings.weight"] = torch.zeros(99, 16)
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def _edit_config(**changes):
    def damage(directory):
        config = json.loads((directory / "config.json").read_text())
        config.update(changes)
        (directory / "config.json").write_text(json.dumps(config))
    return damage


def _index_text(text):
    def damage(directory):
        (directory / "model.safetensors").rename(directory / "model-00001-of-00001.safetensors")
        (directory / INDEX).write_text(text)
    return damage


def _index_misplacing_a_tensor(directory):
    names = _tensor_names(directory)
    (directory / "model.safetensors").rename(directory / "model-00001-of-00002.safetensors")
    save_file({"unrelated": torch.zeros(1)}, directory / "model-00002-of-00002.safetensors")
    weight_map = dict.fromkeys(names, "model-00001-of-00002.safetensors")
    weight_map[names[0]] = "model-00002-of-00002.safetensors"
    (directory / INDEX).write_text(json.dumps({"weight_map": weight_map}))


def _weights_link_loop(directory):
    (directory / "model.safetensors").unlink()
    os.symlink(directory / "model.safetensors", directory / "model.safetensors")


def _write_file(name, text):
    return lambda directory: (directory / name).write_text(text)


DAMAGED = {
    "empty weights": ("bert_mlm", _write_weights(b""), "not an intact safetensors file"),
    "truncated weights": ("bert_mlm", _truncated, "not an intact safetensors file"),
    "garbage weights": ("bert_mlm", _write_weights(os.urandom(5000)), "not an intact safetensors file"),
    "a header that is not JSON": ("bert_mlm", _write_weights(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage"),
                                  "not an intact safetensors file"),
    "pickle bytes named model.safetensors": ("bert_mlm", _pickle_named_safetensors, "not an intact safetensors"),
    "a tensor of the wrong shape": ("bert_mlm", _wrong_tensor_shape,
                                    "word_embeddings.weight has shape [99, 16] in the weights"),
    "config and weights of different sizes": ("bert_mlm", _edit_config(hidden_size=64),
                                              "in the weights but config.json implies"),
    "an absurd hidden size": ("bert_mlm", _edit_config(hidden_size=2**31, num_attention_heads=1),
                              f"above the limit of {MAX_TENSOR_ELEMENTS:.3g}"),
    "an absurd layer count": ("bert_mlm", _edit_config(num_hidden_layers=10**9), "parameters, above the limit"),
    "a negative intermediate size": ("bert_mlm", _edit_config(intermediate_size=-1),
                                     "intermediate_size is -1; expected a positive integer"),
    "a hidden size that is not a number": ("bert_mlm", _edit_config(hidden_size="wide"),
                                           "cannot read the config"),
    "malformed index JSON": ("bert_mlm", _index_text("{not json"), "cannot be read as JSON"),
    "index that is a JSON list": ("bert_mlm", _index_text("[1, 2]"), "holds a JSON list"),
    "index without weight_map": ("bert_mlm", _index_text("{}"), "has no weight_map"),
    "index whose weight_map is a list": ("bert_mlm", _index_text('{"weight_map": ["a"]}'), "has no weight_map"),
    "index naming a missing shard": ("bert_mlm", _index_text('{"weight_map": {"a": "gone.safetensors"}}'),
                                     "which is not in the folder"),
    "index misplacing a tensor": ("bert_mlm", _index_misplacing_a_tensor, "which does not hold it"),
    "weights that are a symlink loop": ("bert_mlm", _weights_link_loop, "cannot be followed"),
    "corrupt finetune.json": ("bert_cls_ft", _write_file("finetune.json", '{"pretrained_from": '),
                              "finetune.json (the fine-tuning record) cannot be read as JSON"),
    "finetune.json that is not an object": ("bert_cls_ft", _write_file("finetune.json", "[]"), "JSON list"),
    "finetune.json naming a number": ("bert_cls_ft", _write_file("finetune.json", '{"pretrained_from": 3}'),
                                      "names pretrained_from 3; expected a folder path"),
    "corrupt sentence-transformers config": ("bert_base", _write_file("sentence_bert_config.json", "{"),
                                             "cannot be read as JSON"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_folders_are_one_line_errors(model_dirs, tmp_path, case):
    name, damage, expected = DAMAGED[case]
    directory = _copy(model_dirs, name, tmp_path)
    damage(directory)
    with pytest.raises(SubjectLoadError) as caught:
        ModelUnderAudit.from_pretrained(directory, device="cpu")
    assert expected in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_folder_that_is_a_symlink_loop_is_a_one_line_error(tmp_path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(SubjectLoadError, match="cannot be resolved") as caught:
        ModelUnderAudit.from_pretrained(tmp_path / "loop", device="cpu")
    assert "\n" not in str(caught.value)


def test_a_damaged_masked_lm_beside_a_classifier_is_refused(model_dirs, tmp_path):
    """The side model named by finetune.json (or mlm_path) goes through the same checks."""
    mlm = _copy(model_dirs, "bert_mlm", tmp_path)
    _pickled_shard(mlm, tmp_path)
    with pytest.raises(SubjectLoadError, match="names the shard 'weights.data'"):
        ModelUnderAudit.from_pretrained(model_dirs["bert_cls_ft"], mlm_path=mlm, device="cpu")


# ------------------------------------------------------------------------------------------- through the CLI
def _run(tmp_path, model_dir):
    config = tmp_path / "audit.toml"
    config.write_text(f'seed = 0\n[subject]\nmodel = "{model_dir}"\n[probes]\nrun = ["association"]\n')
    return CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "out")])


@pytest.mark.parametrize("case, expected", [
    ("index naming a torch.save pickle", "names the shard 'weights.data'"),
    ("index naming a path out of the folder", "names the shard '../../../../etc/hostname'"),
    ("truncated weights", "not an intact safetensors file"),
    ("pickle bytes named model.safetensors", "not an intact safetensors file"),
    ("an absurd hidden size", "describes a model that is refused"),
    ("corrupt finetune.json", "cannot be read as JSON"),
])
def test_run_refuses_bad_folders_with_exit_2_one_line_and_no_output(model_dirs, tmp_path, monkeypatch, case,
                                                                     expected):
    if case in HOSTILE:
        directory = _copy(model_dirs, "bert_mlm", tmp_path)
        HOSTILE[case][0](directory, tmp_path)
    else:
        name, damage, _ = DAMAGED[case]
        directory = _copy(model_dirs, name, tmp_path)
        damage(directory)
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load was called"))
    outcome = _run(tmp_path, directory)
    assert outcome.exit_code == 2, outcome.output
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], outcome.stderr
    assert "Traceback" not in outcome.output
    assert not (tmp_path / "out").exists()


def test_run_refuses_a_corrupt_task_json(model_dirs, tmp_path):
    directory = _copy(model_dirs, "distil_cls", tmp_path)
    (directory / "task.json").write_text('{"name": ')
    (directory / "examples.jsonl").write_text("")
    outcome = _run(tmp_path, directory)
    assert outcome.exit_code == 2, outcome.output
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and "task.json/examples.jsonl are damaged" in lines[0], outcome.stderr
    assert not (tmp_path / "out").exists()
