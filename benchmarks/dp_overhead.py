"""What DP-SGD costs: one epoch of fine-tuning the calibration-scenario classifier with and without differential
privacy (``audit.train.dp``: opacus per-example gradients, clipping, noise, Poisson sampling), same recipe.

Anchor: Yousefpour et al., "Opacus: User-Friendly Differential Privacy Library in PyTorch" (2021), §5 and Table 2,
report opacus' per-epoch runtime against non-private PyTorch for several models; for transformer-like models (their
embedding + LSTM/transformer text benchmarks) the slowdown is a small multiple (about 2-3x at moderate batch size),
and it shrinks as the batch grows. Goal here: DP / non-DP ≤ 3x.

The model is our transformer at the ``small`` preset's shape (hidden 256, 4 layers, 4 heads) with random weights
and a WordPiece tokenizer trained on the scenario's texts (timing does not depend on pretraining). Each path
fine-tunes one epoch (``finetune_classifier``, ``keep = "last"``, fp32) and the runs alternate ``--repeats``
times; the ratio is paired (each DP run over the non-DP run just before it) and the median counts. The DP time
includes opacus' setup (the accountant's noise search, about a second). Lower is better; the last line is
``ratio: <DP time / non-DP time per epoch>``.

Usage: ``python benchmarks/dp_overhead.py [--n-examples 2000] [--repeats 3] [--threads 2] [--batch-size 32]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def build_model(directory: Path, texts: list[str]) -> Path:
    from audit.model import AuditTransformerConfig, AuditTransformerForMaskedLM
    from audit.train.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size=8192, min_frequency=1, model_max_length=128)
    config = AuditTransformerConfig(vocab_size=len(tokenizer), hidden_size=256, num_hidden_layers=4,
                                    num_attention_heads=4, intermediate_size=1024, max_position_embeddings=128,
                                    pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    AuditTransformerForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def time_epoch(pretrained: Path, task, recipe: dict) -> float:
    from audit.train.config import finetune_config_from_dict
    from audit.train.finetune import finetune_classifier

    config = finetune_config_from_dict(recipe)
    started = time.perf_counter()
    finetune_classifier(pretrained, task.split("train"), task.split("validation"), config, seed=0,
                        num_labels=len(task.label_names))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-examples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from audit.data.scenarios import make_calibration_scenario

    task = make_calibration_scenario(n_examples=args.n_examples, bias_strength=0.8, seed=0)
    recipe = {"epochs": 1, "batch_size": args.batch_size, "learning_rate": 1e-3, "max_length": 64,
              "keep": "last", "precision": "fp32"}
    private = {**recipe, "dp": {"epsilon": 8.0, "delta": 1e-5, "max_grad_norm": 1.0}}
    with tempfile.TemporaryDirectory() as folder:
        pretrained = build_model(Path(folder), [example.text for example in task.examples])
        print(f"{len(task.split('train'))} training examples, batch {args.batch_size}, {args.threads} threads")
        ratios = []
        for repeat in range(args.repeats):
            plain = time_epoch(pretrained, task, recipe)
            dp = time_epoch(pretrained, task, private)
            ratios.append(dp / plain)
            print(f"run {repeat + 1}: non-DP {plain:.1f} s, DP {dp:.1f} s per epoch, ratio {dp / plain:.2f}")
    print(f"ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
