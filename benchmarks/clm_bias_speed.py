"""CrowS-Pairs on a causal LM: our adapter vs lm-evaluation-harness, same model, one process.

Both paths score every CrowS-Pairs pair (Nangia et al., EMNLP 2020) the way lm-evaluation-harness scores a causal
model on its ``crows_pairs`` task: the log-likelihood of each whole sentence after the prefix token (BOS, else
EOS), and a pair counts as stereotyped when ll(sent_more) > ll(sent_less); % stereotype is the share of such pairs
(50 = no preference; further from 50 = more biased).

- ours: ``ModelUnderAudit.sentence_logprobs`` on all 3,016 sentences (``audit.causal_lm``: length-bucketed batches,
  right padding without an attention mask so the causal attention kernel runs, target logit minus log-sum-exp);
- lm-eval: ``lm_eval.models.huggingface.HFLM(pretrained=DIR).loglikelihood`` on the same ("", sentence) requests,
  at its fastest batch size among ``--lm-eval-batch-sizes`` (each timed on the same fixed subset of pairs first).

The two must give the identical % stereotype (the script fails otherwise) and log-likelihoods within 1e-4.

Each path is then timed ``--repeats`` times on the full set, alternating; the ratio is paired (each lm-eval run
divided by the run of ours just before it) and the median counts — on a 2-core VM the machine's speed drifts
within minutes, and adjacent runs share one machine state (see ``pll_speed.py``). Our share of the machine's fp32
matrix-multiply roof (``roofline.py``: FLOPs counted in an untimed extra pass; roof = the fastest product of the
model's feed-forward shape) is printed before the ratio. Lower wall time is better; the last line is
``ratio: <lm-eval time / ours>`` (goal ≥ 1.0).

Usage: ``python benchmarks/clm_bias_speed.py [--model DIR] [--threads 2] [--repeats 3] [--batch-size 32]
[--lm-eval-batch-sizes 8,16,32,64] [--device cpu]``. Without ``--model`` a randomly initialised GPT-2 (hidden 384,
6 layers, 6 heads, vocabulary 8192, 256 positions) is built with a byte-level BPE tokenizer trained on the
CrowS-Pairs sentences. Needs RAI_AUDIT_DATA_DIR.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from roofline import RooflineReport, count_flops, matmul_peak
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from audit.data.catalog import load_dataset
from audit.subject import ModelUnderAudit
from probes.bias.crows_pairs import pairs_from_rows

END_OF_TEXT = "<|endoftext|>"


def build_random_gpt2(directory: Path, sentences: list[str], *, hidden: int, layers: int, heads: int,
                      vocab: int, positions: int) -> Path:
    """A random-init GPT-2 with a byte-level BPE tokenizer (BOS = EOS = <|endoftext|>), saved as a HF folder."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(sentences, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=[END_OF_TEXT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
                                        model_max_length=positions)
    end = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=hidden, n_layer=layers, n_head=heads, n_positions=positions,
                        bos_token_id=end, eos_token_id=end)
    GPT2LMHeadModel(config).eval().save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def lm_eval_scores(model: HFLM, sentences: list[str]) -> np.ndarray:
    requests = [Instance("loglikelihood", {}, ("", sentence), index) for index, sentence in enumerate(sentences)]
    return np.asarray([value for value, _ in model.loglikelihood(requests, disable_tqdm=True)], dtype=np.float64)


def timed(function, *arguments):
    started = time.perf_counter()
    result = function(*arguments)
    return result, time.perf_counter() - started


