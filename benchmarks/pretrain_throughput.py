"""Pretraining throughput: our transformer vs ``transformers.BertForMaskedLM`` of the same dimensions.

One training step = forward + backward + AdamW step on a batch of random token ids with 15% of positions scored
(labels != -100), identical batches for both models, in one process, at the `small` preset dimensions.

- ours: SDPA attention, vocabulary projection only at scored positions, bf16 autocast when the CPU has bf16
  units (fp32 otherwise) — how `rai-audit pretrain` runs it;
- peer: ``BertForMaskedLM`` with its default config except the dimensions, in fp32 (the way a user would run it),
  and also in bf16 autocast for an honest like-for-like figure.

Both use the same optimizer (AdamW, fused kernel where available). Each model's step time is the median over
steps interleaved with the other models', which keeps load from other processes from favouring one of them.

Reports tokens/s (input tokens processed per second), achieved GFLOP/s with FLOPs = 6·N·T (N = matmul
parameters touched per token; the vocabulary decoder counts only at the positions it projects) against a
measured matmul peak. Higher tokens/s is better. The last line is ``ratio: <ours/peer>`` (ours vs peer fp32).

Usage: ``python benchmarks/pretrain_throughput.py [--threads 2] [--steps 6] [--batch-size 64]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

import audit  # noqa: F401  (registers our model)
from audit.model import AuditTransformerConfig, AuditTransformerForMaskedLM

# The `small` preset. The training helper's preset (audit/train/config.py, audit/presets/small.toml) is read when
# available; these are the same numbers, used as the fallback.
SMALL = {
    "vocab_size": 8192,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_length": 128,
    "batch_size": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
MLM_PROBABILITY = 0.15


def small_preset() -> dict:
    dims = dict(SMALL)
    try:
        from audit.train.config import load_pretrain_config

        preset = load_pretrain_config("small")
        dims.update(
            preset.model.model_dump(
                include={
                    "hidden_size",
                    "num_hidden_layers",
                    "num_attention_heads",
                    "intermediate_size",
                    "hidden_dropout_prob",
                    "attention_probs_dropout_prob",
                }
            )
        )
        dims.update(
            vocab_size=preset.tokenizer.vocab_size,
            max_length=preset.corpus.max_length,
            batch_size=preset.train.batch_size,
        )
    except (
        ImportError,
        OSError,
        ValueError,
    ) as error:  # preset not available in this checkout: use the numbers above
        print(f"(small preset not loadable: {type(error).__name__}; using built-in dimensions)")
    return dims


def bf16_supported() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def make_batches(
    n: int, batch_size: int, seq_len: int, vocab: int, seed: int
) -> list[tuple[torch.Tensor, ...]]:
    """Random ids with 15% of positions scored; scored inputs replaced by id 4 ([MASK] in our tokenizer)."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(5, vocab, (batch_size, seq_len), generator=gen)
        scored = torch.rand(batch_size, seq_len, generator=gen) < MLM_PROBABILITY
        labels = ids.masked_fill(~scored, -100)
        inputs = ids.masked_fill(scored, 4)
        batches.append((inputs, torch.ones_like(inputs), labels))
    return batches


class Runner:
    """One model + optimizer + precision; ``step`` trains on one batch, ``flops`` counts 6·N·T for it."""

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        bf16: bool,
        dense_params: int,
        hidden: int,
        vocab: int,
        masked_only: bool,
    ):
        self.name, self.model, self.bf16 = name, model.train(), bf16
        self.optimizer = make_adamw(model)
        self.dense_params, self.decoder_params, self.masked_only = dense_params, hidden * vocab, masked_only
        self.step_seconds: list[float] = []
        self.step_cpu_seconds: list[float] = []  # process CPU time: less sensitive to other processes' load
        self.tokens, self.flops = 0, 0.0  # per step (identical batch shapes; scored count varies slightly)

    def step(self, batch, timed: bool) -> None:
        inputs, mask, labels = batch
        start, cpu_start = time.perf_counter(), time.process_time()
        with autocast(self.bf16):
            loss = self.model(input_ids=inputs, attention_mask=mask, labels=labels).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if timed:
            self.step_seconds.append(time.perf_counter() - start)
            self.step_cpu_seconds.append(time.process_time() - cpu_start)
            self.tokens = inputs.numel()
            projected = int((labels != -100).sum()) if self.masked_only else self.tokens
            self.flops = 6 * (self.dense_params * self.tokens + self.decoder_params * projected)

    @property
    def seconds(self) -> float:
        return statistics.median(self.step_seconds)

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(self.step_cpu_seconds)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def make_adamw(model: torch.nn.Module) -> torch.optim.Optimizer:
    try:
        return torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    except (RuntimeError, TypeError):  # no fused CPU kernel in this torch
        return torch.optim.AdamW(model.parameters(), lr=1e-4)


