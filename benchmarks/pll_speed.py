"""CrowS-Pairs PLL speed: our batched scorer vs the reference-style loop, on the same model in one run.

Both paths score the shared tokens of every CrowS-Pairs pair (Nangia et al., EMNLP 2020) on the same model:

- ours (what the ``crows_pairs`` probe does): ``probes.bias.crows_pairs.score_pairs`` → one
  ``ModelUnderAudit.pll_scores`` call; all masked copies of a sentence share a forward pass, copies of equal-length
  sentences are packed together, and for our model ``audit.model.masked_copies`` skips the work copies share
  (the first block up to its attention is computed once per sentence; the last block, the final LayerNorm and
  the vocabulary projection run at the masked position only);
- reference: ``ModelUnderAudit.pll_scores_reference`` — batch 1, one forward per masked token, the full
  (T × vocabulary) head, as in the CrowS-Pairs reference code.

Both run the same model with the same kernels, so the ratio measures the scoring strategy only.

Each path is timed ``--repeats`` times (default 5), alternating, and every run is printed. The ratio is paired:
each reference run is divided by the run of ours just before it, and the median of those ratios is the result.
Why paired: on the 2-core VMs we measure on, the machine's speed drifts by up to a third within minutes (its
fp32 matrix-multiply rate measured 152-307 GFLOP/s on one day), and the two paths do not respond alike — the
reference's batch-1 forwards are bound by per-operation latency, ours by matrix-multiply throughput. So the fastest
run of each path (the estimator ``ig_speed.py`` uses) can come from different machine states; adjacent runs share
one. The ratio of the fastest runs is printed as well. The scores must agree to 1e-4 on every pair compared (the
script fails otherwise). Ours always scores the full set. The reference loop (~41,000 batch-1 forwards) would take
many minutes on 2 cores, so by default (``--reference-subset 150``) it is timed on a fixed random subset of 150
pairs (seed 0) and its time is EXTRAPOLATED to the full set by the number of masked tokens — the output says so;
``--reference-subset 0`` runs it on every pair. Lower wall time is better; the last line is
``ratio: <reference time / ours>``, the median paired ratio (goal ≥ 8).

Before the ratio, the script reports how close each path runs to this machine's fp32 matrix-multiply roof
(``roofline.py``: FLOPs counted in an untimed second pass, roof = the fastest product of the model's feed-forward
shape) and the largest ratio any faster execution of our scorer's arithmetic could reach here.

Usage: ``python benchmarks/pll_speed.py [--model DIR] [--threads 2] [--repeats 3] [--reference-subset N]
[--device cpu]``. Without ``--model`` a randomly initialised model of the ``small`` preset's size (hidden 256, 4 layers, 4 heads, FFN 1024, vocab 8192)
is built with a WordPiece tokenizer trained on the CrowS-Pairs sentences. Needs RAI_AUDIT_DATA_DIR.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from roofline import RooflineReport, count_flops, matmul_peak

from audit.data.catalog import load_dataset
from audit.model import AuditTransformerConfig, AuditTransformerForMaskedLM
from audit.subject import ModelUnderAudit
from audit.train.tokenizer import train_tokenizer
from probes.bias.crows_pairs import pairs_from_rows, score_pairs
from probes.bias.pll import shared_token_positions


def build_small_model(directory: Path, sentences: list[str]) -> Path:
    """A random-init model with the `small` preset's dimensions, saved as a HF directory."""
    tokenizer = train_tokenizer(sentences, vocab_size=8192)
    torch.manual_seed(0)
    config = AuditTransformerConfig(vocab_size=8192, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                    intermediate_size=1024, max_position_embeddings=128,
                                    pad_token_id=tokenizer.pad_token_id)
    model = AuditTransformerForMaskedLM(config).eval()
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(directory)
    return directory


def _pair_positions(tokenizer, special: set[int], pair) -> tuple[list[int], list[int], tuple[list[int], list[int]]]:
    """Token ids of both sentences and the positions of the tokens they share (what CrowS-Pairs scores)."""
    ids_more, ids_less = tokenizer(pair.sent_more)["input_ids"], tokenizer(pair.sent_less)["input_ids"]
    return ids_more, ids_less, shared_token_positions(ids_more, ids_less, special_ids=special)


def reference_scores(subject: ModelUnderAudit, pairs) -> tuple[np.ndarray, np.ndarray, int]:
    special = set(subject.tokenizer.all_special_ids)
    more, less, tokens = [], [], 0
    for pair in pairs:
        ids_more, ids_less, positions = _pair_positions(subject.tokenizer, special, pair)
        scores = subject.pll_scores_reference([ids_more, ids_less], list(positions))
        more.append(scores[0].sum())
        less.append(scores[1].sum())
        tokens += len(positions[0]) + len(positions[1])
    return np.array(more), np.array(less), tokens