def percent_stereotype(scores: np.ndarray) -> float:
    """Interleaved (more, less) sentence log-likelihoods → % of pairs with ll(more) > ll(less)."""
    return 100.0 * float(np.mean(scores[0::2] > scores[1::2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a causal-LM folder (default: random GPT-2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (the CI reference) or cuda")
    parser.add_argument("--batch-size", type=int, default=32, help="our batch size")
    parser.add_argument("--lm-eval-batch-sizes", default="8,16,32,64",
                        help="comma-separated batch sizes tried for lm-eval; the fastest is used")
    parser.add_argument("--selection-pairs", type=int, default=300,
                        help="pairs on which lm-eval's batch sizes are compared")
    parser.add_argument("--repeats", type=int, default=3,
                        help="time each path this many times, alternating; the median paired ratio counts")
    args = parser.parse_args()
    try:
        candidates = [int(size) for size in args.lm_eval_batch_sizes.split(",")]
    except ValueError:
        parser.error(f"--lm-eval-batch-sizes must be comma-separated integers, got {args.lm_eval_batch_sizes!r}")
    for option, value in (("threads", args.threads), ("batch-size", args.batch_size), ("repeats", args.repeats),
                          ("selection-pairs", args.selection_pairs), *(("lm-eval-batch-sizes", c) for c in candidates)):
        if value < 1:
            parser.error(f"--{option} must hold positive integers, got {value}")
    torch.set_num_threads(args.threads)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)

    pairs = pairs_from_rows(load_dataset("crows_pairs").dataset.to_list(), where="crows_pairs")
    sentences = [sentence for pair in pairs for sentence in (pair.sent_more, pair.sent_less)]
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model or build_random_gpt2(Path(scratch) / "gpt2_random", sentences, hidden=384, layers=6,
                                                    heads=6, vocab=8192, positions=256)
        subject = ModelUnderAudit.from_pretrained(model_dir, device=args.device)
        config = subject.causal_lm.config
        print(f"model: {model_dir if args.model else 'random-init GPT-2'} ({type(subject.causal_lm).__name__}, "
              f"{subject.info().parameters:,} parameters, vocabulary {config.vocab_size}), {len(pairs)} pairs, "
              f"threads {args.threads}, device {args.device}")

        subset = sentences[:2 * args.selection_pairs]
        subject.sentence_logprobs(subset[:64], batch_size=args.batch_size)  # warm-up
        selection = {}
        for batch_size in candidates:
            reference = HFLM(pretrained=str(model_dir), device=args.device, batch_size=batch_size)
            lm_eval_scores(reference, subset[:64])  # warm-up
            selection[batch_size] = timed(lm_eval_scores, reference, subset)[1]
            del reference
        best = min(selection, key=selection.get)
        print("lm-eval batch sizes on the first " f"{len(subset) // 2} pairs: "
              + ", ".join(f"{size}: {seconds:.2f} s" for size, seconds in selection.items()) + f" -> {best}")
        reference = HFLM(pretrained=str(model_dir), device=args.device, batch_size=best)

        ours_runs, reference_runs = [], []
        for _ in range(args.repeats):  # alternating, so that a slow spell of the machine hits both paths
            ours, seconds = timed(lambda: subject.sentence_logprobs(sentences, batch_size=args.batch_size))
            ours_runs.append(seconds)
            theirs, seconds = timed(lm_eval_scores, reference, sentences)
            reference_runs.append(seconds)

        if args.device == "cpu":  # the roof is measured on the CPU
            peak = matmul_peak(4096, config.hidden_size, 4 * config.hidden_size)
            _, ours_flops = count_flops(lambda: subject.sentence_logprobs(sentences, batch_size=args.batch_size))
            _, reference_flops = count_flops(lambda: lm_eval_scores(reference, sentences))

    worst = float(np.max(np.abs(ours - theirs)))
    ours_pct, theirs_pct = percent_stereotype(ours), percent_stereotype(theirs)
    print(f"% stereotype: ours {ours_pct:.2f}, lm-eval {theirs_pct:.2f}; max |log-likelihood difference| over "
          f"{len(sentences)} sentences {worst:.2e}")
    assert ours_pct == theirs_pct, "ours and lm-eval disagree on % stereotype"
    assert worst <= 1e-4, f"ours and lm-eval log-likelihoods differ by {worst:.2e} (> 1e-4)"
    ours_time, reference_time = min(ours_runs), min(reference_runs)
    print(f"ours (batch {args.batch_size}): fastest {ours_time:.2f} s of {', '.join(f'{r:.2f}' for r in ours_runs)}")
    print(f"lm-eval (batch {best}): fastest {reference_time:.2f} s of "
          f"{', '.join(f'{r:.2f}' for r in reference_runs)}")
    if args.device == "cpu":
        ours_roof = RooflineReport(ours_time, ours_flops, peak)
        print(f"roof: {ours_roof.describe('ours')}")
        print(f"roof: {RooflineReport(reference_time, reference_flops, peak).describe('lm-eval')}")
        print(f"roof: no faster execution of our arithmetic could exceed ratio "
              f"{ours_roof.ratio_bound(reference_time):.2f} on this machine")
    print(f"ratio of the fastest runs: {reference_time / ours_time:.2f}")
    paired = [reference / ours for ours, reference in zip(ours_runs, reference_runs, strict=True)]
    print(f"paired ratios (each lm-eval run against the run of ours just before it): "
          f"{', '.join(f'{ratio:.2f}' for ratio in paired)}")
    print(f"ratio: {float(np.median(paired)):.2f}")


if __name__ == "__main__":
    main()