def dense_matmul_params(model: torch.nn.Module) -> int:
    """Weights of the Linear layers applied at every token (encoder + MLM transform), decoder excluded."""
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("decoder"):
            total += module.weight.numel()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CI machine: 2 cores)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's batch size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dims = small_preset()
    batch_size = args.batch_size or dims["batch_size"]
    bf16 = bf16_supported()
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    ours_model = AuditTransformerForMaskedLM(
        AuditTransformerConfig(
            vocab_size=dims["vocab_size"],
            hidden_size=dims["hidden_size"],
            num_hidden_layers=dims["num_hidden_layers"],
            num_attention_heads=dims["num_attention_heads"],
            intermediate_size=dims["intermediate_size"],
            max_position_embeddings=max(512, dims["max_length"]),
            hidden_dropout_prob=dims["hidden_dropout_prob"],
            attention_probs_dropout_prob=dims["attention_probs_dropout_prob"],
        )
    )
    peer_config = BertConfig(
        vocab_size=dims["vocab_size"],
        hidden_size=dims["hidden_size"],
        num_hidden_layers=dims["num_hidden_layers"],
        num_attention_heads=dims["num_attention_heads"],
        intermediate_size=dims["intermediate_size"],
    )
    peer_model = BertForMaskedLM(peer_config)
    peer_bf16_model = BertForMaskedLM(peer_config)
    hidden, vocab = dims["hidden_size"], dims["vocab_size"]
    runners = [
        Runner("ours", ours_model, bf16, dense_matmul_params(ours_model), hidden, vocab, masked_only=True),
        Runner(
            "peer-fp32", peer_model, False, dense_matmul_params(peer_model), hidden, vocab, masked_only=False
        ),
    ]
    if bf16:
        runners.append(
            Runner(
                "peer-bf16",
                peer_bf16_model,
                True,
                dense_matmul_params(peer_bf16_model),
                hidden,
                vocab,
                masked_only=False,
            )
        )

    print(
        f"threads={args.threads} batch={batch_size}x{dims['max_length']} vocab={vocab} hidden={hidden} "
        f"layers={dims['num_hidden_layers']} heads={dims['num_attention_heads']} "
        f"intermediate={dims['intermediate_size']} bf16_autocast_for_ours={bf16}"
    )
    print(
        f"ours: dropout {dims['hidden_dropout_prob']} (preset); peer: BertConfig defaults "
        f"(dropout {peer_config.hidden_dropout_prob}, attn {peer_model.config._attn_implementation})"
    )
    batches = make_batches(args.steps + args.warmup, batch_size, dims["max_length"], vocab, seed=0)
    for runner in runners:
        for batch in batches[: args.warmup]:
            runner.step(batch, timed=False)
    # Interleave the models step by step so that load from other processes hits all of them alike.
    for batch in batches[args.warmup :]:
        for runner in runners:
            runner.step(batch, timed=True)

    peaks = {"fp32": matmul_peak_gflops(torch.float32)}
    if bf16:
        peaks["bf16"] = matmul_peak_gflops(torch.bfloat16)
    print("matmul peak (2048³): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    for runner in runners:
        peak = peaks["bf16" if runner.bf16 else "fp32"]
        gflops = runner.flops / runner.seconds / 1e9
        print(
            f"{runner.name:10s} {runner.seconds:6.2f} s/step ({runner.cpu_seconds:6.2f} CPU s) "
            f"{runner.tokens_per_s:8.0f} tokens/s {gflops:7.1f} GFLOP/s (6·N·T) "
            f"{100 * gflops / peak:5.1f}% of {'bf16' if runner.bf16 else 'fp32'} matmul peak"
        )
    ours, peer = runners[0], runners[1]
    print(f"ratio by CPU time (robust to other load): {peer.cpu_seconds / ours.cpu_seconds:.2f}")
    if len(runners) > 2:
        print(f"ratio vs peer-bf16: {ours.tokens_per_s / runners[2].tokens_per_s:.2f}")
    print(f"ratio: {ours.tokens_per_s / peer.tokens_per_s:.2f}")


if __name__ == "__main__":
    main()
