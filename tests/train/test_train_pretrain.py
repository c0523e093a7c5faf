import json
import math

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import tiny_config, write_corpus
from transformers import AutoModelForMaskedLM, AutoTokenizer

from audit.train.canaries import count_occurrences, load_manifest
from audit.train.errors import CheckpointError, CorpusError, TrainInputError
from audit.train.pretrain import learning_rate, pretrain, work_dir_for


def _weights(directory):
    return load_file(str(directory / "model.safetensors"))


def test_output_is_a_loadable_hf_directory(tiny_pretrained_dir):
    names = {p.name for p in tiny_pretrained_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl", "pretrain.json",
            "canaries.json"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    assert "checkpoint" not in names and not work_dir_for(tiny_pretrained_dir).exists()
    model = AutoModelForMaskedLM.from_pretrained(tiny_pretrained_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_pretrained_dir)
    assert model.config.model_type == "rai-transformer"
    assert model.config.vocab_size == len(tokenizer) <= 99
    assert model.config.max_position_embeddings == 24 and tokenizer.model_max_length == 24
    logits = model(**tokenizer(["the cat sat."], return_tensors="pt")).logits
    assert logits.shape[-1] == len(tokenizer)


def test_metrics_log_and_recipe(tiny_pretrained_dir):
    lines = [json.loads(line) for line in (tiny_pretrained_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if line["kind"] == "eval"]
    trains = [line for line in lines if line["kind"] == "train"]
    assert [e["step"] for e in evals] == [6, 12, 18, 24, 30]
    assert all(t["tokens_per_second"] > 0 for t in trains)
    recipe = json.loads((tiny_pretrained_dir / "pretrain.json").read_text())
    final = recipe["final"]
    assert final["step"] == 30 and final["heldout_loss"] == evals[-1]["heldout_loss"]
    assert final["ln_vocab"] == pytest.approx(math.log(final["vocab_size"]))
    # the synthetic corpus is easy: held-out loss falls well below chance within 30 steps
    assert final["heldout_loss"] < final["ln_vocab"] - 0.3
    assert evals[-1]["heldout_loss"] < evals[0]["heldout_loss"]


def test_canaries_planted_match_manifest(tiny_pretrained_dir):
    manifest = load_manifest(tiny_pretrained_dir)
    assert sorted(manifest.by_repeats()) == [0, 1, 3]
    assert manifest.tokenizer_check["single_token_symbols"] is True
    # re-derive the training corpus exactly as pretraining did and count each secret
    from audit.train.canaries import plant_canaries
    from audit.train.config import PretrainConfig
    from audit.train.corpus import load_corpus, split_heldout

    config = PretrainConfig.model_validate(json.loads((tiny_pretrained_dir / "pretrain.json").read_text())["config"])
    documents = load_corpus(config.corpus).documents
    training, heldout = split_heldout(documents, config.corpus.heldout_fraction, seed=config.train.seed)
    counts = count_occurrences(plant_canaries(training, manifest), manifest)
    assert counts == {s.text: s.repeats for s in manifest.secrets}
    assert all(v == 0 for v in count_occurrences(heldout, manifest).values())


def test_same_seed_bit_identical_different_seed_differs(synthetic_corpus, tmp_path):
    config = tiny_config(synthetic_corpus, max_steps=5)
    first = _weights(pretrain(config, tmp_path / "a"))
    second = _weights(pretrain(config, tmp_path / "b"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = tiny_config(synthetic_corpus, max_steps=5, seed=1)
    third = _weights(pretrain(other, tmp_path / "c"))
    assert any(not torch.equal(first[k], third[k]) for k in first)


def test_resume_gives_uninterrupted_weights(synthetic_corpus, tmp_path):
    # dropout on, so the saved global RNG state matters too
    config = tiny_config(synthetic_corpus, max_steps=8, eval_every=3).model_copy(deep=True)
    config = config.model_validate({**config.model_dump(), "model": {**config.model.model_dump(),
                                                                      "hidden_dropout_prob": 0.1}})
    straight = _weights(pretrain(config, tmp_path / "straight"))

    out = tmp_path / "resumed"
    partial = pretrain(config, out, stop_after_steps=5)
    assert partial == work_dir_for(out) and not out.exists()
    assert (partial / "checkpoint" / "optimizer.safetensors").is_file()
    resumed = _weights(pretrain(config, out, resume=True))
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6, rtol=0) for k in straight)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "eval"]
    assert steps == [3, 6, 8]


def test_resume_needs_a_checkpoint_and_the_same_config(synthetic_corpus, tmp_path):
    config = tiny_config(synthetic_corpus, max_steps=6)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        pretrain(config, tmp_path / "none", resume=True)
    pretrain(config, tmp_path / "x", stop_after_steps=2)
    changed = tiny_config(synthetic_corpus, max_steps=6, learning_rate=1e-2)
    with pytest.raises(CheckpointError, match="config differs"):
        pretrain(changed, tmp_path / "x", resume=True)


def test_time_budget_stops_training(synthetic_corpus, tmp_path):
    config = tiny_config(synthetic_corpus, max_steps=None, max_minutes=0.02)  # 1.2 s
    out = pretrain(config, tmp_path / "timed")
    final = json.loads((out / "pretrain.json").read_text())["final"]
    assert final["step"] >= 1 and final["elapsed_seconds"] < 20


def test_global_rng_untouched(synthetic_corpus, tmp_path):
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    pretrain(tiny_config(synthetic_corpus, max_steps=2), tmp_path / "rng")
    assert torch.equal(torch.rand(3), expected)


def test_learning_rate_schedule():
    from audit.train.config import PretrainTrainSection

    section = PretrainTrainSection(learning_rate=1.0, warmup_fraction=0.1, schedule="linear")
    assert learning_rate(0.05, section) == pytest.approx(0.5)
    assert learning_rate(0.1, section) == pytest.approx(1.0)
    assert learning_rate(0.55, section) == pytest.approx(0.5)
    assert learning_rate(1.0, section) == pytest.approx(0.0)
    cosine = section.model_copy(update={"schedule": "cosine"})
    assert learning_rate(0.55, cosine) == pytest.approx(0.5)


@pytest.mark.parametrize("case", ["missing", "empty", "not_utf8"])
def test_bad_corpus_is_one_line_error_and_leaves_nothing(tmp_path, case):
    corpus = tmp_path / "corpus.txt"
    if case == "empty":
        corpus.write_text("\n  \n", encoding="utf-8")
    elif case == "not_utf8":
        corpus.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 3)
    out = tmp_path / "out"
    with pytest.raises(CorpusError) as error:
        pretrain(tiny_config(corpus), out)
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if case == "missing" else ["corpus.txt"])


def test_existing_output_directory_is_refused(synthetic_corpus, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(TrainInputError, match="already exists"):
        pretrain(tiny_config(synthetic_corpus), tmp_path / "taken")


def test_single_document_corpus_is_refused(tmp_path):
    corpus = write_corpus(tmp_path / "one.txt", documents=1)
    with pytest.raises(CorpusError, match="at least 2 documents"):
        pretrain(tiny_config(corpus), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not work_dir_for(tmp_path / "out").exists()
