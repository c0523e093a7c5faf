"""Canary exposure speed: batched candidate scoring vs one candidate at a time, in the same run.

Exposure (Carlini et al., USENIX Security 2019) ranks each planted secret's pseudo-log-likelihood among R random
candidates of the same format. Both paths below compute exposure for every canary of the `small` model's manifest
with R = 10,000 through the same adapter (``ModelUnderAudit.pll_scores``) and the same candidates:

- batched (what the ``exposure`` probe does): all R - 1 candidates and the secrets in one ``pll_scores`` call,
  which packs the masked copies of many sequences into each forward pass (``--batch-size`` copies);
- one at a time: one ``pll_scores`` call per sequence (its masked copies still share one forward pass), the way a
  per-candidate loop would score them.

By default both paths score all R sequences (no extrapolation). ``--one-at-a-time-subset N`` times the slow path
on the first N sequences only and scales its time by R / N; the output then says "extrapolated".
Both paths' exposures are compared (they must agree). For context, the textbook PLL loop (one forward per masked
token, batch 1, full-vocabulary head: ``pll_scores_reference``) is also timed on ``--textbook-subset`` sequences
and extrapolated (labelled so); it is not the ratio of the last line. Lower wall time is better; the last line is
``ratio: <one-at-a-time / batched>`` (goal >= 5).

Before the ratio, the batched path is set against this machine's fp32 matrix-multiply roof (``roofline.py``:
FLOPs counted in an untimed extra pass, roof = the fastest product of the model's feed-forward shape). Both paths
do the same arithmetic per sequence (the one-at-a-time path also shares each candidate's work across its masked
copies), so the roof bounds what batching across candidates can add.

Usage: ``python benchmarks/exposure_speed.py [--model DIR] [--threads 2] [--candidates 10000] [--device cpu]``.
Without ``--model`` the `small` preset is pretrained (about 4 minutes) into the rai-audit model cache, or reused
from it; this needs RAI_AUDIT_DATA_DIR (the wiki_passages corpus).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from roofline import RooflineReport, count_flops, matmul_peak

from audit.subject import ModelUnderAudit
from probes.privacy.exposure import (
    DEFAULT_BATCH_SIZE,
    canary_format,
    compute_exposure,
    load_canaries,
    sample_candidates,
    sequence_plls,
)


def small_model_dir() -> Path:
    """The `small` preset's pretrained directory in the cache shared with `rai-audit run` (trained if missing)."""
    from audit.runner import default_cache_dir, recipe_hash
    from audit.train.config import load_pretrain_config
    from audit.train.pretrain import pretrain

    config = load_pretrain_config("small")
    directory = default_cache_dir() / "models" / f"pretrained-{recipe_hash(config.model_dump(mode='json'))}"
    if not (directory / "model.safetensors").is_file():
        print(f"pretraining the small preset into {directory} (a few minutes)", flush=True)
        data_dir = os.environ.get("RAI_AUDIT_DATA_DIR")
        pretrain(config, directory, data_dir=data_dir)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="pretrained directory with canaries.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (the CI reference) or cuda")
    parser.add_argument("--candidates", type=int, default=10_000, help="R")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="masked copies per forward pass (batched)")
    parser.add_argument("--one-at-a-time-subset", type=int, default=None,
                        help="time the slow path on this many sequences and extrapolate (default: all)")
    parser.add_argument("--textbook-subset", type=int, default=100,
                        help="also time the textbook one-forward-per-token loop on this many sequences (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_dir = args.model or small_model_dir()
    subject = ModelUnderAudit.from_pretrained(model_dir, device=args.device)
    manifest = load_canaries(model_dir / "canaries.json")
    print(f"model {model_dir} ({subject.info().parameters:,} parameters), {len(manifest.secrets)} canaries, "
          f"R = {args.candidates:,}, {args.threads} threads, device {args.device}")

    # Warm-up (first-call allocations) outside the timings.
    compute_exposure(subject, manifest, n_candidates=200, seed=1, batch_size=args.batch_size)

    start = time.perf_counter()
    batched = compute_exposure(subject, manifest, n_candidates=args.candidates, seed=0, batch_size=args.batch_size)
    batched_s = time.perf_counter() - start
    print(f"batched:        {batched_s:8.2f} s for {len(manifest.secrets) + args.candidates - 1:,} sequences")

    if args.one_at_a_time_subset is None:
        start = time.perf_counter()
        single = compute_exposure(subject, manifest, n_candidates=args.candidates, seed=0,
                                  batch_size=args.batch_size, one_at_a_time=True)
        single_s = time.perf_counter() - start
        difference = float(np.max(np.abs(single.secret_plls - batched.secret_plls)))
        same_exposure = bool(np.allclose(single.exposure, batched.exposure))
        print(f"one at a time:  {single_s:8.2f} s for the same sequences (measured in full)")
        print(f"agreement: max |PLL difference| over secrets {difference:.2e}; exposures equal: {same_exposure}")
    else:
        layout = canary_format(manifest, subject.tokenizer)
        rng = np.random.default_rng(0)
        subset = sample_candidates(manifest.alphabet, manifest.length, args.one_at_a_time_subset, rng, set())
        ids = [layout.token_ids(sequence) for sequence in subset]
        start = time.perf_counter()
        sequence_plls(subject, ids, layout.positions, batch_size=args.batch_size, one_at_a_time=True)
        measured = time.perf_counter() - start
        total = len(manifest.secrets) + args.candidates - 1
        single_s = measured * total / len(subset)
        print(f"one at a time:  {single_s:8.2f} s EXTRAPOLATED from {measured:.2f} s on {len(subset):,} of "
              f"{total:,} sequences")

    if args.textbook_subset:
        # Context only: the textbook PLL loop (one forward per masked token, full-vocabulary head), per candidate.
        layout = canary_format(manifest, subject.tokenizer)
        subset = sample_candidates(manifest.alphabet, manifest.length, args.textbook_subset,
                                   np.random.default_rng(1), set())
        ids = [layout.token_ids(sequence) for sequence in subset]
        start = time.perf_counter()
        subject.pll_scores_reference(ids, [layout.positions] * len(ids))
        measured = time.perf_counter() - start
        total = len(manifest.secrets) + args.candidates - 1
        textbook_s = measured * total / len(subset)
        print(f"textbook loop:  {textbook_s:8.2f} s EXTRAPOLATED from {measured:.2f} s on {len(subset):,} of "
              f"{total:,} sequences ({textbook_s / batched_s:.1f}x the batched time; not the ratio below)")

    for count in sorted({secret.repeats for secret in manifest.secrets}):
        chosen = np.array([secret.repeats == count for secret in manifest.secrets])
        label = "controls" if count == 0 else f"planted {count}x"
        print(f"  exposure {label:>12}: mean {batched.exposure[chosen].mean():5.2f} bits "
              f"(extrapolated {batched.extrapolated[chosen].mean():5.2f}), max {batched.exposure[chosen].max():5.2f}")
    if args.device == "cpu":  # the roof is measured on the CPU
        # Untimed extra pass: the batched path's arithmetic against this machine's matrix-multiply roof.
        config = subject.mlm.config
        peak = matmul_peak(4096, config.hidden_size, config.intermediate_size)
        _, flops = count_flops(lambda: compute_exposure(subject, manifest, n_candidates=args.candidates, seed=0,
                                                        batch_size=args.batch_size))
        batched_roof = RooflineReport(batched_s, flops, peak)
        print(f"roof: {batched_roof.describe('batched')}")
        print(f"roof: no faster execution of the same arithmetic could exceed ratio "
              f"{batched_roof.ratio_bound(single_s):.2f} on this machine")
    print(f"wall time: batched {batched_s:.2f} s, one at a time {single_s:.2f} s")
    print(f"ratio: {single_s / batched_s:.2f}")


if __name__ == "__main__":
    main()
