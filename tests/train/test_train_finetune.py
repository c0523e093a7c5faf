import dataclasses
import json
import random

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from audit.data.task import LabelledExample, TaskData
from audit.train.config import FinetuneConfig, finetune_config_from_dict
from audit.train.errors import CheckpointError, FinetuneDataError, TrainInputError
from audit.train.finetune import build_task, finetune_classifier, run_finetune, stratified_split
from audit.train.pretrain import work_dir_for

FILLER = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "log", "tree", "pond", "small", "big", "river", "hill"]


def keyword_task(n: int, *, seed: int = 0, split: str = "train") -> list[LabelledExample]:
    """Label 1 iff the text contains "excellent" (else "terrible"), at a random place among filler words."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
        words.insert(rng.randint(0, len(words)), "excellent" if label else "terrible")
        examples.append(LabelledExample(id=f"{split}{i}", text=" ".join(words), label=label, split=split))
    return examples


FAST = FinetuneConfig(epochs=6, batch_size=16, learning_rate=2e-3, max_length=24, patience=3,
                      hidden_dropout_prob=0.0, classifier_dropout=0.0)


def _accuracy(outcome, examples):
    tokenizer, model = outcome.tokenizer, outcome.model
    batch = tokenizer([e.text for e in examples], padding=True, truncation=True, max_length=24, return_tensors="pt")
    with torch.no_grad():
        predictions = model(**batch).logits.argmax(-1)
    return (predictions == torch.tensor([e.label for e in examples])).float().mean().item()


def test_finetune_learns_a_keyword_task(tiny_pretrained_dir):
    outcome = finetune_classifier(tiny_pretrained_dir, keyword_task(160), keyword_task(40, seed=1, split="validation"),
                                  FAST, seed=0)
    assert _accuracy(outcome, keyword_task(60, seed=2, split="test")) >= 0.9
    assert outcome.best_validation_macro_f1 >= 0.9
    assert outcome.history and outcome.history[-1]["epoch"] <= FAST.epochs
    assert not outcome.model.training


def test_keep_last_trains_every_epoch_and_keeps_the_final_weights(tiny_pretrained_dir):
    # Validation labels are inverted, so validation macro-F1 only falls as the model learns: "best" stops early
    # and keeps an early evaluation, "last" runs all epochs and keeps the final weights.
    train = keyword_task(64)
    inverted = [dataclasses.replace(e, label=1 - e.label) for e in keyword_task(32, seed=1, split="validation")]
    config = FAST.model_copy(update={"epochs": 4, "patience": 1})
    best = finetune_classifier(tiny_pretrained_dir, train, inverted, config, seed=0)
    last = finetune_classifier(tiny_pretrained_dir, train, inverted, config.model_copy(update={"keep": "last"}), seed=0)
    assert len(last.history) == 4 and last.best_epoch == 4.0
    assert last.best_validation_macro_f1 == last.history[-1]["validation_macro_f1"]
    assert best.best_epoch < 4.0 and len(best.history) < 4
    assert _accuracy(last, keyword_task(60, seed=2, split="test")) >= _accuracy(best, keyword_task(60, seed=2,
                                                                                                 split="test"))


def test_finetune_is_seeded_and_leaves_global_rng_alone(tiny_pretrained_dir):
    config = FAST.model_copy(update={"epochs": 1, "hidden_dropout_prob": 0.1})
    train, validation = keyword_task(32), keyword_task(16, seed=1, split="validation")
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    first = finetune_classifier(tiny_pretrained_dir, train, validation, config, seed=3).model.state_dict()
    assert torch.equal(torch.rand(2), expected)
    second = finetune_classifier(tiny_pretrained_dir, train, validation, config, seed=3).model.state_dict()
    other = finetune_classifier(tiny_pretrained_dir, train, validation, config, seed=4).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_learning_rate_scales_by_depth_and_for_query_key():
    # BERT-style names: embeddings at the bottom, encoder.layer.N in between, pooler and classifier at the top.
    from transformers import BertConfig, BertForSequenceClassification

    from audit.train.finetune import _layer_index, _optimizer

    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3,
                                                    num_attention_heads=2, intermediate_size=32))
    optimizer = _optimizer(bert, FinetuneConfig(layer_lr_decay=0.5))
    scale_of = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    assert len(scale_of) == len(list(bert.parameters()))  # every parameter in exactly one group
    named = dict(bert.named_parameters())
    assert scale_of[id(named["classifier.weight"])] == scale_of[id(named["bert.pooler.dense.weight"])] == 1.0
    assert scale_of[id(named["bert.encoder.layer.2.attention.self.query.weight"])] == 0.5
    assert scale_of[id(named["bert.encoder.layer.0.output.dense.bias"])] == 0.125
    assert scale_of[id(named["bert.embeddings.word_embeddings.weight"])] == 0.0625
    assert {g["lr_scale"] for g in _optimizer(bert, FinetuneConfig()).param_groups} == {1.0}
    # our names, also without a module prefix; parameters outside the stack are not a layer
    assert _layer_index("transformer.layers.3.attention.query.weight") == _layer_index("layers.3.key.bias") == 3
    assert _layer_index("transformer.final_norm.weight") == _layer_index("classifier.weight") == -1

    optimizer = _optimizer(bert, FinetuneConfig(query_key_lr_scale=0.1))
    scale_of = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    for name, parameter in named.items():
        expected = 0.1 if ".query." in name or ".key." in name else 1.0
        assert scale_of[id(parameter)] == pytest.approx(expected), name


def test_query_key_scale_reaches_the_query_and_key_rows_of_our_fused_projection():
    # Our attention keeps [W_q; W_k; W_v] in one tensor; the scale must still apply to the query and key rows alone.
    from audit.model import AuditTransformerConfig, AuditTransformerForSequenceClassification
    from audit.train.finetune import _optimizer

    config = AuditTransformerConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=37, num_labels=2, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0)
    ids, labels = torch.randint(5, 99, (4, 9), generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 0, 1])
    change = {}
    for scale in (1.0, 0.1):
        torch.manual_seed(0)
        model = AuditTransformerForSequenceClassification(config)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimizer = _optimizer(model, FinetuneConfig(query_key_lr_scale=scale))
        for group in optimizer.param_groups:
            group["lr"] = 1e-2 * group["lr_scale"]
        model(ids, labels=labels).loss.backward()  # one step: the same gradients at both scales
        optimizer.step()
        change[scale] = {name: p.detach() - before[name] for name, p in model.named_parameters()}
    name = "transformer.layers.1.attention.qkv.weight"
    full, scaled = change[1.0][name], change[0.1][name]
    torch.testing.assert_close(scaled[:64], 0.1 * full[:64], rtol=1e-4, atol=1e-7)  # W_q, W_k at a tenth
    torch.testing.assert_close(scaled[64:], full[64:], rtol=1e-4, atol=1e-7)  # W_v at the full rate
    assert full[:64].abs().max() > 1e-3
    bias = "transformer.layers.0.attention.qkv.bias"
    torch.testing.assert_close(change[0.1][bias][:64], 0.1 * change[1.0][bias][:64], rtol=1e-4, atol=1e-7)


def test_layer_lr_decay_moves_lower_layers_less(tiny_pretrained_dir):
    # Adam's steps scale with the learning rate, so under decay d encoder layer N (of L) moves about d**(L - N) as
    # far as with one rate: the top layer about d as far, the bottom one d**L.
    from safetensors.torch import load_file

    pretrained = load_file(tiny_pretrained_dir / "model.safetensors")
    train, validation = keyword_task(64), keyword_task(16, seed=1, split="validation")
    config = FAST.model_copy(update={"epochs": 2, "keep": "last"})
    moved = {}
    for decay in (1.0, 0.5):
        state = finetune_classifier(tiny_pretrained_dir, train, validation,
                                    config.model_copy(update={"layer_lr_decay": decay}), seed=0).model.state_dict()
        moved[decay] = {
            name: (state[name] - pretrained[name]).abs().mean().item()
            for name in pretrained
            # the key bias gets no gradient (softmax is shift-invariant), so only weight decay moves it
            if name in state and name.startswith("transformer.layers.") and not name.endswith("key.bias")
        }
    n_layers = 1 + max(int(name.split(".")[2]) for name in moved[1.0])
    for name, distance in moved[0.5].items():
        expected = 0.5 ** (n_layers - int(name.split(".")[2])) * moved[1.0][name]
        # two-sided: measured 0.84-1.00 of the expected distance; a rate too low (e.g. the bottom's rate for every
        # layer) or inverted by depth falls outside
        assert 0.6 * expected < distance < 1.6 * expected, name


def _csv(path, rows, header="text,y,grp"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _keyword_csv(path, n=120):
    rows = [f"{e.text},{e.label + 1},{'g' + str(i % 3)}" for i, e in enumerate(keyword_task(n))]
    return _csv(path, rows)


def _data_config(path, **data):
    return finetune_config_from_dict({
        "epochs": 3, "batch_size": 16, "learning_rate": 2e-3, "max_length": 24,
        "data": {"dataset": str(path), "text_column": "text", "label_column": "y", "group_columns": ["grp"],
                 "label_map": {"1": "neg", "2": "pos"}, "label_names": ["neg", "pos"], "positive_label": "pos",
                 **data},
    })


def test_run_finetune_writes_classifier_dir(tiny_pretrained_dir, tmp_path):
    csv = _keyword_csv(tmp_path / "data.csv")
    out = run_finetune(_data_config(csv), tiny_pretrained_dir, tmp_path / "clf")
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "task.json", "examples.jsonl",
            "finetune.json"} <= names
    task = TaskData.load(out)
    assert task.label_names == ["neg", "pos"] and task.positive_label == 1 and task.group_columns == ["grp"]
    assert {len(task.split(s)) for s in ("train", "validation", "test")} == {84, 12, 24}
    assert len({e.id for e in task.examples}) == 120 and task.examples[0].groups["grp"] == "g0"
    recipe = json.loads((out / "finetune.json").read_text())
    assert recipe["pretrained_from"] == str(tiny_pretrained_dir.resolve())
    test_metrics = recipe["metrics"]["test"]
    assert set(test_metrics["per_class"]) == {"neg", "pos"} and test_metrics["n"] == 24
    predictions = recipe["test_predictions"]
    assert [p["id"] for p in predictions] == [e.id for e in task.split("test")]
    assert test_metrics["accuracy"] == pytest.approx(
        sum(p["label"] == p["prediction"] for p in predictions) / len(predictions))
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert not work_dir_for(out).exists()


def test_stratified_split_is_seeded_and_stratified():
    labels = [0] * 100 + [1] * 50
    splits = stratified_split(labels, 0.1, 0.2, seed=0)
    assert splits == stratified_split(labels, 0.1, 0.2, seed=0) != stratified_split(labels, 0.1, 0.2, seed=1)
    for label, n in ((0, 100), (1, 50)):
        mine = [s for s, y in zip(splits, labels) if y == label]
        assert mine.count("test") == round(0.2 * n) and mine.count("validation") == round(0.1 * n)


def test_given_splits_and_truncation(tiny_pretrained_dir, tmp_path):
    # short texts (one keyword) except the first, which is far longer than max_length
    rows = [f"{['terrible', 'excellent'][i % 2]}{' long' * 30 if i == 0 else ''},{i % 2 + 1},g,"
            f"{['train', 'dev', 'test'][i % 3]}" for i in range(30)]
    csv = _csv(tmp_path / "s.csv", rows, header="text,y,grp,part")
    out = run_finetune(_data_config(csv, split_column="part").model_copy(update={"epochs": 1}),
                       tiny_pretrained_dir, tmp_path / "clf")
    task = TaskData.load(out)
    assert [e.split for e in task.examples[:3]] == ["train", "validation", "test"]
    assert json.loads((out / "finetune.json").read_text())["n_truncated"] == 1


def test_bad_data_is_one_line_error_and_leaves_nothing(tiny_pretrained_dir, tmp_path):
    csv = _keyword_csv(tmp_path / "data.csv")
    out = tmp_path / "clf"
    cases = [
        (_data_config(csv, label_column="missing"), "missing"),
        (_data_config(csv, label_map={"1": "neg"}, label_names=None, positive_label=None), "single class"),
        (_data_config(csv, positive_label="maybe"), "positive_label"),
        (_data_config(tmp_path / "nope.csv"), "not found"),
    ]
    for config, needle in cases:
        with pytest.raises(FinetuneDataError) as error:
            run_finetune(config, tiny_pretrained_dir, out)
        assert needle in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_from_dir_must_be_ours_and_pickle_free(tiny_pretrained_dir, tmp_path):
    csv = _keyword_csv(tmp_path / "data.csv")
    config = _data_config(csv)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="not a rai-transformer"):
        run_finetune(config, foreign, tmp_path / "o1")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for path in tiny_pretrained_dir.iterdir():
        (pickled / path.name).write_bytes(path.read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(CheckpointError, match="pickle"):
        run_finetune(config, pickled, tmp_path / "o2")
    with pytest.raises(CheckpointError, match="does not exist"):
        run_finetune(config, tmp_path / "absent", tmp_path / "o3")
    with pytest.raises(TrainInputError):
        finetune_classifier(tmp_path / "absent", keyword_task(4), keyword_task(4), FAST, seed=0)
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3"))


def test_single_class_training_examples_rejected(tiny_pretrained_dir):
    one_class = [e for e in keyword_task(20) if e.label == 1]
    with pytest.raises(FinetuneDataError, match="single class"):
        finetune_classifier(tiny_pretrained_dir, one_class, keyword_task(4), FAST, seed=0)


def test_build_task_from_scenario():
    config = finetune_config_from_dict({"data": {"scenario": {"bias_strength": 0.5, "n_examples": 200, "seed": 1}}})
    task = build_task(config.data)
    assert len(task.examples) == 200 and task.planted is not None
    assert {e.split for e in task.examples} == {"train", "validation", "test"}
