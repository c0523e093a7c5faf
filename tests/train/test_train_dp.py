"""DP-SGD fine-tuning through opacus (audit.train.dp): exact per-example gradients for our transformer and BERT-style
encoders, the accountant's record in finetune.json, and one-line errors for settings that cannot give a guarantee."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_finetune import FAST, keyword_task
from tiny_models import bert_config, build_tokenizer, distilbert_config, ours_config

from audit.train.config import finetune_config_from_dict
from audit.train.dp import _BatchExpandedEmbeddings
from audit.train.errors import ConfigError
from audit.train.finetune import finetune_classifier, pad_batch

DP = {"epsilon": 8.0, "delta": 1e-3, "max_grad_norm": 1.0}


def _classifier(kind: str):
    from transformers import (
        AutoModelForSequenceClassification,
        BertForSequenceClassification,
        DistilBertForSequenceClassification,
    )

    torch.manual_seed(0)
    if kind == "bert":
        return BertForSequenceClassification(bert_config(num_labels=3, hidden_dropout_prob=0.0,
                                                         attention_probs_dropout_prob=0.0, classifier_dropout=0.0))
    if kind == "distilbert":
        return DistilBertForSequenceClassification(distilbert_config(num_labels=3, dropout=0.0,
                                                                     attention_dropout=0.0, seq_classif_dropout=0.0))
    config = ours_config(num_labels=3, causal=kind == "ours-causal", classifier_dropout=0.0, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    return AutoModelForSequenceClassification.from_config(config)


@pytest.mark.parametrize("kind", ["ours", "ours-causal", "bert", "distilbert"])
def test_per_example_gradients_equal_one_example_backward_passes(kind):
    from opacus import GradSampleModule

    model = _classifier(kind).train()
    tokenizer = build_tokenizer()
    texts = ["the doctor said she would arrive soon", "he cooked bread", "a woman walked to the park today"]
    sequences = [tokenizer(text)["input_ids"] for text in texts]
    labels = torch.tensor([0, 2, 1])
    expected = []
    for sequence, label in zip(sequences, labels):  # each example alone, unpadded
        model.zero_grad()
        model(torch.tensor([sequence]), attention_mask=torch.ones(1, len(sequence), dtype=torch.long),
              labels=label[None]).loss.backward()
        expected.append({name: p.grad.clone() for name, p in model.named_parameters()})

    embeddings = _BatchExpandedEmbeddings(model)
    wrapped = GradSampleModule(model, loss_reduction="sum")
    input_ids, attention_mask = pad_batch(sequences, tokenizer.pad_token_id)
    logits = wrapped(input_ids, attention_mask=attention_mask).logits
    torch.nn.functional.cross_entropy(logits, labels, reduction="sum").backward()
    for name, parameter in model.named_parameters():
        for row in range(len(texts)):
            torch.testing.assert_close(parameter.grad_sample[row], expected[row][name], atol=2e-5, rtol=1e-4,
                                       msg=lambda m, name=name, row=row: f"{kind} {name} example {row}: {m}")
    embeddings.remove()
    wrapped._close()


def test_without_expanded_position_ids_opacus_sums_the_batch():
    # The control of the test above: opacus alone gets the position embedding's per-example gradients wrong.
    from opacus import GradSampleModule

    model = _classifier("ours").train()
    wrapped = GradSampleModule(model, loss_reduction="sum")
    input_ids = torch.tensor([[2, 7, 9, 3], [2, 11, 3, 0]])
    logits = wrapped(input_ids, attention_mask=(input_ids != 0).long()).logits
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), reduction="sum").backward()
    assert model.transformer.embeddings.position_embeddings.weight.grad_sample.shape[0] == 1
    wrapped._close()


def test_dp_finetune_records_the_accountant_and_is_seeded(tiny_pretrained_dir):
    config = FAST.model_copy(update={"dp": finetune_config_from_dict({"dp": DP}).dp, "epochs": 2, "keep": "last"})
    train, validation = keyword_task(200), keyword_task(20, seed=1, split="validation")
    outcome = finetune_classifier(tiny_pretrained_dir, train, validation, config, seed=0)
    record = outcome.extra["dp"]
    assert record["delta"] == DP["delta"] and record["target_epsilon"] == DP["epsilon"]
    assert 0 < record["epsilon"] <= DP["epsilon"] + 1e-6
    assert record["noise_multiplier"] > 0.3 and record["sample_rate"] == pytest.approx(1 / 13)  # opacus: 1 / ceil(n / batch_size)
    assert record["steps"] == outcome.history[-1]["step"] == 2 * 13
    again = finetune_classifier(tiny_pretrained_dir, train, validation, config, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(outcome.model.state_dict().values(),
                                                  again.model.state_dict().values()))
    assert not any(hasattr(p, "grad_sample") for p in outcome.model.parameters())


@pytest.mark.parametrize("dp, expected", [
    ({"epsilon": 0.0}, "dp.epsilon"),
    ({"epsilon": -1.0}, "dp.epsilon"),
    ({"epsilon": 1.0, "delta": 1.5}, "dp.delta"),
])
def test_bad_dp_settings_are_config_errors(dp, expected):
    with pytest.raises(ConfigError, match=expected):
        finetune_config_from_dict({"dp": dp})


@pytest.mark.parametrize("n_train, message", [(0, "needs training examples"), (100, "is not below 1/n = 0.01")])
def test_dp_settings_are_checked_against_the_training_set_size(n_train, message):
    from audit.train.config import DPSection
    from audit.train.dp import DPSettingsError, check_dp_settings

    with pytest.raises(DPSettingsError, match=message):
        check_dp_settings(DPSection(epsilon=1.0, delta=0.01), n_train=n_train)
    check_dp_settings(DPSection(epsilon=1.0, delta=1e-3), n_train=100)


def _finetune_config(tmp_path, dp: dict) -> str:
    path = tmp_path / "dp.toml"
    entries = ", ".join(f"{key} = {value}" for key, value in dp.items())
    path.write_text(f"epochs = 1\nbatch_size = 16\nmax_length = 24\ndp = {{ {entries} }}\n[data]\n"
                    "scenario = { n_examples = 120, seed = 0 }\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("dp, message", [
    ({"epsilon": 0}, "dp.epsilon"),
    ({"epsilon": 1, "delta": 0.02}, "is not below 1/n"),
])
def test_cli_rejects_dp_settings_in_one_line_and_writes_nothing(tmp_path, tiny_pretrained_dir, dp, message):
    from typer.testing import CliRunner

    from audit.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["finetune", "--config", _finetune_config(tmp_path, dp),
                                      "--from", str(tiny_pretrained_dir), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))


def test_cli_rejects_a_model_opacus_cannot_train(tmp_path, tiny_pretrained_dir, monkeypatch):
    from transformers import AutoModelForSequenceClassification
    from typer.testing import CliRunner

    from audit.cli import app

    loader = AutoModelForSequenceClassification.from_pretrained

    def with_batch_norm(*args, **kwargs):
        model = loader(*args, **kwargs)
        model.classifier = torch.nn.Sequential(torch.nn.BatchNorm1d(model.config.hidden_size), model.classifier)
        return model

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", with_batch_norm)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["finetune", "--config", _finetune_config(tmp_path, {"epsilon": 1}),
                                      "--from", str(tiny_pretrained_dir), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "opacus cannot train" in result.output and "BatchNorm" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_finetune_json_records_dp_and_canaries(tmp_path, tiny_pretrained_dir):
    from audit.data.task import TaskData
    from audit.train.finetune import run_finetune

    config = finetune_config_from_dict({
        "epochs": 1, "batch_size": 16, "max_length": 24, "dp": {"epsilon": 2.0, "delta": 1e-4},
        "data": {"scenario": {"n_examples": 120, "seed": 0}, "audit_canaries": {"count": 20, "seed": 1}},
    })
    out = run_finetune(config, tiny_pretrained_dir, tmp_path / "model")
    record = json.loads((out / "finetune.json").read_text())
    assert record["dp"]["target_epsilon"] == 2.0 and record["dp"]["epsilon"] <= 2.0
    canaries = [e for e in TaskData.load(out).examples if e.id.startswith("canary-")]
    included = [e for e in canaries if e.split == "train"]
    assert len(canaries) == 20 and record["audit_canaries"]["included"] == len(included)
    assert 0 < len(included) < 20 and {e.split for e in canaries} == {"train", "canary_out"}
