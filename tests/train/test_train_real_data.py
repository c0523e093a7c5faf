"""Acceptance on real data (slow): the `small` preset's pretraining loss, Davidson fine-tuning.

The preset's wall time is not asserted here: the preset runs a fixed number of steps (same seed and threads, same
model), so its wall time is the machine's speed, which varies from day to day on a shared CI machine (figures in
benchmarks/RESULTS.md). Speed is measured as a ratio against a same-size BertForMaskedLM run in the same process
(benchmarks/pretrain_throughput.py); the wall time is printed here and recorded in pretrain.json.
"""

import json
import math

import pytest

from audit.data.task import TaskData
from audit.train.canaries import load_manifest

pytestmark = pytest.mark.slow

SMALL_PRESET_STEPS = 800  # the fixed work whose wall time benchmarks/RESULTS.md reports
TARGET_NATS_BELOW_UNIFORM = 2.5  # same-size BertForMaskedLM reached 2.2 in 4 minutes
TARGET_DAVIDSON_MACRO_F1 = 0.88  # TF-IDF + LR: 0.90; same-size BERT pretrained 4 min + 2 epochs: 0.906


def test_small_preset_reaches_loss_target_in_its_fixed_steps(small_pretrained_dir):
    recipe = json.loads((small_pretrained_dir / "pretrain.json").read_text())
    final = recipe["final"]
    assert final["vocab_size"] == 8192 and final["ln_vocab"] == pytest.approx(math.log(8192))
    print(f"\nsmall preset: held-out MLM loss {final['heldout_loss']:.3f} = ln(vocab) - "
          f"{final['nats_below_uniform']:.3f} nats after {final['step']} steps, {final['tokens_per_second']:,.0f} "
          f"tok/s, wall {recipe['wall_seconds']:.0f} s ({recipe['precision']}, {recipe['threads']} threads)")
    assert final["step"] == SMALL_PRESET_STEPS
    assert final["nats_below_uniform"] >= TARGET_NATS_BELOW_UNIFORM
    manifest = load_manifest(small_pretrained_dir)
    assert manifest.tokenizer_check["single_token_symbols"] is True
    assert sorted(manifest.by_repeats()) == [0, 1, 4, 16]


def test_davidson_abusive_vs_neither_macro_f1(davidson_classifier_dir):
    recipe = json.loads((davidson_classifier_dir / "finetune.json").read_text())
    test = recipe["metrics"]["test"]
    print(f"\nDavidson abusive vs neither: test macro-F1 {test['macro_f1']:.3f} (accuracy {test['accuracy']:.3f}, "
          f"n={test['n']}); TF-IDF+LR 0.90, same-size BERT 0.906")
    assert test["macro_f1"] >= TARGET_DAVIDSON_MACRO_F1
    task = TaskData.load(davidson_classifier_dir)
    assert task.label_names == ["neither", "abusive"] and task.positive_label == 1
    assert len(task.examples) == 24783
    assert test["n"] == len(task.split("test"))