def masked_token_count(subject: ModelUnderAudit, pairs) -> int:
    special = set(subject.tokenizer.all_special_ids)
    return sum(2 * len(_pair_positions(subject.tokenizer, special, pair)[2][0]) for pair in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a masked-LM directory (default: random small)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (the CI reference) or cuda")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5,
                        help="time each path this many times, alternating; the median paired ratio counts")
    parser.add_argument("--reference-subset", type=int, default=150,
                        help="time the reference on this many random pairs and extrapolate; 0 = every pair")
    args = parser.parse_args()
    for option in ("threads", "batch_size", "repeats"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be a positive integer, got {getattr(args, option)}")
    if args.reference_subset < 0:
        parser.error(f"--reference-subset must be 0 (every pair) or a positive integer, got {args.reference_subset}")
    torch.set_num_threads(args.threads)

    rows = load_dataset("crows_pairs").dataset.to_list()
    pairs = pairs_from_rows(rows, where="crows_pairs")
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model or build_small_model(
            Path(scratch) / "small_random", [p.sent_more for p in pairs] + [p.sent_less for p in pairs])
        subject = ModelUnderAudit.from_pretrained(model_dir, device=args.device)
        print(f"model: {model_dir if args.model else 'random-init small preset size'} "
              f"({subject.info().parameters:,} parameters), pll strategy {subject.pll_strategy}, "
              f"threads {args.threads}, device {args.device}")

        score_pairs(subject, pairs[:8], batch_size=args.batch_size)  # warm-up
        ours_runs, reference_runs = [], []
        for _ in range(args.repeats):  # alternating, so that a slow spell of the machine hits both paths
            started = time.perf_counter()
            ours = score_pairs(subject, pairs, batch_size=args.batch_size)
            ours_runs.append(time.perf_counter() - started)
            if not reference_runs:
                total_tokens = masked_token_count(subject, ours.pairs)
                compared = ours.pairs
                if 0 < args.reference_subset < len(ours.pairs):
                    chosen = np.sort(np.random.default_rng(0).choice(len(ours.pairs), args.reference_subset,
                                                                     replace=False))
                    compared = [ours.pairs[index] for index in chosen]
                else:
                    chosen = np.arange(len(ours.pairs))
            started = time.perf_counter()
            reference_more, reference_less, reference_tokens = reference_scores(subject, compared)
            reference_runs.append(time.perf_counter() - started)
        ours_time, reference_time = min(ours_runs), min(reference_runs)
        print(f"ours: {len(ours.pairs)} pairs scored ({len(ours.too_long)} too long, {len(ours.identical)} "
              f"identical), {total_tokens} masked tokens in {ours_time:.2f} s (fastest of "
              f"{', '.join(f'{run:.2f}' for run in ours_runs)} s)")

        if args.device == "cpu":  # the roof is measured on the CPU
            # Untimed second passes: the arithmetic of each path, against this machine's matrix-multiply roof.
            config = subject.mlm.config
            peak = matmul_peak(4096, config.hidden_size, config.intermediate_size)
            _, ours_flops = count_flops(lambda: score_pairs(subject, pairs, batch_size=args.batch_size))
            _, reference_flops = count_flops(lambda: reference_scores(subject, compared))
            ours_roof = RooflineReport(ours_time, ours_flops, peak)
            reference_roof = RooflineReport(reference_time, reference_flops, peak)

    worst = max(np.max(np.abs(reference_more - ours.score_more[chosen])),
                np.max(np.abs(reference_less - ours.score_less[chosen])))
    assert worst <= 1e-4, f"batched and reference PLL disagree by {worst:.2e} (> 1e-4)"
    print(f"max |difference| over {len(compared)} pairs: {worst:.2e} (<= 1e-4)")
    runs = f"(fastest of {', '.join(f'{run:.2f}' for run in reference_runs)} s)"
    scale = total_tokens / reference_tokens  # the extrapolation to the full set; 1 when it scored every pair
    if len(compared) < len(ours.pairs):
        estimate = reference_time * scale
        print(f"reference: {len(compared)} pairs ({reference_tokens} masked tokens) in {reference_time:.2f} s {runs}; "
              f"EXTRAPOLATED to the full set by masked-token count: {estimate:.1f} s")
        reference_time = estimate
    else:
        print(f"reference: {len(compared)} pairs ({reference_tokens} masked tokens) in {reference_time:.2f} s {runs}")
    if args.device == "cpu":
        print(f"roof: {ours_roof.describe('ours')}")
        print(f"roof: {reference_roof.describe('reference (timed part)')}")
        print(f"roof: no faster execution of our scorer's arithmetic could exceed ratio "
              f"{ours_roof.ratio_bound(reference_time):.1f} on this machine")
    print(f"ratio of the fastest runs: {reference_time / ours_time:.2f}")
    paired = [reference * scale / ours for ours, reference in zip(ours_runs, reference_runs, strict=True)]
    print(f"paired ratios (each reference run against the run of ours just before it): "
          f"{', '.join(f'{ratio:.2f}' for ratio in paired)}")
    print(f"ratio: {float(np.median(paired)):.2f}")


if __name__ == "__main__":
    main()
