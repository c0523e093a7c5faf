"""Integrated Gradients: batched across examples vs one captum call per example, measured in the same run.

Both paths compute the same attributions (the tests hold them equal to 1e-5): ``n_steps=50`` Gauss–Legendre steps
of captum's LayerIntegratedGradients over the token embeddings, on a randomly initialised classifier the size of
the ``small`` preset (hidden 256, 4 blocks, 4 heads, FFN 1024, vocabulary 8192) and calibration-scenario texts.
Each path is timed ``--repeats`` times, alternating, and the fastest run counts (least disturbed by other load).

Before the ratio, on the CPU, both paths are set against the machine's fp32 matrix-multiply roof
(``roofline.py``: FLOPs counted in an untimed extra pass, roof = the fastest product of the model's feed-forward
shape): a per-example call already integrates all ``n_steps`` points in one batched pass, so the roof bounds what
batching across examples can add.

Usage: python benchmarks/ig_speed.py [--examples 32] [--batch-size 8] [--repeats 3] [--device cpu]
Last line: ``ratio: <per-example seconds / batched seconds>`` (goal >= 2).
"""

from __future__ import annotations

import argparse
import time

import torch
from roofline import RooflineReport, count_flops, matmul_peak


def build(device: str):
    from audit.data.scenarios import make_calibration_scenario
    from audit.model import AuditTransformerConfig, AuditTransformerForSequenceClassification
    from audit.train.tokenizer import train_tokenizer
    from probes.attribution.adapter import AttributionModel

    task = make_calibration_scenario(n_examples=400, bias_strength=0.0, seed=0)
    texts = [example.text for example in task.examples]
    tokenizer = train_tokenizer(texts, vocab_size=8192)
    torch.manual_seed(0)  # benchmark script: a fixed random model
    config = AuditTransformerConfig(
        vocab_size=8192, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        max_position_embeddings=512, num_labels=2, pad_token_id=tokenizer.pad_token_id,
    )
    model = AuditTransformerForSequenceClassification(config).to(device).eval()
    return AttributionModel.from_model(model, tokenizer, max_length=128), texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from probes.attribution.methods import integrated_gradients

    model, texts = build(args.device)
    texts = texts[: args.examples]
    lengths = [len(ids) for ids in model.token_ids(texts)]
    print(f"device: {args.device}  threads: {torch.get_num_threads()}  examples: {len(texts)}  "
          f"tokens per text: {min(lengths)}-{max(lengths)} (mean {sum(lengths) / len(lengths):.1f})  "
          f"n_steps: {args.n_steps}  batch size: {args.batch_size}")
    integrated_gradients(model, texts[:2], n_steps=args.n_steps, batch_size=2)  # warm-up

    def timed(batch_size: int) -> float:
        started = time.perf_counter()
        integrated_gradients(model, texts, n_steps=args.n_steps, batch_size=batch_size)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started

    per_example_runs, batched_runs = [], []
    for _ in range(args.repeats):
        per_example_runs.append(timed(1))
        batched_runs.append(timed(args.batch_size))
    per_example, batched = min(per_example_runs), min(batched_runs)
    print(f"per-example calls: {per_example:.3f} s total, {per_example / len(texts) * 1000:.1f} ms per example")
    print(f"batched calls:     {batched:.3f} s total, {batched / len(texts) * 1000:.1f} ms per example")

    if args.device == "cpu":  # the roof is measured on the CPU
        # Untimed extra passes: the arithmetic of each path against this machine's matrix-multiply roof.
        config = model.module.config
        peak = matmul_peak(4096, config.hidden_size, config.intermediate_size)
        per_example_roof = RooflineReport(per_example, count_flops(lambda: timed(1))[1], peak)
        batched_roof = RooflineReport(batched, count_flops(lambda: timed(args.batch_size))[1], peak)
        print(f"roof: {per_example_roof.describe('per-example calls')}")
        print(f"roof: {batched_roof.describe('batched calls')}")
        print(f"roof: no faster execution of the batched arithmetic could exceed ratio "
              f"{batched_roof.ratio_bound(per_example):.2f} on this machine")
    print(f"ratio: {per_example / batched:.2f}")


if __name__ == "__main__":
    main()
